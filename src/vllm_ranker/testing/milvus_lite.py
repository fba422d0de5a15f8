"""``milvus-lite server`` on a free loopback port: the remote (cluster) path of Milvus, for tests and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from vllm_ranker.local_servers import MilvusLite


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path, start_timeout: float = 60.0) -> Iterator[str]:
    """Run ``milvus-lite server`` on a free loopback port with its data in ``data_dir``; yields its URI.

    It speaks the same gRPC protocol as a Milvus standalone server or cluster, so it proves the remote path
    (and keeps Milvus out of the caller's process, as in a real deployment). Raises RuntimeError
    (``local_servers.MilvusLiteError``), with the end of the server's log, if it exits or does not listen within
    ``start_timeout`` seconds. It runs in the caller's process group: a guarded test run stops it as one of its
    descendants (``process_guard``).
    """
    with MilvusLite(data_dir / "db", data_dir / "server.log", start_timeout=start_timeout) as server:
        yield server.uri
