"""The backend-to-SDK half of a ``Splice``: the backend's frames copied to the SDK, less those of calls the front
answers; its SETTINGS read (they bound what the SDK may send); its GOAWAY rewritten so calls the front answers
finish; and, when the backend goes, the calls it had ended with a status instead of a hang."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import grpc

from . import h2wire as wire
from . import metrics
from .grpc_wire import grpc_message, grpc_payload
from .ledger import Ledger
from .outbox import Outbox
from .proxy import GatewayHandler
from .streams import HeaderBlocks, State, Stream

log = logging.getLogger(__name__)
_UNAVAILABLE = b"14"
_CODE_NAMES = {str(code.value[0]).encode(): code.name for code in grpc.StatusCode}
# Backend frames waiting for the SDK's connection window, at most: the backend over-sends by no more than the
# front's own answer bytes the SDK has not credited yet; past this the backend ignores flow control.
_QUEUE_LIMIT = 64 << 20


class BackendSide:
    # Kept by Splice (the SDK-to-backend half).
    up: Outbox
    down: Outbox
    books: Ledger
    _streams: dict[int, Stream]
    _blocked: dict[int, Stream]
    _answered: OrderedDict[int, None]
    _last_stream: int
    _blocks: HeaderBlocks
    handler: GatewayHandler

    def __init__(self) -> None:
        self._down_rest = b""
        # The backend encodes without a dynamic table once it has the SDK's rewritten SETTINGS; before, within
        # the default table.
        self._down_blocks = HeaderBlocks(wire.DEFAULT_HEADER_TABLE)
        self._queued: deque[wire.Frame] = deque()
        self._queued_size = 0
        self._backend_max_frame = wire.MAX_FRAME  # what the SDK may send: the backend's SETTINGS_MAX_FRAME_SIZE
        self._goaway_last: int | None = None  # the last stream id of the GOAWAY the SDK was sent
        self.draining = False  # the backend went away: new streams are refused
        self.backend_closed = False

    # Splice's, used here.
    def _become_local(self, s: Stream) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        raise NotImplementedError

    def _flush_answer(self, s: Stream) -> None:
        raise NotImplementedError

    def from_backend(self, data: bytes) -> None:
        frames, self._down_rest = wire.cut(self._down_rest + data)
        if wire.pending_length(self._down_rest) > self.books.client_max_frame:
            raise wire.ProtocolError(wire.FRAME_SIZE_ERROR, "a frame over the SDK's SETTINGS_MAX_FRAME_SIZE")
        for kind, flags, stream, raw in frames:
            wire.check(kind, flags, stream, raw, self.books.client_max_frame)
            self._queued.append((kind, flags, stream, raw))
            self._queued_size += len(raw)
        if self._queued_size > _QUEUE_LIMIT:
            raise wire.ProtocolError(wire.FLOW_CONTROL_ERROR, "the backend sent past the SDK's connection window")
        self.drain_queued()
        self.settle()

    def _ours(self, stream: int) -> bool:
        s = self._streams.get(stream)
        return (s is not None and s.state is State.LOCAL) or stream in self._answered

    def drain_queued(self) -> None:
        """Copy the backend's frames in order; DATA waits while the SDK's real connection window cannot take it."""
        while self._queued:
            kind, flags, stream, raw = self._queued[0]
            if kind == wire.DATA and len(raw) - 9 > self.books.client_window and not self._ours(stream):
                return
            self._queued.popleft()
            self._queued_size -= len(raw)
            self._backend_frame(kind, flags, stream, raw)

    def _backend_frame(self, kind: int, flags: int, stream: int, raw: bytes) -> None:
        if self._down_blocks.stream is not None and kind != wire.CONTINUATION:
            raise wire.ProtocolError(wire.PROTOCOL_ERROR, f"a frame of type {kind} inside a header block")
        ours = self._ours(stream)
        if kind == wire.DATA:
            if ours:  # answer bytes of a call the front took: credited as the SDK would have
                if len(raw) > 9 and not self.backend_closed:
                    self.up.own(wire.window_update(0, len(raw) - 9))
                return
            self.books.wrote(len(raw) - 9, own=False)
        elif kind in (wire.HEADERS, wire.CONTINUATION, wire.PUSH_PROMISE):
            block = self._down_blocks.add(kind, flags, stream, raw)  # decoded even when dropped: HPACK in step
            if block is None or ours:
                return
            first_flags, _, raw, headers = block
            flags = first_flags | wire.END_HEADERS  # the block goes whole
            s = self._streams.get(stream)
            if s is not None and kind != wire.PUSH_PROMISE:
                if first_flags & wire.END_STREAM:
                    self._end(s, next((v for k, v in headers if k == b"grpc-status"), b"0"))
                else:
                    s.responded = True
        elif kind == wire.RST_STREAM:
            s = self._streams.get(stream)
            if ours:
                return
            if s is not None:
                self._end(s, b"1")
        elif kind == wire.SETTINGS and not flags & wire.ACK:
            self._backend_settings(raw[9:])
        elif kind == wire.SETTINGS:  # the ACK of the SDK's SETTINGS: from the next frame on, the SDK counts by them
            self.down.relay(kind, flags, stream, raw)
            self._move_answer_windows(self.books.client_settings_acked())
            return
        elif kind == wire.WINDOW_UPDATE and ours:
            return
        elif kind == wire.GOAWAY:
            self._backend_goaway(*wire.goaway_fields(raw))
            return
        self.down.relay(kind, flags, stream, raw)

    def _flush_blocked(self) -> None:
        """Write what the SDK's windows now take of the front's answers waiting for them."""
        for s in list(self._blocked.values()):
            if self._streams.get(s.id) is s:
                self._flush_answer(s)
            else:
                del self._blocked[s.id]

    def _move_answer_windows(self, delta: int) -> None:
        """The SDK's initial stream window, as the front counts it (``Ledger.client_initial``), moved: so does the
        window of each answer of the front's (RFC 9113 §6.9.2), and a larger one lets waiting answers go. (Past
        2^31-1 only if the SDK credited past it before the ACK: its own error, refused with its next credit.)"""
        if not delta:
            return
        for s in self._streams.values():
            if s.state is State.LOCAL:
                s.window += delta
        if delta > 0:
            self._flush_blocked()

    def _end(self, s: Stream, status: bytes) -> None:
        """A call the backend had ends (its answer's last block, or a reset from either side)."""
        if self._streams.pop(s.id, None) is None:
            return
        if s.state is State.HELD:  # the request's held bytes are the front's to credit: the backend never saw them
            self.books.held -= s.flow
            self.books.debt += s.flow
        outcome = "ok" if status == b"0" else _CODE_NAMES.get(status, "error")
        metrics.observe(s.method, "passthrough", outcome, time.perf_counter() - s.started)
        if s.copy is not None and status == b"0":
            try:
                metadata = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in s.headers]
                self.handler.forget(s.method, grpc_payload(bytes(s.copy)), metadata)
            except Exception:  # a request the backend took but protobuf refuses: the cache ages out instead
                log.debug("cannot read the schema change %s", s.method, exc_info=True)

    def _backend_settings(self, payload: bytes) -> None:
        for key, value in wire.settings(payload):
            if key == wire.SETTINGS_INITIAL_WINDOW_SIZE:
                self.books.backend_initial = value
            elif key == wire.SETTINGS_MAX_FRAME_SIZE:
                self._backend_max_frame = value
            elif key == wire.SETTINGS_HEADER_TABLE_SIZE:
                decoder = self._blocks.decoder
                decoder.max_allowed_table_size = max(decoder.max_allowed_table_size, value)

    def _backend_goaway(self, last: int, code: int, debug: bytes) -> None:
        """The backend takes no stream past ``last``: searches held past it are taken over, and the SDK is told a
        last stream that covers the calls the front answers (a passthrough call in between is refused, so the
        SDK retries it elsewhere: the backend never processed it)."""
        self.draining = True
        self._take_over_held(lambda s: s.id > last)
        covered = max([last, *(s.id for s in self._streams.values() if s.state is State.LOCAL)])
        for s in list(self._streams.values()):
            if s.state is State.PASSING and s.id > last:
                if s.id <= covered:
                    self.down.own(wire.rst_stream(s.id, wire.REFUSED_STREAM))
                self._end(s, _UNAVAILABLE)
        self._send_goaway(covered, code, debug)

    def _take_over_held(self, which: Callable[[Stream], bool]) -> None:
        for s in list(self._streams.values()):
            if s.state is State.HELD and which(s):
                self._become_local(s)
                if s.flow:  # the SDK may send the rest now: the front receives it
                    self.down.own(wire.window_update(s.id, s.flow))

    def _send_goaway(self, last: int, code: int, debug: bytes) -> None:
        # The last stream id of successive GOAWAYs never grows (RFC 9113 §6.8).
        self._goaway_last = last if self._goaway_last is None else min(self._goaway_last, last)
        self.down.own(wire.goaway(self._goaway_last, code, debug))

    def backend_gone(self) -> None:
        """The backend closed the connection: the calls it had end with UNAVAILABLE, held searches are taken over
        (the handler answers them), calls the front answers finish, and the SDK opens no new stream here."""
        self.backend_closed = self.draining = True
        self._queued.clear()
        self._take_over_held(lambda s: True)
        message = grpc_message("the gateway lost its connection to the Milvus backend")
        for s in list(self._streams.values()):
            if s.state is State.PASSING:
                head = [] if s.responded else [(b":status", b"200"), (b"content-type", b"application/grpc")]
                fields = [*head, (b"grpc-status", _UNAVAILABLE), (b"grpc-message", message)]
                block = wire.encode_headers(fields)
                self.down.own(wire.header_block(s.id, wire.END_HEADERS | wire.END_STREAM, block))
                self._end(s, _UNAVAILABLE)
        self._send_goaway(self._last_stream, wire.NO_ERROR, b"the Milvus backend closed the connection")
        self.settle()

    def fail(self, exc: wire.ProtocolError, by_backend: bool) -> None:
        """A peer broke HTTP/2: a GOAWAY with the error goes to it, and the SDK learns why its connection ends."""
        self.up.flush()
        self.down.flush()
        text = str(exc).encode("utf-8", "replace")[:200]
        if by_backend:
            log.warning("closing a connection: the Milvus backend broke HTTP/2: %s", exc)
            if not self.backend_closed:
                self.up.writer.write(wire.goaway(0, exc.code, text))
            self.down.writer.write(wire.goaway(self._last_stream, wire.INTERNAL_ERROR, b"the backend broke HTTP/2"))
        else:
            log.warning("closing a connection: the client broke HTTP/2: %s", exc)
            self.down.writer.write(wire.goaway(self._last_stream, exc.code, text))
