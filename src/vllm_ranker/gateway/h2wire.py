"""HTTP/2 and gRPC wire pieces the splicing front needs (RFC 9113, RFC 7541, gRPC over HTTP/2): no I/O.

The front never terminates HTTP/2: it cuts the byte streams at frame headers, reads what it must (the SDK's
request headers, the searches' request messages) and writes only whole frames of its own (its answers, window
credits, stream resets). Header blocks it writes use no dynamic table, so they change no HPACK state.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x4
CANCEL = 0x8
DEFAULT_WINDOW = 65535
MAX_FRAME = 16384  # the frame size every HTTP/2 peer accepts

Frame = tuple[int, int, int, bytes]  # (type, flags, stream id, the whole frame, header included)


def cut(buffer: bytes) -> tuple[list[Frame], bytes]:
    """The whole frames at the start of ``buffer``, and the bytes of an unfinished frame left after them."""
    frames: list[Frame] = []
    at, size = 0, len(buffer)
    while size - at >= 9:
        end = at + 9 + int.from_bytes(buffer[at : at + 3], "big")
        if end > size:
            break
        stream = int.from_bytes(buffer[at + 5 : at + 9], "big") & 0x7FFFFFFF
        frames.append((buffer[at + 3], buffer[at + 4], stream, buffer[at:end]))
        at = end
    return frames, buffer[at:]


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, increment.to_bytes(4, "big"))


def rst_stream(stream: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream, code.to_bytes(4, "big"))


def settings(payload: bytes) -> list[tuple[int, int]]:
    return [struct.unpack_from(">HI", payload, i) for i in range(0, len(payload) - 5, 6)]


def without_header_table(payload: bytes) -> bytes:
    """A SETTINGS payload with SETTINGS_HEADER_TABLE_SIZE 0: the peer then encodes headers without a dynamic table,
    so a header block the front drops or adds never leaves the SDK's HPACK decoder out of step."""
    entries = [(key, value) for key, value in settings(payload) if key != SETTINGS_HEADER_TABLE_SIZE]
    return b"".join(struct.pack(">HI", key, value) for key, value in [*entries, (SETTINGS_HEADER_TABLE_SIZE, 0)])


def block_fragment(flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS frame's payload (padding and priority removed)."""
    start, stop = 0, len(payload)
    if flags & PADDED:
        start, stop = 1, len(payload) - payload[0]
    if flags & PRIORITY:
        start += 5
    return payload[start:stop]


def data_of(flags: int, payload: bytes) -> bytes:
    """The data of a DATA frame's payload (padding removed)."""
    return payload[1 : len(payload) - payload[0]] if flags & PADDED else payload


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out, value = [first | limit], value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals without indexing (no Huffman): valid whatever the peer's dynamic table holds,
    and it changes nothing in it. ``:status: 200`` is the static table's entry 8."""
    out = bytearray()
    for name, value in headers:
        if name == b":status" and value == b"200":
            out.append(0x88)
            continue
        out += _integer(0, 4, 0x00) + _integer(len(name), 7, 0) + name + _integer(len(value), 7, 0) + value
    return bytes(out)


_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


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


def grpc_payload(body: bytes) -> bytes | None:
    """The message of a request body holding one uncompressed gRPC message, else None (the backend decides)."""
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        return None
    return body[5:]
