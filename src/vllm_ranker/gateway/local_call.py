"""A call the splicing front answers itself, seen by ``GatewayHandler`` as a gRPC server call.

The handler needs five things of its ``grpc.ServicerContext``: the caller's metadata, the time left before its
deadline, a callback for when the caller gives up, ``abort``, and the caller's address (``peer``, for the audit
line). ``LocalCall`` gives them from the request headers the front decoded and the SDK connection's address, so the
front and the gRPC server run one handler, not two.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from .grpc_wire import grpc_body, grpc_message, grpc_timeout
from .h2wire import END_HEADERS, END_STREAM, encode_headers, header_block

if TYPE_CHECKING:
    from .proxy import GatewayHandler

log = logging.getLogger(__name__)
Result = tuple[int, str, bytes | None]  # gRPC status code, its message, the answer (None unless the code is 0)
_GRPC_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
# A status message longer than this is cut (gRPC's default metadata limit is 8 KiB); the other trailers and the
# header list's per-field overhead (RFC 9113 §6.5.2: 32 bytes a field) fit in the rest.
_MESSAGE_LIMIT = 8192
_HEADER_LIST_OVERHEAD = 256


class Aborted(Exception):
    """``LocalCall.abort``: the call ends with this gRPC status instead of an answer."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class LocalCall:
    def __init__(self, headers: list[tuple[bytes, bytes]], peer: str = "-") -> None:
        self._peer = peer  # gRPC's form: "ipv4:10.0.0.7:51234", "ipv6:[::1]:51234"
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

    def peer(self) -> str:
        return self._peer

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


def peer_of(address: object) -> str:
    """A socket's peer address (``getpeername``) as gRPC's ``context.peer()`` writes it."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    return "-"


def serve(handler: GatewayHandler, method: str, payload: bytes, context: LocalCall) -> Result:
    """In a worker thread: the handler's answer to one call the front took."""
    try:
        servicer_context: Any = context  # what GatewayHandler uses of a grpc.ServicerContext, LocalCall has
        return 0, "", handler.unary_call(method, payload, servicer_context)
    except Aborted as exc:
        return exc.code.value[0], exc.details, None
    except Exception as exc:
        log.exception("the gateway's answer to %s failed", method.rpartition("/")[2])
        return grpc.StatusCode.UNKNOWN.value[0], f"gateway error: {type(exc).__name__}: {exc}", None


def _cut(details: str, limit: int) -> bytes:
    """``grpc-message`` of ``details`` in at most ``limit`` bytes, never ending inside a percent-escape."""
    text = grpc_message(details)
    if len(text) <= limit:
        return text
    text = text[: max(limit, 0)]
    escape = text.rfind(b"%", len(text) - 2)
    return text[:escape] if escape >= 0 else text


def answer_frames(stream: int, result: Result, header_list_limit: int | None = None) -> tuple[bytes, bytes, bytes]:
    """(response headers frames, gRPC body to send in DATA frames, trailers frames) of a call's result; an error is
    a trailers-only answer. A header block larger than a frame continues in CONTINUATION frames, and a status
    message is cut to what the SDK's SETTINGS_MAX_HEADER_LIST_SIZE takes (gRPC's own default bounds it at 8 KiB)."""
    code, details, message = result
    if message is None:
        limit = min(_MESSAGE_LIMIT, (header_list_limit or _MESSAGE_LIMIT) - _HEADER_LIST_OVERHEAD)
        trailers = [*_GRPC_HEADERS, (b"grpc-status", str(code).encode()), (b"grpc-message", _cut(details, limit))]
        return b"", b"", header_block(stream, END_HEADERS | END_STREAM, encode_headers(trailers))
    return (
        header_block(stream, END_HEADERS, encode_headers(_GRPC_HEADERS)),
        grpc_body(message),
        header_block(stream, END_HEADERS | END_STREAM, encode_headers([(b"grpc-status", b"0")])),
    )
