"""HTTP/2 wire pieces the splicing front needs (RFC 9113, RFC 7541): no I/O.

The front never terminates HTTP/2: it cuts the byte streams at frame headers, checks each frame's shape (what a
receiver must refuse, it refuses: ``ProtocolError`` carries the RFC's error code), reads what it must and writes only
whole frames of its own. Header blocks it writes use no dynamic table, so they change no HPACK state.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x4
SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 0x5, 0x6
# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = (
    0x5,
    0x6,
    0x7,
    0x8,
    0x9,
    0xB,
)
DEFAULT_WINDOW = 65535
DEFAULT_HEADER_TABLE = 4096
MAX_WINDOW = (1 << 31) - 1
MAX_FRAME = 16384  # the frame size every HTTP/2 peer accepts
_LARGEST_FRAME = (1 << 24) - 1

Frame = tuple[int, int, int, bytes]  # (type, flags, stream id, the whole frame, header included)


class ProtocolError(Exception):
    """A peer sent what HTTP/2 forbids: the connection ends with a GOAWAY carrying ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def pending_length(rest: bytes) -> int:
    """The payload length announced by an unfinished frame (0 while its header is incomplete): a receiver refuses a
    frame over its SETTINGS_MAX_FRAME_SIZE before buffering it whole."""
    return int.from_bytes(rest[:3], "big") if len(rest) >= 3 else 0


_STREAM_ZERO = {SETTINGS, PING, GOAWAY}
_STREAM_NONZERO = {DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, PUSH_PROMISE, CONTINUATION}
_FIXED_LENGTH = {PRIORITY_FRAME: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}


def check(kind: int, flags: int, stream: int, raw: bytes, max_frame: int) -> None:
    """Refuse a frame whose shape RFC 9113 forbids (§4.2, §6): wrong stream, wrong length, too large."""
    length = len(raw) - 9
    name = _NAMES.get(kind, f"type {kind}")
    if length > max_frame:
        raise ProtocolError(FRAME_SIZE_ERROR, f"a {name} frame of {length} bytes, over the {max_frame}-byte limit")
    if kind in _STREAM_ZERO and stream:
        raise ProtocolError(PROTOCOL_ERROR, f"a {name} frame on stream {stream}")
    if kind in _STREAM_NONZERO and not stream:
        raise ProtocolError(PROTOCOL_ERROR, f"a {name} frame on stream 0")
    fixed = _FIXED_LENGTH.get(kind)
    if fixed is not None and length != fixed:
        raise ProtocolError(FRAME_SIZE_ERROR, f"a {name} frame of {length} bytes (it has {fixed})")
    if kind == SETTINGS and (length % 6 or (flags & ACK and length)):
        raise ProtocolError(FRAME_SIZE_ERROR, f"a SETTINGS frame of {length} bytes")
    if kind == GOAWAY and length < 8:
        raise ProtocolError(FRAME_SIZE_ERROR, f"a GOAWAY frame of {length} bytes")
    if kind == WINDOW_UPDATE and not int.from_bytes(raw[9:13], "big") & 0x7FFFFFFF:
        # A zero increment: a stream error on a stream, a connection error on the connection (§6.9); the front
        # cannot end one stream of a peer's cleanly, so both end the connection.
        raise ProtocolError(PROTOCOL_ERROR, f"a WINDOW_UPDATE of 0 on stream {stream}")


_NAMES = dict(
    enumerate(["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY"])
) | {WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION"}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, increment.to_bytes(4, "big"))


def rst_stream(stream: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream, code.to_bytes(4, "big"))


def goaway(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, last_stream.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)


def goaway_fields(raw: bytes) -> tuple[int, int, bytes]:
    """(last stream id, error code, debug data) of a whole GOAWAY frame."""
    return int.from_bytes(raw[9:13], "big") & 0x7FFFFFFF, int.from_bytes(raw[13:17], "big"), raw[17:]


def header_block(stream: int, flags: int, block: bytes, max_frame: int = MAX_FRAME) -> bytes:
    """A whole header block as one HEADERS frame and the CONTINUATION frames it needs to fit ``max_frame``."""
    pieces = [block[at : at + max_frame] for at in range(0, len(block), max_frame)] or [b""]
    out = [frame(HEADERS, flags & ~END_HEADERS | (END_HEADERS if len(pieces) == 1 else 0), stream, pieces[0])]
    for at, piece in enumerate(pieces[1:], 2):
        out.append(frame(CONTINUATION, END_HEADERS if at == len(pieces) else 0, stream, piece))
    return b"".join(out)


def settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS payload's (identifier, value) pairs, refused where a value is out of range (§6.5.2)."""
    pairs = [struct.unpack_from(">HI", payload, i) for i in range(0, len(payload) - 5, 6)]
    for key, value in pairs:
        if key == SETTINGS_ENABLE_PUSH and value > 1:
            raise ProtocolError(PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH {value}")
        if key == SETTINGS_INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise ProtocolError(FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value}")
        if key == SETTINGS_MAX_FRAME_SIZE and not MAX_FRAME <= value <= _LARGEST_FRAME:
            raise ProtocolError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
    return pairs


def without_header_table(payload: bytes) -> bytes:
    """A SETTINGS payload with SETTINGS_HEADER_TABLE_SIZE 0: the peer then encodes headers without a dynamic table,
    so a header block the front drops or adds never leaves the SDK's HPACK decoder out of step."""
    entries = [(key, value) for key, value in settings(payload) if key != SETTINGS_HEADER_TABLE_SIZE]
    return b"".join(struct.pack(">HI", key, value) for key, value in [*entries, (SETTINGS_HEADER_TABLE_SIZE, 0)])


def _unpadded(kind: int, flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload:
        raise ProtocolError(FRAME_SIZE_ERROR, f"a padded {_NAMES[kind]} frame without its pad length")
    if payload[0] >= len(payload):
        raise ProtocolError(PROTOCOL_ERROR, f"a {_NAMES[kind]} frame padded past its end")
    return payload[1 : len(payload) - payload[0]]


def block_fragment(flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS frame's payload (padding and priority removed)."""
    fragment = _unpadded(HEADERS, flags, payload)
    if flags & PRIORITY:
        if len(fragment) < 5:
            raise ProtocolError(FRAME_SIZE_ERROR, "a HEADERS frame too short for its priority")
        return fragment[5:]
    return fragment


def data_of(flags: int, payload: bytes) -> bytes:
    """The data of a DATA frame's payload (padding removed)."""
    return _unpadded(DATA, flags, payload)


def _integer_end(block: bytes, at: int, prefix_bits: int) -> int:
    """Where an HPACK integer starting at ``at`` ends (RFC 7541 §5.1)."""
    if block[at] & ((1 << prefix_bits) - 1) != (1 << prefix_bits) - 1:
        return at + 1
    at += 1
    while block[at] & 0x80:
        at += 1
    return at + 1


def _string_end(block: bytes, at: int) -> int:
    end = _integer_end(block, at, 7)
    length = block[at] & 0x7F
    if length == 0x7F:
        length, shift = 0x7F, 0
        for byte in block[at + 1 : end]:
            length += (byte & 0x7F) << shift
            shift += 7
    return end + length


def changes_table(block: bytes) -> bool:
    """Whether an HPACK block (already decoded, so well formed) adds to or resizes the decoder's dynamic table: only
    then must the peer's decoder see it (RFC 7541 §6: incremental indexing, and dynamic table size updates)."""
    at = 0
    while at < len(block):
        first = block[at]
        if first & 0x80:  # indexed field
            at = _integer_end(block, at, 7)
        elif first & 0xC0 == 0x40 or first & 0xE0 == 0x20:
            return True
        else:  # literal without indexing or never indexed
            named = first & 0x0F
            at = _integer_end(block, at, 4)
            if not named:
                at = _string_end(block, at)
            at = _string_end(block, at)
    return False


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
    and it changes nothing in it. ``:status: 200`` is the static table's entry 8.

    It opens with a dynamic table size update to 0. An SDK that announced a HEADER_TABLE_SIZE below the default
    (h2, for one) refuses a first block after that without a size update (RFC 7541 §4.2), and the front's answer may
    be that first block; 0 is what the backend's encoder already keeps (the front rewrote the SDK's SETTINGS to 0),
    so the update never changes the SDK's table."""
    out = bytearray(b"\x20")
    for name, value in headers:
        if name == b":status" and value == b"200":
            out.append(0x88)
            continue
        out += _integer(0, 4, 0x00) + _integer(len(name), 7, 0) + name + _integer(len(value), 7, 0) + value
    return bytes(out)
