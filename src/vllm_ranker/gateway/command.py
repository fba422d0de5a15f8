"""vllm-ranker gateway: Milvus's gRPC protocol in front of any Milvus, with the model rankers added.

Any Milvus SDK (pymilvus, Node.js, Go, Java, Attu, LangChain...) connects to the gateway as to Milvus and
searches with a RERANK Function of reranker "model" (provider vllm, tei, cohere...); the gateway reranks those
searches and forwards every other call to the backend untouched.

examples:
  vllm-ranker gateway                                       # Milvus Lite file ./milvus.db behind 127.0.0.1:19530
  vllm-ranker gateway --backend http://milvus:19530 --port 19531
  VLLM_RANKER_BACKEND_TOKEN=root:Milvus vllm-ranker gateway --backend https://milvus.example:19530
  vllm-ranker gateway --config milvus.yaml                  # provider keys and URLs, as Milvus configures them
  vllm-ranker gateway --host 0.0.0.0 --tls-cert gw.pem --tls-key gw.key --allow-endpoint http://vllm:8000

Beyond loopback (docs/security.md, "The gateway's threat model"), the gateway starts only with an endpoint policy
(--allow-endpoint, or vllm_ranker.allowed_endpoints in --config; or --allow-any-endpoint), with TLS (or --insecure),
and with no --token unless --token-for-anonymous-callers and TLS say it is meant.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from .settings import DEFAULT_GRACE_S, DEFAULT_WORKERS, BackendError, GatewayError

TOKEN_ENV = "VLLM_RANKER_BACKEND_TOKEN"
log = logging.getLogger("vllm_ranker.gateway")


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every option's default in its help."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``gateway`` subcommand on an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gateway",
        help="serve Milvus's gRPC protocol in front of any Milvus, with model rankers for every SDK",
        description=__doc__,
        formatter_class=_Help,
    )
    parser.add_argument(
        "--backend",
        default="./milvus.db",
        help="the Milvus behind the gateway, as pymilvus's uri: a Milvus Lite file (.db, started on a private "
        "loopback port and stopped on exit) or http(s)://host:port of a Milvus server or cluster proxy",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (anything but loopback exposes the backend)"
    )
    parser.add_argument("--port", type=int, default=19530, help="port to listen on (0 picks a free one)")
    parser.add_argument(
        "--token",
        default="",
        help=f"token (user:password or API key) for the backend, used when a caller sends none; visible in "
        f"`ps`: prefer the environment variable {TOKEN_ENV}",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="the rerank providers' configuration in milvus.yaml's shape (a whole milvus.yaml will do): "
        "credential.<name>.apikey and function.rerank.model.providers.<provider>.{credential,url,enable}, "
        "used where a search's ranker carries no key or endpoint; default: the file named by VLLM_RANKER_CONFIG, "
        "else the providers' environment variables",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: serve TLS (with --tls-key)")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    policy = parser.add_argument_group(
        "exposure", "where documents may go and who may call (required beyond loopback: docs/security.md)"
    )
    policy.add_argument(
        "--allow-endpoint",
        action="append",
        default=[],
        metavar="PREFIX",
        help="a rerank endpoint callers may name: a URL prefix (http://vllm:8000, https://api.cohere.com/v2) or an "
        "address or network (10.0.0.0/8); repeatable, added to --config's vllm_ranker.allowed_endpoints and the "
        "configured providers' URLs; any other endpoint is refused before the first-stage search",
    )
    policy.add_argument(
        "--deny-address",
        action="append",
        default=[],
        metavar="NET",
        help="a network no allowed host name may resolve to (beside link-local and metadata addresses, always "
        "refused unless allowed by address); repeatable, with an allowlist",
    )
    policy.add_argument(
        "--allow-any-endpoint",
        action="store_true",
        help="UNSAFE beyond loopback: accept every endpoint a caller names (any URL this machine reaches receives "
        "the documents of the caller's hits)",
    )
    policy.add_argument(
        "--insecure",
        action="store_true",
        help="beyond loopback without --tls-cert: accept clear text (TLS ends in front of the gateway, or the "
        "network is trusted)",
    )
    policy.add_argument(
        "--token-for-anonymous-callers",
        action="store_true",
        help="beyond loopback: allow --token, which every caller that sends no token of its own then acts as "
        "(needs --tls-cert)",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="calls served at once")
    parser.add_argument(
        "--grace", type=float, default=DEFAULT_GRACE_S, help="seconds calls in flight get to finish on SIGTERM"
    )
    parser.add_argument(
        "--no-splice",
        action="store_true",
        help="end every call in the gateway's gRPC server instead of splicing SDK connections to the backend "
        "(slower; TLS, --token and TLS backends always do)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this loopback port (needs the metrics extra); off when not given",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log verbosity"
    )
    parser.set_defaults(func=run)
    return parser


def configure_logging(level: str) -> None:
    """The gateway's log at ``level``; the HTTP clients' line per request (httpx logs each rerank call at INFO)
    only at debug, where it is wanted: at info a busy gateway would log every reranked search."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def run(args: argparse.Namespace) -> int:
    """Execute ``vllm-ranker gateway``; returns the exit code. User errors raise with a one-line message."""
    from . import metrics  # it loads Milvus's protocol descriptors: not for `gateway --help`

    configure_logging(args.log_level)
    if not 0 <= args.port <= 65535:
        raise GatewayError(f"--port {args.port}: give a port from 0 to 65535")
    if args.metrics_port is not None and not metrics.available():
        raise GatewayError("--metrics-port needs prometheus_client: pip install 'vllm-ranker[metrics]'")
    from vllm_ranker.core import EndpointPolicy, ProviderConfigError

    from .server import Gateway  # grpc and pymilvus: not for --help

    flags = None
    if args.allow_endpoint or args.deny_address:
        try:
            flags = EndpointPolicy.parse(args.allow_endpoint, args.deny_address)
        except ValueError as exc:  # names the entry to change
            raise GatewayError(str(exc)) from None
    try:
        gateway = Gateway(
            args.backend,
            host=args.host,
            port=args.port,
            token=args.token or os.environ.get(TOKEN_ENV, ""),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            workers=args.workers,
            grace=args.grace,
            splice=not args.no_splice,
            config=args.config,
            endpoint_policy=flags,
            allow_any_endpoint=args.allow_any_endpoint,
            insecure=args.insecure,
            token_for_anonymous_callers=args.token_for_anonymous_callers,
        )
    except ProviderConfigError as exc:  # a file or value to change, as its message says (the file, the key path)
        raise GatewayError(f"--config {exc}" if args.config else str(exc)) from None
    log.info("rerank providers: %s", gateway.config)  # names, URLs and where keys come from: never a key
    log.info("rerank endpoint policy: %s", gateway.config.policy)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            gateway.start()
        except BackendError as exc:  # a --backend to change, as its message says: the user's, like GatewayError
            raise GatewayError(str(exc)) from exc
        if args.metrics_port is not None:
            metrics.serve(args.metrics_port)
        log.info(
            "vllm-ranker gateway listening on %s:%d%s, backend %s",
            args.host,
            gateway.port,
            " (TLS)" if gateway.tls else "",
            gateway.backend_label,
        )
        while not stop.wait(1.0):
            if gateway.wait(0):  # the server ended on its own
                break
        log.info("stopping: calls in flight get %g s to finish", args.grace)
    finally:
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
