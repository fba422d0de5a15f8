"""``milvus-lite server`` with a real Milvus server's gRPC keepalive policy (``milvus_lite.py`` starts it, for the
gateway's embedded backend and the test kit's ``milvus_lite_server``).

pymilvus pings its channel every 10 s, calls or not (keepalive_time_ms=10000, permit_without_calls). A Milvus
standalone/cluster server allows that (Go gRPC EnforcementPolicy: MinTime 5 s, PermitWithoutStream), but
``milvus-lite server`` builds its ``grpc.server`` with gRPC's defaults (a ping every 5 minutes at most without
data), so after ~30 s of idling it sends GOAWAY "too_many_pings" and the next client on that address fails with
``UNAVAILABLE: Too many pings``. Adding the server-side options here makes the loopback server behave like the
cluster it stands in for.

    python -m vllm_ranker.local_servers._milvus_lite_launcher server --data-dir DIR --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import sys
from typing import Any

import grpc
from milvus_lite import cmdline

MILVUS_SERVER_KEEPALIVE = [
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),  # never answer a client's pings with GOAWAY
]

_grpc_server = grpc.server


def _server_like_milvus(*args: Any, options: Any = None, **kwargs: Any) -> grpc.Server:
    return _grpc_server(*args, options=[*(options or ()), *MILVUS_SERVER_KEEPALIVE], **kwargs)


def main() -> int:
    grpc.server = _server_like_milvus  # milvus-lite calls grpc.server(...) when it builds its server
    return int(cmdline.main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
