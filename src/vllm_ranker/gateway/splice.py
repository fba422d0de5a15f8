"""One SDK connection spliced to one backend connection, frame by frame (docs/gateway.md, "What the hop costs").

Every frame is copied as it came, except:
- the SDK's SETTINGS, rewritten so the backend encodes its headers without a dynamic table: then a header block the
  front drops (the backend's, of a call the front answers) or adds (its own answers) never desynchronises HPACK;
- a Search/HybridSearch request, held until it ends and read: a model-ranker search is answered by the front
  (``GatewayHandler.unary_call`` in a worker thread, the backend's stream reset), any other is released as it was;
  a request larger than the hold limit is taken over whole (received by the front, answered by the handler);
- window credits: the front credits the SDK for request bytes the backend never saw, and keeps back the SDK's
  credits for answer bytes the backend never sent, so both peers' flow-control books stay right.
The SDK's request headers are HPACK-decoded (a mirror of the backend's decoder) to learn each call's method,
metadata and deadline; the backend's are decoded to learn each call's status, for the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future
from typing import cast

import grpc
import hpack

from . import h2wire as wire
from . import metrics
from .local_call import LocalCall, Result, answer_frames, serve
from .proxy import SCHEMA_CHANGES, GatewayHandler
from .rerank import HYBRID_SEARCH, SEARCH
from .streams import Call, Held, Local, same_table, table_state

log = logging.getLogger(__name__)

# Request bytes held per search, and per connection: below the 65,535-byte initial windows every HTTP/2 peer starts
# with, so the SDK never waits for a credit the backend cannot give (it has not seen the bytes).
HOLD_LIMIT = 16384
HOLD_TOTAL = 32768
# SDK connection credits kept back at most: a backend always has the other 48 KiB of the 65,535-byte window it
# started with, so it never waits on credits the front keeps.
CREDIT_BATCH = 16384
_CODE_NAMES = {str(code.value[0]).encode(): code.name for code in grpc.StatusCode}
_RECENTLY_ANSWERED = 1024


class ProtocolError(Exception):
    """The SDK or the backend sent what the front cannot follow: the connection is closed."""


class Splice:
    def __init__(
        self,
        handler: GatewayHandler,
        pool: Executor,
        loop: asyncio.AbstractEventLoop,
        to_client: asyncio.StreamWriter,
        to_backend: asyncio.StreamWriter,
    ) -> None:
        self.handler, self.pool, self.loop = handler, pool, loop
        self.to_client, self.to_backend = to_client, to_backend
        self._up = b""
        self._down = b""
        self._preface_seen = False
        self._decoder = hpack.Decoder()
        self._decoder.max_allowed_table_size = 1 << 24  # the backend, not the front, bounds the SDK's table
        self._down_decoder = hpack.Decoder()
        self._down_decoder.max_allowed_table_size = 1 << 24
        self._fragments: dict[int, tuple[int, bytes]] = {}
        self._down_fragments: dict[int, tuple[int, bytes]] = {}
        self._calls: dict[int, Call] = {}
        self._held: dict[int, Held] = {}
        self._held_total = 0
        self._local: dict[int, Local] = {}
        self._answered: OrderedDict[int, None] = OrderedDict()  # local streams done: late frames are dropped
        self._client_initial = wire.DEFAULT_WINDOW  # the SDK's wire.SETTINGS_INITIAL_WINDOW_SIZE
        self._client_window = wire.DEFAULT_WINDOW  # the SDK's connection window, as the front counts it
        self._owed = 0  # SDK credits to keep back: for answer bytes the front wrote
        self._credit = 0  # SDK connection credits not yet passed on (see _client_credit)
        self._out: list[bytes] = []
        self.closed = False

    @property
    def busy(self) -> bool:
        return bool(self._calls or self._local)

    # SDK -> backend

    def from_client(self, data: bytes) -> None:
        buffer = self._up + data
        if not self._preface_seen:
            if len(buffer) < len(wire.PREFACE):
                self._up = buffer
                return
            if not buffer.startswith(wire.PREFACE):
                raise ProtocolError("not an HTTP/2 connection")
            self._out.append(wire.PREFACE)
            buffer = buffer[len(wire.PREFACE) :]
            self._preface_seen = True
        frames, self._up = wire.cut(buffer)
        for kind, flags, stream, raw in frames:
            forward: bytes | None = raw
            if kind not in (wire.DATA, wire.RST_STREAM, wire.WINDOW_UPDATE) and stream in self._held:
                self._unwithhold(stream)  # the backend must know a stream before any frame of it
            if kind == wire.DATA:
                forward = self._request_data(flags, stream, raw)
            elif kind in (wire.HEADERS, wire.CONTINUATION):
                forward = self._request_headers(kind, flags, stream, raw)
            elif kind == wire.SETTINGS and not flags & wire.ACK:
                forward = self._client_settings(flags, raw[9:])
            elif kind == wire.WINDOW_UPDATE:
                forward = self._client_credit(stream, raw)
            elif kind == wire.RST_STREAM:
                forward = self._client_reset(stream, raw)
            if forward is not None:
                self._out.append(forward)
        if self._credit and (self._out or self._credit >= CREDIT_BATCH):
            self._out.append(wire.window_update(0, self._credit))
            self._credit = 0
        if self._out:
            self.to_backend.write(b"".join(self._out))
            self._out.clear()

    def _request_headers(self, kind: int, flags: int, stream: int, raw: bytes) -> bytes | None:
        """Every block is decoded, and forwarded unless it is a search's that changed no HPACK state: the SDK's
        encoder and the backend's decoder must see the same table changes, but a block of indexed and literal
        fields only may stay unsent, and then a search the front answers costs the backend nothing."""
        if kind == wire.HEADERS:
            # Withheld blocks go first: streams open in the order of their ids, and a withheld block must be
            # decoded by the backend against the table it was encoded with.
            for earlier in self._held:
                self._unwithhold(earlier)
            if stream in self._held:  # trailers of a request: release what was held, in order
                self._release(stream)
        table = self._decoder.header_table
        before = table_state(table)
        block = _whole_block(self._fragments, self._decoder, kind, flags, stream, raw)
        if block is None:
            return raw
        first_flags, headers = block
        if stream not in self._calls and stream not in self._local and stream not in self._answered:
            method = next((v for k, v in headers if k == b":path"), b"").decode("utf-8", "replace")
            call = self._calls[stream] = Call(method, headers)
            if method in SCHEMA_CHANGES:
                call.copy = bytearray()
            if method in (SEARCH, HYBRID_SEARCH) and not first_flags & wire.END_STREAM:
                held = self._held[stream] = Held()
                if kind == wire.HEADERS and same_table(before, table_state(table)):
                    held.headers = raw
                    return None
        return raw

    def _request_data(self, flags: int, stream: int, raw: bytes) -> bytes | None:
        local = self._local.get(stream)
        if local is not None:  # taken over: the front receives the rest
            flow = len(raw) - 9
            local.data.append(wire.data_of(flags, raw[9:]))
            if flow:
                more = not flags & wire.END_STREAM
                self.to_client.write(wire.window_update(0, flow) + (wire.window_update(stream, flow) if more else b""))
            if flags & wire.END_STREAM:
                self._dispatch(stream, local, wire.grpc_payload(b"".join(local.data)))
            return None
        held = self._held.get(stream)
        if held is None:
            call = self._calls.get(stream)
            if call is not None and call.copy is not None:
                call.copy += wire.data_of(flags, raw[9:])
            return raw
        held.frames.append(raw)
        held.data.append(wire.data_of(flags, raw[9:]))
        held.flow += len(raw) - 9
        self._held_total += len(raw) - 9
        if flags & wire.END_STREAM:
            self._judge(stream)
        elif held.flow > HOLD_LIMIT or self._held_total > HOLD_TOTAL:
            self._take_over(stream)
        return None

    def _unwithhold(self, stream: int) -> None:
        held = self._held[stream]
        if held.headers:
            self._out.append(held.headers)
            held.headers = b""
            if held.window:
                self._out.append(wire.window_update(stream, held.window))

    def _unhold(self, stream: int) -> Held:
        """The stream's held request, no longer counted as held."""
        held = self._held.pop(stream)
        self._held_total -= held.flow
        return held

    def _drop_held(self, stream: int) -> Held | None:
        """The stream's held request if any, dropped: the SDK is credited for the bytes the backend never saw."""
        if stream not in self._held:
            return None
        held = self._unhold(stream)
        if held.flow:
            self.to_client.write(wire.window_update(0, held.flow))
        return held

    def _release(self, stream: int) -> None:
        self._unwithhold(stream)
        self._out.extend(self._unhold(stream).frames)

    def _judge(self, stream: int) -> None:
        held = self._held[stream]
        call = self._calls[stream]
        payload = wire.grpc_payload(b"".join(held.data))
        if payload is None or not self.handler.claims(call.method, payload):
            self._release(stream)
            return
        self._unhold(stream)
        local = self._become_local(stream, call, held)
        local.credit = held.flow  # the SDK has sent all it will on this stream: the credit can wait for the answer
        self._dispatch(stream, local, payload)

    def _take_over(self, stream: int) -> None:
        held = self._unhold(stream)
        local = self._become_local(stream, self._calls[stream], held)
        local.data = held.data
        self.to_client.write(wire.window_update(0, held.flow) + wire.window_update(stream, held.flow))

    def _become_local(self, stream: int, call: Call, held: Held) -> Local:
        del self._calls[stream]
        if not held.headers:  # the backend drops the call it has only seen the headers of
            self._out.append(wire.rst_stream(stream))
        local = self._local[stream] = Local(call.method, LocalCall(call.headers), self._client_initial + held.window)
        return local

    def _client_settings(self, flags: int, payload: bytes) -> bytes:
        for key, value in wire.settings(payload):
            if key == wire.SETTINGS_INITIAL_WINDOW_SIZE:
                for local in self._local.values():
                    local.window += value - self._client_initial
                self._client_initial = value
        self._flush_waiting()
        return wire.frame(wire.SETTINGS, flags, 0, wire.without_header_table(payload))

    def _client_credit(self, stream: int, raw: bytes) -> bytes | None:
        increment = int.from_bytes(raw[9:13], "big") & 0x7FFFFFFF
        if stream == 0:
            self._client_window += increment
            kept = min(increment, self._owed)
            self._owed -= kept
            self._flush_waiting()
            # Passed on with the next frames to the backend, or once they add up: a write of its own per answer
            # costs a system call (as much as the rest of a locally answered search on a small machine).
            self._credit += increment - kept
            return None
        held = self._held.get(stream)
        if held is not None and held.headers:
            held.window += increment
            return None
        local = self._local.get(stream)
        if local is not None:
            local.window += increment
            if local.tail is not None:
                self._flush(stream, local)
            return None
        return None if stream in self._answered else raw

    def _client_reset(self, stream: int, raw: bytes) -> bytes | None:
        local = self._local.pop(stream, None)
        if local is not None:
            local.context.cancel()
            self._remember(stream)
            return None
        if stream in self._answered:
            return None
        held = self._drop_held(stream)
        self._end(stream, b"1")
        return None if held is not None and held.headers else raw  # a stream the backend never saw: nothing to end

    # The front's own answers

    def _dispatch(self, stream: int, local: Local, payload: bytes | None) -> None:
        try:
            future = self.pool.submit(serve, self.handler, local.method, payload, local.context)
        except RuntimeError:  # the gateway is stopping
            self._answer(stream, local, (grpc.StatusCode.UNAVAILABLE.value[0], "the gateway is stopping", None))
            return
        future.add_done_callback(lambda done: self._from_worker(stream, local, done))

    def _from_worker(self, stream: int, local: Local, done: Future[Result]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the connection is gone
            self.loop.call_soon_threadsafe(self._answer, stream, local, done.result())

    def _answer(self, stream: int, local: Local, result: Result) -> None:
        if self.closed or self._local.get(stream) is not local:
            return  # the SDK reset the stream or hung up
        local.head, local.body, local.tail = answer_frames(stream, result)
        self._flush(stream, local)

    def _flush(self, stream: int, local: Local) -> None:
        """Write what the SDK's windows take of an answer; the rest waits for its credits."""
        out = [local.head]
        local.head = b""
        if local.credit:
            out.insert(0, wire.window_update(0, local.credit))
            local.credit = 0
        while local.body:
            room = min(wire.MAX_FRAME, local.window, self._client_window)
            if room <= 0:
                break
            chunk, local.body = local.body[:room], local.body[room:]
            out.append(wire.frame(wire.DATA, 0, stream, chunk))
            local.window -= len(chunk)
            self._client_window -= len(chunk)
            self._owed += len(chunk)
        if not local.body and local.tail is not None:
            out.append(local.tail)
            del self._local[stream]
            self._remember(stream)
        self.to_client.write(b"".join(out))

    def _flush_waiting(self) -> None:
        for stream, local in list(self._local.items()):
            if local.tail is not None and local.body:
                self._flush(stream, local)

    def _remember(self, stream: int) -> None:
        self._answered[stream] = None
        if len(self._answered) > _RECENTLY_ANSWERED:
            self._answered.popitem(last=False)

    # backend -> SDK

    def from_backend(self, data: bytes) -> None:
        frames, self._down = wire.cut(self._down + data)
        out = []
        for kind, flags, stream, raw in frames:
            ours = stream in self._local or stream in self._answered
            if kind == wire.DATA:
                if ours:  # answer bytes of a reset call: credited as the SDK would have
                    if len(raw) > 9:
                        self.to_backend.write(wire.window_update(0, len(raw) - 9))
                    continue
                self._client_window -= len(raw) - 9
            elif kind in (wire.HEADERS, wire.CONTINUATION):
                self._response_headers(kind, flags, stream, raw)  # decoded even when dropped: HPACK stays in step
            elif kind == wire.RST_STREAM and not ours:
                self._end(stream, b"1")
            if ours and stream:
                continue
            out.append(raw)
        if out:
            self.to_client.write(b"".join(out))

    def _response_headers(self, kind: int, flags: int, stream: int, raw: bytes) -> None:
        block = _whole_block(self._down_fragments, self._down_decoder, kind, flags, stream, raw)
        if block is None:
            return
        first_flags, headers = block
        if first_flags & wire.END_STREAM:
            self._end(stream, next((v for k, v in headers if k == b"grpc-status"), b"0"))

    def _end(self, stream: int, status: bytes) -> None:
        call = self._calls.pop(stream, None)
        if call is None:
            return
        self._drop_held(stream)  # the backend answered before the request ended: the held bytes are not its
        outcome = "ok" if status == b"0" else _CODE_NAMES.get(status, "error")
        metrics.observe(call.method, "passthrough", outcome, time.perf_counter() - call.started)
        if call.copy is not None and status == b"0":
            payload = wire.grpc_payload(bytes(call.copy))
            if payload is not None:
                try:
                    metadata = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in call.headers]
                    self.handler.forget(call.method, payload, metadata)
                except Exception:  # a request the backend took but protobuf refuses: the cache ages out instead
                    log.debug("cannot read the schema change %s", call.method, exc_info=True)

    def close(self) -> None:
        """The connection is gone: calls being answered stop."""
        self.closed = True
        for local in self._local.values():
            local.context.cancel()
        self._local.clear()


def _whole_block(
    fragments: dict[int, tuple[int, bytes]], decoder: hpack.Decoder, kind: int, flags: int, stream: int, raw: bytes
) -> tuple[int, list[tuple[bytes, bytes]]] | None:
    """The flags of a header block's HEADERS frame and its decoded fields once the block is whole (None before:
    the fragment is kept in ``fragments`` until its CONTINUATION frames end it)."""
    if kind == wire.HEADERS:
        first_flags, fragment = flags, wire.block_fragment(flags, raw[9:])
    else:
        first_flags, fragment = fragments.pop(stream, (0, b""))
        fragment += raw[9:]
    if not flags & wire.END_HEADERS:
        fragments[stream] = (first_flags, fragment)
        return None
    try:
        return first_flags, cast(list[tuple[bytes, bytes]], decoder.decode(fragment, raw=True))
    except hpack.HPACKError as exc:
        raise ProtocolError(f"undecodable header block on stream {stream}: {exc}") from None
