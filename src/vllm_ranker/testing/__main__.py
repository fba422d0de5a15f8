"""``python -m vllm_ranker.testing``: the loopback stand-in service of the test kit, from the shell.

    python -m vllm_ranker.testing                       # vLLM wire format on 127.0.0.1:8000 and :8001
    python -m vllm_ranker.testing --wire cohere --port 9000

It answers rerank requests in a real provider's wire format with deterministic scores (word overlap with the
query) and OpenAI-style /v1/embeddings with deterministic vectors, so application code and the README's
Quickstart run with no model at all (the way moto or LocalStack serve AWS users). It listens on --port and on
--rerank-port, the two ports `vllm-ranker serve` uses for its embedder and its reranker; both answer everything.
The scores mean nothing: use a real service (vllm-ranker serve) to judge quality.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from vllm_ranker.testing.rerank_server import RerankServer
from vllm_ranker.testing.wire_formats import WIRES

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the id `vllm-ranker serve` serves its embedder under


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vllm_ranker.testing",
        description=(__doc__ or "").split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument(
        "--rerank-port", type=int, help="a second port answering the same (default: --port + 1; 0 for none)"
    )
    parser.add_argument("--wire", choices=WIRES, default="vllm", help="rerank wire format (default: %(default)s)")
    parser.add_argument(
        "--embedding-dim", type=int, default=384, help="embedding size when a request names none (default: %(default)s)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model id listed at /v1/models (default: %(default)s)")
    args = parser.parse_args(argv)
    ports = [args.port]
    second = args.port + 1 if args.rerank_port is None else args.rerank_port
    if second and second != args.port:
        ports.append(second)
    servers: list[RerankServer] = []
    try:
        for port in ports:
            servers.append(
                RerankServer(
                    host=args.host, port=port, wire=args.wire, embedding_dim=args.embedding_dim, model=args.model
                ).start()
            )
    except OSError as exc:
        for server in servers:
            server.stop()
        print(f"error: cannot listen on {args.host}: {exc.strerror or exc}: choose another --port", file=sys.stderr)
        return 1
    urls = ", ".join(f"http://{args.host}:{s.port}" for s in servers)
    print(f"vllm_ranker.testing: {args.wire} rerank + /v1/embeddings stand-in at {urls} (Ctrl-C stops it)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
