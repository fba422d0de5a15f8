"""A Milvus backend that records what reaches it: a gRPC server relaying every call, as raw bytes, to the session's
``milvus-lite server``.

Milvus Lite neither authenticates nor logs its callers, so a test that must see what the backend received (the
``authorization`` a gateway forwards, which connection a search came on) puts this in front of it; the answers
are still Milvus Lite's own. Stopped and started again on the same port, it is also a backend that goes away and
comes back.

At the HTTP/2 level it is a Milvus server rather than Milvus Lite: grpc-go's 16 KiB frames and 64 KiB windows
(Milvus Lite's gRPC advertises 4 MiB of each, so an SDK sends any search below 4 MiB in one frame, which the
splicing front holds whole and never has to take over).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from pymilvus.grpc_gen import milvus_pb2

from vllm_ranker.gateway.backend import MESSAGE_OPTIONS, deadline_of, forwarded_metadata
from vllm_ranker.gateway.server import SERVER_KEEPALIVE

_SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
# grpc-go's defaults, which a Milvus server keeps: 16 KiB frames, 64 KiB stream windows that never grow (no BDP).
GRPC_GO_WINDOWS = [
    ("grpc.http2.max_frame_size", 16384),
    ("grpc.http2.lookahead_bytes", 65535),
    ("grpc.http2.bdp_probe", 0),
]


@dataclass(frozen=True)
class Seen:
    """One call as the backend received it: the method, its metadata and the connection it came on."""

    method: str
    metadata: dict[str, str]
    peer: str  # gRPC's "ipv4:127.0.0.1:PORT" of the caller's end of the connection: one per TCP connection


class RecordingBackend:
    """``start()`` serves on ``uri`` (the same port after a ``stop()``); ``seen`` lists the calls received."""

    def __init__(self, milvus_uri: str) -> None:
        self._milvus = grpc.insecure_channel(milvus_uri.removeprefix("http://"), options=MESSAGE_OPTIONS)
        self.seen: list[Seen] = []
        self.port = 0
        self._server: grpc.Server | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method.rpartition("/")[2] == method]

    def start(self) -> RecordingBackend:
        # A restart binds the port it had; the old listener's port can take a moment to be free again.
        deadline = time.monotonic() + 10
        while True:
            self._pool = ThreadPoolExecutor(8, thread_name_prefix="recording-backend")
            server = grpc.server(
                self._pool, handlers=[_Relay(self)], options=[*MESSAGE_OPTIONS, *SERVER_KEEPALIVE, *GRPC_GO_WINDOWS]
            )
            try:
                bound = server.add_insecure_port(f"127.0.0.1:{self.port}")
            except RuntimeError:
                bound = 0
            if bound:
                break
            self._pool.shutdown()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recording backend cannot listen on port {self.port} again")
            time.sleep(0.1)
        server.start()
        self.port, self._server = bound, server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(0).wait()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        self.stop()
        self._milvus.close()


class _Relay(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, owner: RecordingBackend) -> None:
        self.owner = owner

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = details.method
        described = _SERVICE.methods_by_name.get(method.rpartition("/")[2])
        channel = self.owner._milvus

        def onward(context: grpc.ServicerContext) -> dict[str, object]:
            """Record the call; what Milvus Lite is sent with it (the caller's metadata and deadline)."""
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            self.owner.seen.append(Seen(method, metadata, context.peer()))
            return {
                "metadata": forwarded_metadata(context.invocation_metadata(), None),
                "timeout": deadline_of(context.time_remaining()),
            }

        def relayed(answers: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            try:
                yield from answers
            except grpc.RpcError as exc:  # Milvus Lite's own code, as a real backend would end the stream
                context.abort(exc.code(), exc.details() or "")

        if described is not None and described.server_streaming:
            if described.client_streaming:

                def stream_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
                    return relayed(channel.stream_stream(method)(requests, **onward(context)), context)

                return grpc.stream_stream_rpc_method_handler(stream_stream)

            def unary_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                return relayed(channel.unary_stream(method)(request, **onward(context)), context)

            return grpc.unary_stream_rpc_method_handler(unary_stream)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                answer: bytes = channel.unary_unary(method)(request, **onward(context))
                return answer
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details() or "")
                raise  # pragma: no cover - abort raises

        return grpc.unary_unary_rpc_method_handler(unary)
