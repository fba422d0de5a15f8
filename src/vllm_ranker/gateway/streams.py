"""What the splicing front keeps of each stream of a connection: one record with an explicit state, and the
header-block assembler of each direction."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import cast

import hpack

from . import h2wire as wire
from .local_call import LocalCall

# A header block larger than this (all its frames) ends the connection: a peer cannot make the front buffer
# without bound by sending CONTINUATION frames forever (the "CONTINUATION flood"). gRPC's own limit is 16 KiB of
# metadata by default; Milvus's SDKs send well under 1 KiB.
MAX_BLOCK = 1 << 20

Headers = list[tuple[bytes, bytes]]

# hpack logs every header it encodes or decodes at DEBUG, values included: the callers' `authorization` tokens would
# be in a gateway's log at --log-level debug (found by tests/hostile/test_secrets.py). Its INFO and above still show.
logging.getLogger("hpack").setLevel(logging.INFO)


class State(enum.Enum):
    PASSING = "passing"  # the backend has the call: its frames are copied
    HELD = "held"  # a search held until its request ends and is judged (or grows past the hold limit)
    LOCAL = "local"  # the front answers it: the request is received, then answered in the front's own frames


@dataclass
class Stream:
    id: int
    method: str
    headers: Headers
    state: State = State.PASSING
    started: float = field(default_factory=time.perf_counter)
    encoding: bytes = b"identity"  # the request's grpc-encoding
    copy: bytearray | None = None  # the request of a schema change, to forget the schema once it succeeded
    responded: bool = False  # the backend has sent the answer's headers
    # HELD: the request as it came
    withheld: bytes = b""  # the request's header block while the backend has not seen it
    frames: list[bytes] = field(default_factory=list)  # held DATA frames, and trailers
    data: list[bytes] = field(default_factory=list)  # the request's data (padding removed)
    flow: int = 0  # held flow-controlled bytes (padding included)
    credits: int = 0  # the SDK's credits for this stream's answer, received while held
    trailers: bytes = b""  # the request's trailers (rare in gRPC, legal in HTTP/2)
    trailers_change_table: bool = False
    # LOCAL
    context: LocalCall | None = None
    backend_open: bool = False  # the backend saw the headers and no reset yet
    ended: bool = False  # the SDK's request has ended
    window: int = 0  # what the SDK's stream window still takes of the answer
    head: bytes = b""
    body: bytes = b""
    tail: bytes | None = None  # set once answered


class HeaderBlocks:
    """One direction's header blocks, assembled whole (HEADERS or PUSH_PROMISE, then CONTINUATION frames until
    END_HEADERS) and decoded in order, as that direction's receiver decodes them."""

    def __init__(self, table_limit: int) -> None:
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = table_limit
        self.decoder.max_header_list_size = MAX_BLOCK
        self.stream: int | None = None  # the stream of the block being assembled
        self._flags = 0
        self._frames: list[bytes] = []
        self._fragments: list[bytes] = []
        self._size = 0

    def add(self, kind: int, flags: int, stream: int, raw: bytes) -> tuple[int, bytes, bytes, Headers] | None:
        """Once a block is whole: (its first frame's flags, the HPACK block, every frame of it, the fields)."""
        if kind == wire.CONTINUATION:
            if self.stream != stream:
                raise wire.ProtocolError(
                    wire.PROTOCOL_ERROR, f"a CONTINUATION frame on stream {stream} continues no block"
                )
            fragment = raw[9:]
        else:
            self.stream, self._flags, self._frames, self._fragments, self._size = stream, flags, [], [], 0
            if kind == wire.HEADERS:
                fragment = wire.block_fragment(flags, raw[9:])
            else:  # PUSH_PROMISE: padding, then the promised stream id
                fragment = wire.data_of(flags & wire.PADDED, raw[9:])[4:]
        self._frames.append(raw)
        self._fragments.append(fragment)
        self._size += len(raw)
        if self._size > MAX_BLOCK:
            raise wire.ProtocolError(
                wire.ENHANCE_YOUR_CALM, f"a header block over {MAX_BLOCK} bytes on stream {stream}"
            )
        if not flags & wire.END_HEADERS:
            return None
        self.stream = None
        block = b"".join(self._fragments)
        try:
            headers = cast(Headers, self.decoder.decode(block, raw=True))
        except hpack.HPACKError as exc:
            raise wire.ProtocolError(
                wire.COMPRESSION_ERROR, f"undecodable header block on stream {stream}: {exc}"
            ) from None
        return self._flags, block, b"".join(self._frames), headers
