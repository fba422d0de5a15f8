"""gRPC over HTTP/2 pieces the splicing front needs (the gRPC HTTP/2 protocol spec): no I/O.

A request body is read only as a gRPC server would read it: one length-prefixed message, decompressed with the
codec its ``grpc-encoding`` header names (gzip, deflate), within Milvus's message size limit.
"""

from __future__ import annotations

import zlib

import grpc

# Milvus's own limit on a request message (milvus.yaml ``grpc.serverMaxRecvSize``): a decompressed message past it
# is refused as Milvus refuses it, so a small compressed body cannot make the front hold gigabytes.
MAX_MESSAGE = 256 << 20
_WINDOW_BITS = {b"gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


class MessageError(Exception):
    """A request message the front cannot read: answered with this gRPC status, as a gRPC server would."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def grpc_timeout(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` header (``"250m"``), or None when it is not one."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    if unit is None or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * unit


def grpc_message(text: str) -> bytes:
    """``grpc-message``'s percent-encoding of a status message (the gRPC HTTP/2 spec)."""
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in text.encode())


def grpc_body(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_payload(body: bytes, encoding: bytes = b"identity") -> bytes:
    """The message of a request body that holds exactly one gRPC message, decompressed when it says so."""
    if len(body) < 5 or body[0] > 1 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise MessageError(grpc.StatusCode.INTERNAL, "the gateway expects one gRPC message per unary request")
    if not body[0]:
        return body[5:]
    bits = _WINDOW_BITS.get(encoding)
    if bits is None:
        name = encoding.decode("latin-1")
        raise MessageError(
            grpc.StatusCode.UNIMPLEMENTED, f'grpc: Decompressor is not installed for grpc-encoding "{name}"'
        )
    inflater = zlib.decompressobj(bits)
    try:
        message = inflater.decompress(body[5:], MAX_MESSAGE + 1)
    except zlib.error as exc:
        raise MessageError(grpc.StatusCode.INTERNAL, f"grpc: failed to decompress the message: {exc}") from None
    if len(message) > MAX_MESSAGE:
        raise MessageError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"grpc: received message after decompression larger than max ({MAX_MESSAGE})",
        )
    if not inflater.eof:
        raise MessageError(grpc.StatusCode.INTERNAL, "grpc: failed to decompress the message: truncated")
    return message
