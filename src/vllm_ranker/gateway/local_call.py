"""A call the splicing front answers itself, seen by ``GatewayHandler`` as a gRPC server call.

The handler needs four things of its ``grpc.ServicerContext``: the caller's metadata, the time left before its
deadline, a callback for when the caller gives up, and ``abort``. ``LocalCall`` gives them from the request
headers the front decoded, so the front and the gRPC server run one handler, not two.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from .h2wire import END_HEADERS, END_STREAM, HEADERS, encode_headers, frame, grpc_body, grpc_message, grpc_timeout

if TYPE_CHECKING:
    from .proxy import GatewayHandler

log = logging.getLogger(__name__)
Result = tuple[int, str, bytes | None]  # gRPC status code, its message, the answer (None unless the code is 0)
_GRPC_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


class Aborted(Exception):
    """``LocalCall.abort``: the call ends with this gRPC status instead of an answer."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class LocalCall:
    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.metadata: list[tuple[str, str | bytes]] = []
        self.deadline: float | None = None
        for name, value in headers:
            if name.startswith(b":"):
                continue
            key = name.decode("latin-1")
            if key == "grpc-timeout":
                seconds = grpc_timeout(value)
                self.deadline = None if seconds is None else time.monotonic() + seconds
            elif key.endswith("-bin"):  # binary metadata travels base64-encoded; gRPC hands it over decoded
                self.metadata.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            else:
                self.metadata.append((key, value.decode("latin-1")))
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []
        self.cancelled = False

    def invocation_metadata(self) -> list[tuple[str, str | bytes]]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def add_callback(self, callback: Callable[[], object]) -> bool:
        with self._lock:
            if not self.cancelled:
                self._callbacks.append(callback)
                return True
        callback()  # already gone: stop at once rather than serve nobody
        return True

    def cancel(self) -> None:
        """The caller reset the stream or hung up: what the handler registered is told."""
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def serve(handler: GatewayHandler, method: str, payload: bytes | None, context: LocalCall) -> Result:
    """In a worker thread: the handler's answer to one call the front took."""
    if payload is None:
        return grpc.StatusCode.UNIMPLEMENTED.value[0], "the gateway cannot read a compressed request", None
    try:
        servicer_context: Any = context  # what GatewayHandler uses of a grpc.ServicerContext, LocalCall has
        return 0, "", handler.unary_call(method, payload, servicer_context)
    except Aborted as exc:
        return exc.code.value[0], exc.details, None
    except Exception as exc:
        log.exception("the gateway's answer to %s failed", method.rpartition("/")[2])
        return grpc.StatusCode.UNKNOWN.value[0], f"gateway error: {type(exc).__name__}: {exc}", None


def answer_frames(stream: int, result: Result) -> tuple[bytes, bytes, bytes]:
    """(response headers frame, gRPC body to send in DATA frames, trailers frame) of a call's result; an error is
    a trailers-only answer."""
    code, details, message = result
    if message is None:
        trailers = [*_GRPC_HEADERS, (b"grpc-status", str(code).encode()), (b"grpc-message", grpc_message(details))]
        return b"", b"", frame(HEADERS, END_HEADERS | END_STREAM, stream, encode_headers(trailers))
    return (
        frame(HEADERS, END_HEADERS, stream, encode_headers(_GRPC_HEADERS)),
        grpc_body(message),
        frame(HEADERS, END_HEADERS | END_STREAM, stream, encode_headers([(b"grpc-status", b"0")])),
    )
