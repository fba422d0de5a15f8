"""What the splicing front writes to one peer: the other peer's frames as they come, and its own frames, never
inside an open header block (RFC 9113 §6.10: a header block is a unit, nothing may come between a HEADERS or
PUSH_PROMISE without END_HEADERS and the CONTINUATION that ends it). One write per batch: the front calls ``flush``
once it has read what arrived."""

from __future__ import annotations

from typing import Protocol

from . import h2wire as wire


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...


class Outbox:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._batch: list[bytes] = []
        self._waiting: list[bytes] = []  # the front's own frames, while a relayed header block is open
        self.open_block: int | None = None  # the stream whose relayed header block has not ended yet

    def relay(self, kind: int, flags: int, stream: int, raw: bytes) -> None:
        """A frame of the other peer's, in the order it came."""
        self._batch.append(raw)
        if kind in (wire.HEADERS, wire.PUSH_PROMISE) and not flags & wire.END_HEADERS:
            self.open_block = stream
        elif kind == wire.CONTINUATION and flags & wire.END_HEADERS:
            self.open_block = None
            self._batch.extend(self._waiting)
            self._waiting.clear()

    def own(self, frames: bytes) -> None:
        """Whole frames of the front's own (a header block whole): after any header block being relayed."""
        (self._batch if self.open_block is None else self._waiting).append(frames)

    @property
    def pending(self) -> bool:
        return bool(self._batch)

    def flush(self) -> None:
        if self._batch:
            self.writer.write(b"".join(self._batch))
            self._batch.clear()
