"""``vllm-ranker ui``: a local web page showing what the reranker did to a query, and eval reports as charts.

    vllm-ranker ui                       # http://127.0.0.1:8765, the embedded default (./milvus.db + local vLLM)
    vllm-ranker ui --uri http://milvus:19530 --endpoint http://gpu-box:8000 --rerank-endpoint http://gpu-box:8001

The page lists the collections, runs a query through a first stage (dense, BM25 or hybrid RRF) and through the same
first stage reranked by the model, and shows both lists side by side with each hit's move and where the time went.
It reads every document of every collection: it binds 127.0.0.1 unless told otherwise.
Needs the ui extra: pip install 'vllm-ranker[ui]'.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from vllm_ranker.local_servers import is_loopback
from vllm_ranker.user_error import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class UiUnavailable(UserError):
    """The ``ui`` extra is not installed, or the page cannot be served as asked (a port in use...). A UserError, not
    the ranker's RerankError: ``ui --help`` then imports no pymilvus."""


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "ui",
        help="a local web page: first stage vs reranked side by side, timings, and eval reports as charts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--uri", default="./milvus.db", help="Milvus Lite file or Milvus server URI (default: %(default)s)"
    )
    parser.add_argument(
        "--endpoint",
        default="http://127.0.0.1:8000",
        help="the embedder `vllm-ranker serve` runs: its /v1/embeddings embeds queries for dense fields Milvus does "
        "not embed itself (default: %(default)s)",
    )
    parser.add_argument(
        "--rerank-endpoint",
        default="http://127.0.0.1:8001",
        help="the page's default rerank endpoint, changeable per query: the reranker `vllm-ranker serve` runs on "
        "--rerank-port (default: %(default)s)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on; anything but loopback is warned about (default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")


def bind_warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (
        f"warning: listening on {host} makes the page reachable from other machines; it has no authentication and "
        "shows every document of every collection. Prefer 127.0.0.1 (and an SSH tunnel)."
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a taken port or a foreign address is one clear error (uvicorn would
    log it and exit the process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as failed:
        sock.close()
        raise UiUnavailable(f"cannot listen on {host}:{port}: {failed.strerror or failed}") from None
    return sock


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise UiUnavailable(f"--port must be between 0 (any free port) and 65535, got {args.port}")
    try:
        import uvicorn

        from .app import create_app
        from .compare import without_userinfo
    except ImportError as missing:
        raise UiUnavailable(
            f"vllm-ranker ui needs the ui extra ({missing.name} is missing): pip install 'vllm-ranker[ui]'"
        ) from None
    warning = bind_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    shown_host = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    print(
        f"vllm-ranker ui: http://{shown_host}:{port}  (Milvus: {without_userinfo(args.uri)}; Ctrl-C stops)",
        flush=True,
    )
    # Bound to loopback, only the loopback names may reach it (no DNS rebinding); bound wider, the names people use
    # for this machine cannot be known here: any is accepted, as the warning said.
    allowed = None if warning else ("127.0.0.1", "localhost", "::1", args.host)
    app = create_app(args.uri, args.endpoint, rerank_endpoint=args.rerank_endpoint, allowed_hosts=allowed)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C, then re-raises it: stopping is the normal end
        pass
    finally:
        sock.close()
    return 0
