"""What a connection of tests/gateway/h2_client.py does, as data: the SETTINGS it announces, its calls and how each
call's frames are cut, the order of its steps; and what came back. A failing plan prints as what it varied.
"""

from __future__ import annotations

import dataclasses
import gzip
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from h2.settings import SettingCodes

# How the client gives back the window the server's DATA took: at once, in 97-byte WINDOW_UPDATEs, only once the
# server falls silent, or as h2's own window manager decides.
CREDITS = ("eager", "trickle", "idle", "h2")


def _brief(self: object) -> str:
    """A plan's repr without the fields left at their defaults: a failing plan reads as what it varied."""
    shown = []
    for item in dataclasses.fields(self):  # type: ignore[arg-type]
        value = getattr(self, item.name)
        if item.repr and (item.default is dataclasses.MISSING or value != item.default):
            shown.append(f"{item.name}={value!r}")
    return f"{type(self).__name__}({', '.join(shown)})"


def _pretty(self: object, printer: Any, cycle: bool) -> None:
    """Hypothesis prints a failing example through this (IPython's protocol), else field by field."""
    printer.text(_brief(self))


@dataclass(frozen=True, repr=False)
class Settings:
    """What the client announces in a SETTINGS frame, and the HPACK table its own encoder uses."""

    __repr__ = _brief
    _repr_pretty_ = _pretty

    max_frame_size: int = 16384
    initial_window: int = 65535
    header_table_size: int = 4096
    encoder_table_size: int = 4096  # at most the server's HEADER_TABLE_SIZE; a change is a table size update

    def codes(self) -> dict[SettingCodes, int]:
        return {
            SettingCodes.MAX_FRAME_SIZE: self.max_frame_size,
            SettingCodes.INITIAL_WINDOW_SIZE: self.initial_window,
            SettingCodes.HEADER_TABLE_SIZE: self.header_table_size,
        }


@dataclass(frozen=True, repr=False)
class Request:
    """One unary call and how its frames are cut; ``label`` names it in a failing plan, in place of its bytes."""

    __repr__ = _brief
    _repr_pretty_ = _pretty
    label: str
    method: str = field(repr=False)
    message: bytes = field(repr=False)
    compress: bool = False  # gzip, flag byte 1, grpc-encoding: gzip
    chunks: tuple[int, ...] = ()  # DATA payload sizes in order; the rest of the body goes in frames as large as allowed
    pads: tuple[int | None, ...] = ()  # pad length of each DATA frame, cycled (None: not PADDED)
    empty_end: bool = False  # END_STREAM on an empty DATA frame of its own
    trailers: bool = False  # END_STREAM on a trailers block after the data
    split: tuple[int, ...] = ()  # header block fragment sizes: HEADERS, then CONTINUATIONs (the rest: one more)
    header_pad: int | None = None
    weight: int | None = None  # PRIORITY flag on the HEADERS frame
    never_index: bool = False  # HPACK "never indexed" literals instead of incremental indexing
    # Seconds of pause before the block and between its HEADERS and its CONTINUATIONs: the server reads them apart.
    pause: float = 0.0
    timeout: bytes | None = None  # grpc-timeout

    def body(self) -> bytes:
        message = gzip.compress(self.message, mtime=0) if self.compress else self.message
        return bytes((int(self.compress),)) + len(message).to_bytes(4, "big") + message

    def actions(self) -> list[tuple[str, bytes, bool]]:
        """(kind, DATA payload, END_STREAM) of each step of the call after its headers."""
        body, parts = self.body(), []
        for size in self.chunks:
            if not body:
                break
            parts.append(body[:size])
            body = body[size:]
        if body:
            parts.append(body)
        ends_later = self.empty_end or self.trailers
        out = [("data", part, not ends_later and i == len(parts) - 1) for i, part in enumerate(parts)]
        if self.empty_end:
            out.append(("data", b"", not self.trailers))
        if self.trailers:
            out.append(("trailers", b"", True))
        return out


@dataclass(frozen=True, repr=False)
class Advance:
    """The call's next step: its headers, then each DATA frame, then its trailers if any."""

    __repr__ = _brief
    _repr_pretty_ = _pretty
    call: int


@dataclass(frozen=True, repr=False)
class Cancel:
    __repr__ = _brief
    _repr_pretty_ = _pretty
    call: int  # RST_STREAM CANCEL (nothing when the call is not open); its answer is not judged


@dataclass(frozen=True, repr=False)
class Prioritize:
    __repr__ = _brief
    _repr_pretty_ = _pretty
    call: int  # a PRIORITY frame on the call's stream, once open
    weight: int
    on: int | None  # the call whose stream it depends on (when open), else stream 0
    exclusive: bool


@dataclass(frozen=True, repr=False)
class Resettle:
    __repr__ = _brief
    _repr_pretty_ = _pretty
    settings: Settings  # a SETTINGS frame mid-connection, and our encoder's table size


@dataclass(frozen=True, repr=False)
class Credit:
    __repr__ = _brief
    _repr_pretty_ = _pretty
    call: int | None  # a WINDOW_UPDATE beyond what answers took: the connection's (None) or an open call's
    increment: int


@dataclass(frozen=True, repr=False)
class Wait:
    """Until every call sent whole and not cancelled is answered: the server is idle, its next read starts afresh."""

    __repr__ = _brief
    _repr_pretty_ = _pretty


Step = Advance | Cancel | Prioritize | Resettle | Credit | Wait


@dataclass(frozen=True, repr=False)
class Plan:
    __repr__ = _brief
    _repr_pretty_ = _pretty
    settings: Settings
    requests: tuple[Request, ...]
    steps: tuple[Step, ...] = ()  # calls not ended by the steps are then finished one after another
    credit: str = "eager"  # one of CREDITS
    upfront: int = 0  # connection credit given right after the preface
    preface_settings: bool = True  # announced in the first SETTINGS frame, else in a second one


@dataclass
class Answer:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the server's RST_STREAM code

    def status(self) -> tuple[int | None, str]:
        """grpc-status and the decoded grpc-message (a trailers-only answer has them in its headers)."""
        fields = dict(self.trailers or self.headers)
        code = fields.get(b"grpc-status")
        return (None if code is None else int(code)), urllib.parse.unquote(fields.get(b"grpc-message", b"").decode())

    def messages(self) -> list[bytes]:
        """The answer's gRPC messages, decompressed."""
        encoding, out, at = dict(self.headers).get(b"grpc-encoding", b"identity"), [], 0
        while at + 5 <= len(self.body):
            size = int.from_bytes(self.body[at + 1 : at + 5], "big")
            message = bytes(self.body[at + 5 : at + 5 + size])
            out.append(gzip.decompress(message) if self.body[at] and encoding == b"gzip" else message)
            at += 5 + size
        return out


@dataclass
class Outcome:
    answers: dict[int, Answer] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # what broke the connection: GOAWAY, protocol errors, stalls
