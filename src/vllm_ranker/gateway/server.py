"""``Gateway``: the gRPC server in front of one Milvus backend (started, served, stopped).

Holds no state beyond caches (schemas, HTTP pools), so several gateways behind a TCP load balancer can serve
one Milvus cluster.
"""

from __future__ import annotations

import logging
from concurrent import futures
from pathlib import Path

import grpc

from vllm_ranker.core import EndpointPolicy
from vllm_ranker.provider_settings import ConfigSource, load_provider_config

from .backend import MESSAGE_OPTIONS, Backend, LiteServer, grpc_target, is_lite_file
from .exposure import Exposure, combined_policy, startup_problem, startup_warnings
from .front import Front
from .proxy import GatewayHandler
from .rerank import Reranker
from .settings import DEFAULT_GRACE_S, DEFAULT_WORKERS, BackendError, GatewayError

log = logging.getLogger(__name__)

# pymilvus pings its channel every 10 s with or without calls; a Milvus server allows that, gRPC's defaults
# answer with GOAWAY "too_many_pings" (the same policy as the project's milvus-lite launcher).
SERVER_KEEPALIVE = [
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),  # a port already in use is an error, not a silent second listener
]


class Gateway:
    """``with Gateway("./milvus.db", port=0) as gw: ...`` serves on ``gw.uri`` until the block ends.

    Beyond loopback the rules of exposure.py hold (an endpoint policy, TLS, no --token lent unasked): the keyword
    arguments ``endpoint_policy`` (added to the config file's), ``allow_any_endpoint``, ``insecure`` and
    ``token_for_anonymous_callers`` are the command line's flags of those names."""

    def __init__(
        self,
        backend: str = "./milvus.db",
        *,
        host: str = "127.0.0.1",
        port: int = 19530,
        token: str = "",
        tls_cert: str | None = None,
        tls_key: str | None = None,
        workers: int = DEFAULT_WORKERS,
        grace: float = DEFAULT_GRACE_S,
        splice: bool = True,
        config: ConfigSource = None,
        endpoint_policy: EndpointPolicy | None = None,
        allow_any_endpoint: bool = False,
        insecure: bool = False,
        token_for_anonymous_callers: bool = False,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise GatewayError("give both --tls-cert and --tls-key (PEM files), or neither")
        if workers < 1:
            raise GatewayError(f"--workers {workers}: give at least 1")
        # The providers' keys, URLs and enable (--config, milvus.yaml's shape): read now, so a bad file fails first.
        loaded = load_provider_config(config)
        try:
            policy = combined_policy(loaded.policy, endpoint_policy)
        except ValueError as exc:
            raise GatewayError(str(exc)) from None
        exposure = Exposure(
            host, bool(tls_cert), bool(token), allow_any_endpoint, insecure, token_for_anonymous_callers
        )
        problem = startup_problem(exposure, policy)
        if problem is not None:
            raise GatewayError(problem)
        for warning in startup_warnings(exposure):
            log.warning("%s", warning)
        # Where documents may go, checked by the flows before any search and by the transport at each connect.
        self.config = loaded.with_policy(policy)
        self.backend_uri = backend
        self.host = host
        self.port = port
        self.token = token
        self.tls = (tls_cert, tls_key) if tls_cert and tls_key else None
        self.workers = workers
        self.grace = grace
        # The splicing front (front.py) serves plain-TCP callers of a plain-TCP backend; TLS on either side, or a
        # --token to add to callers' headers, needs calls terminated: the gRPC server alone serves those.
        self.splice = splice
        self._front: Front | None = None
        self._lite: LiteServer | None = None
        self._backend: Backend | None = None
        self._server: grpc.Server | None = None
        self._reranker: Reranker | None = None
        self._pool: futures.ThreadPoolExecutor | None = None

    @property
    def uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def backend_label(self) -> str:
        """The backend as the user named it (a file path or a URI; never the token)."""
        return f"{self.backend_uri} (Milvus Lite)" if is_lite_file(self.backend_uri) else self.backend_uri

    def start(self) -> Gateway:
        credentials = self._credentials()
        target = self.backend_uri
        try:
            if is_lite_file(target):
                self._lite = LiteServer(target).start()
                target = self._lite.uri
            self._backend = Backend(target, self.token)
            # Messages name the backend as the user gave it (a file path or a URI, never a token).
            self._backend.uri = self.backend_label
            self._reranker = Reranker(self._backend, self.config)
            handler = GatewayHandler(self._backend, self._reranker)
            self._pool = futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gateway")
            server = grpc.server(
                self._pool,
                handlers=[handler],
                options=[*MESSAGE_OPTIONS, *SERVER_KEEPALIVE],
                maximum_concurrent_rpcs=None,
            )
            backend_address, backend_tls = grpc_target(target)
            front = self.splice and credentials is None and self._backend.token_header is None and not backend_tls
            host, port = ("127.0.0.1", 0) if front else (self.host, self.port)
            address = _address(host, port)
            try:
                bound = (
                    server.add_secure_port(address, credentials)
                    if credentials is not None
                    else server.add_insecure_port(address)
                )
            except RuntimeError:
                bound = 0
            if not bound:
                raise _cannot_listen(address)
            server.start()
            self._server = server
            if not front:
                self.port = bound
            else:
                backend_host, _, backend_port = backend_address.rpartition(":")
                self._front = Front(
                    (self.host, self.port), (backend_host.strip("[]"), int(backend_port)), bound, handler, self._pool
                )
                try:
                    self.port = self._front.start()
                except OSError:
                    self._front = None
                    raise _cannot_listen(_address(self.host, self.port)) from None
        except BaseException:
            self.stop(0)
            raise
        return self

    def _credentials(self) -> grpc.ServerCredentials | None:
        if self.tls is None:
            return None
        cert, key = self.tls
        try:
            pair = (Path(key).read_bytes(), Path(cert).read_bytes())
        except OSError as exc:
            raise GatewayError(f"cannot read the TLS files: {exc.strerror}: {exc.filename}") from None
        return grpc.ssl_server_credentials([pair])

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (True) or ``timeout`` passes (False)."""
        if self._server is None:
            return True
        timed_out: bool = self._server.wait_for_termination(timeout)  # grpc answers "timed out", not "stopped"
        return not timed_out

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let calls in flight finish within ``grace`` seconds, then close the backend."""
        grace = self.grace if grace is None else grace
        front, self._front = self._front, None
        if front is not None:
            front.stop(grace)
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # grpc leaves its executor running: its threads would outlive the gateway
        reranker, self._reranker = self._reranker, None
        if reranker is not None:
            reranker.close()
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        lite, self._lite = self._lite, None
        if lite is not None:
            lite.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(host: str, port: int) -> str:
    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"


def _cannot_listen(address: str) -> GatewayError:
    return GatewayError(
        f"cannot listen on {address}: the port is in use or the address is not this machine's; "
        "give another --port or --host"
    )


__all__ = ["BackendError", "Gateway", "GatewayError"]
