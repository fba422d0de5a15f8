"""One SDK connection spliced to one backend connection, frame by frame (docs/gateway.md, "How a call travels").

Every frame is copied as it came, except:
- the SDK's SETTINGS, rewritten so the backend encodes its headers without a dynamic table: then a header block the
  front drops (the backend's, of a call the front answers) or adds (its own answers) never desynchronises HPACK;
- a Search/HybridSearch request, held until it ends and judged: a model-ranker search is answered by the front
  (``GatewayHandler.unary_call`` in a worker thread, the backend's stream reset), any other is released as it came;
  a request larger than the hold limit is taken over whole (received by the front, answered by the handler);
- window credits, kept in the ``Ledger``; a GOAWAY from the backend, rewritten so calls the front answers finish.
Each stream is one ``Stream`` with an explicit state; header blocks travel whole (``HeaderBlocks``); the front's
own frames go through an ``Outbox`` that never puts them inside a header block. What HTTP/2 forbids ends the
connection with a GOAWAY naming the error (``ProtocolError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from concurrent.futures import Executor, Future

import grpc

from . import h2wire as wire
from .grpc_wire import MessageError, grpc_payload
from .ledger import Ledger
from .local_call import LocalCall, Result, answer_frames, serve
from .outbox import Outbox, Writer
from .proxy import SCHEMA_CHANGES, GatewayHandler
from .rerank import HYBRID_SEARCH, SEARCH
from .splice_backend import BackendSide
from .streams import HeaderBlocks, Headers, State, Stream

log = logging.getLogger(__name__)
_RECENTLY_ANSWERED = 1024


class Splice(BackendSide):
    peer = "-"  # the SDK connection's address, as gRPC writes it (the front sets it): for the audit line

    def __init__(
        self,
        handler: GatewayHandler,
        pool: Executor,
        loop: asyncio.AbstractEventLoop,
        to_client: Writer,
        to_backend: Writer,
    ) -> None:
        self.handler, self.pool, self.loop = handler, pool, loop
        self.up, self.down = Outbox(to_backend), Outbox(to_client)
        self.books = Ledger()
        self._rest = b""
        self._preface_seen = False
        self._blocks = HeaderBlocks(wire.DEFAULT_HEADER_TABLE)  # the SDK's, as the backend decodes them
        self._streams: dict[int, Stream] = {}
        self._withheld: dict[int, Stream] = {}  # streams whose request headers the backend has not seen yet
        self._blocked: dict[int, Stream] = {}  # answers waiting for the SDK's window
        self._answered: OrderedDict[int, None] = OrderedDict()  # local streams ended: late frames are dropped
        self._last_stream = 0  # the highest stream the SDK opened
        self.closed = False
        BackendSide.__init__(self)

    @property
    def busy(self) -> bool:
        return bool(self._streams)

    @property
    def speaks_http2(self) -> bool:
        return self._preface_seen

    # SDK -> backend

    def from_client(self, data: bytes) -> None:
        buffer = self._rest + data
        if not self._preface_seen:
            if len(buffer) < len(wire.PREFACE):
                self._rest = buffer
                return
            if not buffer.startswith(wire.PREFACE):
                raise wire.ProtocolError(wire.PROTOCOL_ERROR, "not an HTTP/2 connection")
            self.up.own(wire.PREFACE)
            buffer = buffer[len(wire.PREFACE) :]
            self._preface_seen = True
        frames, self._rest = wire.cut(buffer)
        if wire.pending_length(self._rest) > self._backend_max_frame:
            raise wire.ProtocolError(wire.FRAME_SIZE_ERROR, "a frame over the backend's SETTINGS_MAX_FRAME_SIZE")
        for kind, flags, stream, raw in frames:
            wire.check(kind, flags, stream, raw, self._backend_max_frame)
            if self._blocks.stream is not None and kind != wire.CONTINUATION:
                raise wire.ProtocolError(wire.PROTOCOL_ERROR, f"a frame of type {kind} inside a header block")
            self._client_frame(kind, flags, stream, raw)
        self.settle()

    def _client_frame(self, kind: int, flags: int, stream: int, raw: bytes) -> None:
        if kind == wire.DATA:
            self._request_data(flags, stream, raw)
        elif kind in (wire.HEADERS, wire.CONTINUATION):
            block = self._blocks.add(kind, flags, stream, raw)
            if block is not None:
                self._request_headers(stream, *block)
        elif kind == wire.SETTINGS and not flags & wire.ACK:
            self._client_settings(raw[9:])
        elif kind == wire.WINDOW_UPDATE:
            self._client_credit(stream, int.from_bytes(raw[9:13], "big") & 0x7FFFFFFF, raw)
        elif kind == wire.RST_STREAM:
            self._client_reset(stream, raw)
        elif kind == wire.PUSH_PROMISE:
            raise wire.ProtocolError(wire.PROTOCOL_ERROR, "a PUSH_PROMISE from the client")
        else:  # PING, PRIORITY (legal on any stream, idle or closed), GOAWAY, SETTINGS ACK, extension frames
            self._to_backend(kind, flags, stream, raw)

    def _to_backend(self, kind: int, flags: int, stream: int, raw: bytes) -> None:
        if not self.backend_closed:
            self.up.relay(kind, flags, stream, raw)

    def _request_headers(self, stream: int, flags: int, block: bytes, frames: bytes, headers: Headers) -> None:
        s = self._streams.get(stream)
        if s is None and stream in self._answered:
            raise wire.ProtocolError(wire.STREAM_CLOSED, f"HEADERS on stream {stream}, which is closed")
        if s is not None:  # trailers: the request's last block (RFC 9113 §8.1)
            if not flags & wire.END_STREAM:
                raise wire.ProtocolError(wire.PROTOCOL_ERROR, f"a second header block without END_STREAM on {stream}")
            self._request_trailers(s, block, frames)
            return
        if stream % 2 == 0:
            raise wire.ProtocolError(wire.PROTOCOL_ERROR, f"the client opened the even stream {stream}")
        if stream <= self._last_stream or self.draining:  # a closed stream's, or after the backend went away
            if stream > self._last_stream:
                self._last_stream = stream
                self.down.own(wire.rst_stream(stream, wire.REFUSED_STREAM))  # nothing done: the SDK may retry
            if wire.changes_table(block):  # the backend's decoder must still see it (RFC 9113 §4.3)
                self._release_withheld()
                self._to_backend(wire.HEADERS, flags, stream, frames)
            return
        self._last_stream = stream
        method = next((v for k, v in headers if k == b":path"), b"").decode("utf-8", "replace")
        s = self._streams[stream] = Stream(stream, method, headers)
        s.encoding = next((v for k, v in headers if k == b"grpc-encoding"), b"identity")
        if method in SCHEMA_CHANGES:
            s.copy = bytearray()
        if method in (SEARCH, HYBRID_SEARCH) and not flags & wire.END_STREAM:
            s.state = State.HELD
            if not wire.changes_table(block):  # then it may stay unsent: a search the front answers costs nothing
                s.withheld = frames
                self._withheld[stream] = s
                return
        self._release_withheld()
        self._to_backend(wire.HEADERS, flags | wire.END_HEADERS, stream, frames)

    def _release_withheld(self) -> None:
        """Withheld header blocks go first: streams open in the order of their ids, and a withheld block must be
        decoded by the backend against the table it was encoded with."""
        for s in self._withheld.values():
            if s.withheld and self._streams.get(s.id) is s:  # not a stream the SDK reset in the meantime
                self.up.own(s.withheld)
                s.withheld = b""
                s.backend_open = s.state is State.LOCAL
                if s.credits:
                    self.up.own(wire.window_update(s.id, s.credits))
        self._withheld.clear()

    def _request_trailers(self, s: Stream, block: bytes, frames: bytes) -> None:
        changes = wire.changes_table(block)
        if s.state is State.PASSING:
            self._release_withheld()
            self._to_backend(wire.HEADERS, wire.END_HEADERS, s.id, frames)
        elif s.state is State.HELD:  # the trailers end the request: judged like an END_STREAM
            s.frames.append(frames)
            s.trailers, s.trailers_change_table = frames, changes
            self._judge(s)
        elif s.ended:
            raise wire.ProtocolError(wire.STREAM_CLOSED, f"HEADERS on stream {s.id} after its END_STREAM")
        else:
            s.trailers, s.trailers_change_table = frames, changes
            self._request_ended(s)

    def _request_data(self, flags: int, stream: int, raw: bytes) -> None:
        s = self._streams.get(stream)
        size = len(raw) - 9
        data = wire.data_of(flags, raw[9:])
        if s is None:
            if stream in self._answered:
                raise wire.ProtocolError(wire.STREAM_CLOSED, f"DATA on stream {stream}, which is closed")
            self._to_backend(wire.DATA, flags, stream, raw)  # an idle or closed stream: the backend refuses it
        elif s.state is State.PASSING:
            if s.copy is not None:
                s.copy += data
            self._to_backend(wire.DATA, flags, stream, raw)
        elif s.state is State.LOCAL:  # taken over: the front receives the rest
            if s.ended:
                raise wire.ProtocolError(wire.STREAM_CLOSED, f"DATA on stream {stream} after its END_STREAM")
            s.data.append(data)
            self.books.debt += size
            if flags & wire.END_STREAM:
                self._request_ended(s)
            elif size:
                self.down.own(wire.window_update(stream, size))
        elif flags & wire.END_STREAM or self.books.holds(s.flow, size):
            s.frames.append(raw)
            s.data.append(data)
            s.flow += size
            self.books.held += size
            if flags & wire.END_STREAM:
                self._judge(s)
        else:  # past the hold limit: taken over, this frame included
            self._become_local(s)
            s.data.append(data)
            self.books.debt += size
            if s.flow + size:
                self.down.own(wire.window_update(stream, s.flow + size))

    def _judge(self, s: Stream) -> None:
        try:
            payload = grpc_payload(b"".join(s.data), s.encoding)
        except MessageError:
            payload = None  # the backend answers what the front cannot read, as it would without the front
        if payload is None or not self.handler.claims(s.method, payload):
            self._release(s)
            return
        self._become_local(s)
        self._request_ended(s, payload)

    def _release(self, s: Stream) -> None:
        self._release_withheld()
        for raw in s.frames:  # DATA frames, and trailers as a whole block: END_HEADERS is in its last frame
            self._to_backend(raw[3], raw[4] | wire.END_HEADERS, s.id, raw)
        self.books.held -= s.flow
        s.frames, s.data, s.flow, s.state = [], [], 0, State.PASSING

    def _become_local(self, s: Stream) -> None:
        """The front answers the call: what it held is its own, and the backend forgets what it saw."""
        self.books.held -= s.flow
        self.books.debt += s.flow
        s.state, s.frames = State.LOCAL, []
        s.backend_open = not s.withheld  # withheld headers stay until the request ends (see _request_ended)
        s.context = LocalCall(s.headers, self.peer)
        s.window = self.books.client_initial + s.credits

    def _request_ended(self, s: Stream, payload: bytes | None = None) -> None:
        s.ended = True
        if s.trailers_change_table:  # the backend's decoder must see that block: the stream opens, ends, resets
            self._release_withheld()
            self._to_backend(wire.HEADERS, wire.END_HEADERS, s.id, s.trailers)
        s.withheld = b""  # never sent: the backend's table is untouched (the block changed nothing)
        if s.backend_open:
            self._to_backend(wire.RST_STREAM, 0, s.id, wire.rst_stream(s.id))
            s.backend_open = False
        if payload is None:
            try:
                payload = grpc_payload(b"".join(s.data), s.encoding)
            except MessageError as exc:
                self._answer(s, (exc.code.value[0], exc.details, None))
                return
        s.data = []
        self._dispatch(s, payload)

    def _client_settings(self, payload: bytes) -> None:
        values = dict(wire.settings(payload))  # a later value of a setting overrides an earlier one (§6.5.3)
        growth = values.get(wire.SETTINGS_INITIAL_WINDOW_SIZE, self.books.client_initial) - self.books.client_initial
        for s in self._streams.values():  # refused when the SDK sends it, though counted once acknowledged (§6.9.2)
            if s.state is State.LOCAL and s.window + growth > wire.MAX_WINDOW:
                raise wire.ProtocolError(wire.FLOW_CONTROL_ERROR, f"stream {s.id}'s window passed 2^31-1")
        self._to_backend(wire.SETTINGS, 0, 0, wire.frame(wire.SETTINGS, 0, 0, wire.without_header_table(payload)))
        self._move_answer_windows(self.books.client_settings(values))  # counted as the Ledger says
        self._flush_waiting()

    def _client_credit(self, stream: int, increment: int, raw: bytes) -> None:
        if stream == 0:
            self.books.client_credit(increment)
            self._flush_waiting()
            return
        s = self._streams.get(stream)
        if s is None:
            if stream not in self._answered:
                self._to_backend(wire.WINDOW_UPDATE, 0, stream, raw)
        elif s.state is State.LOCAL:
            s.window += increment
            if s.window > wire.MAX_WINDOW:  # a stream error (RFC 9113 §6.9.1): this call ends, the rest go on
                self.down.own(wire.rst_stream(stream, wire.FLOW_CONTROL_ERROR))
                self._forget_local(s)
            elif s.tail is not None:
                self._flush_answer(s)
        else:
            s.credits += increment  # counted for a take-over; passed on unless the backend has not seen the stream
            if not s.withheld:
                self._to_backend(wire.WINDOW_UPDATE, 0, stream, raw)

    def _client_reset(self, stream: int, raw: bytes) -> None:
        s = self._streams.get(stream)
        if s is None:
            if stream not in self._answered:
                self._to_backend(wire.RST_STREAM, 0, stream, raw)
            return
        if s.state is State.LOCAL:
            if s.backend_open:
                self._to_backend(wire.RST_STREAM, 0, stream, raw)
            self._forget_local(s)
            return
        unseen = bool(s.withheld)
        self._end(s, b"1")
        if not unseen:  # no reset of a stream the backend never opened (a protocol error)
            self._to_backend(wire.RST_STREAM, 0, stream, raw)

    def _forget_local(self, s: Stream) -> None:
        assert s.context is not None
        s.context.cancel()
        del self._streams[s.id]
        self._remember(s.id)

    # The front's own answers

    def _dispatch(self, s: Stream, payload: bytes) -> None:
        assert s.context is not None
        try:
            future = self.pool.submit(serve, self.handler, s.method, payload, s.context)
        except RuntimeError:  # the gateway is stopping
            self._answer(s, (grpc.StatusCode.UNAVAILABLE.value[0], "the gateway is stopping", None))
            return
        future.add_done_callback(lambda done: self._from_worker(s, done))

    def _from_worker(self, s: Stream, done: Future[Result]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the connection is gone
            self.loop.call_soon_threadsafe(self._answered_by_worker, s, done.result())

    def _answered_by_worker(self, s: Stream, result: Result) -> None:
        self._answer(s, result)
        self.settle()

    def _answer(self, s: Stream, result: Result) -> None:
        if self.closed or self._streams.get(s.id) is not s:
            return  # the SDK reset the stream or hung up
        s.head, s.body, s.tail = answer_frames(s.id, result, self.books.client_header_list)
        self._flush_answer(s)

    def _flush_answer(self, s: Stream) -> None:
        """Write what the SDK's windows take of an answer; the rest waits for its credits."""
        out = [s.head]
        s.head = b""
        while s.body:
            room = min(wire.MAX_FRAME, s.window, self.books.client_window)
            if room <= 0:
                break
            chunk, s.body = s.body[:room], s.body[room:]
            out.append(wire.frame(wire.DATA, 0, s.id, chunk))
            s.window -= len(chunk)
            self.books.wrote(len(chunk), own=True)
        if s.body:
            self._blocked[s.id] = s
        elif s.tail is not None:
            out.append(s.tail)
            del self._streams[s.id]
            self._blocked.pop(s.id, None)
            self._remember(s.id)
        written = b"".join(out)
        if written:
            self.down.own(written)

    def _flush_waiting(self) -> None:
        self._flush_blocked()
        self.drain_queued()

    def _remember(self, stream: int) -> None:
        self._answered[stream] = None
        if len(self._answered) > _RECENTLY_ANSWERED:
            self._answered.popitem(last=False)

    def settle(self) -> None:
        """Pay the credits due and write what each direction has: one write per peer per batch."""
        credit = self.books.due_to_client(self.down.pending)
        if credit:
            self.down.own(wire.window_update(0, credit))
        credit = self.books.due_to_backend(self.up.pending)
        if credit and not self.backend_closed:
            self.up.own(wire.window_update(0, credit))
        self.up.flush()
        self.down.flush()

    def close(self) -> None:
        """The connection is gone: calls being answered stop."""
        self.closed = True
        for s in self._streams.values():
            if s.context is not None:
                s.context.cancel()
        self._streams.clear()
        self._blocked.clear()
