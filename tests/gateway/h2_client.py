"""A small gRPC-over-HTTP/2 client that varies on purpose every choice HTTP/2 leaves to a client, for the splicing
front's differential fuzz test (tests/gateway/test_front_fuzz.py, benchmarks/front_fuzz.py).

It drives python-hyper's ``h2`` (a client connection; h2 also checks what the server sends: frame sizes against our
MAX_FRAME_SIZE, data against our windows, header blocks uninterrupted, HPACK table sizes) over a blocking socket and
runs a ``Plan`` (tests/gateway/h2_plan.py): the SETTINGS announced (and changed mid-connection), unary calls whose
header blocks are cut into HEADERS + CONTINUATION frames and padded, whose DATA frames are cut and padded, ended by
request trailers or an empty frame, PRIORITY frames, WINDOW_UPDATEs given eagerly, in dribbles, only when the server
falls silent or by h2's own policy, RST_STREAMs, gzip-compressed messages. Steps of several calls interleave in the
order the plan lists them.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import defaultdict

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hpack import HeaderTuple, NeverIndexedHeaderTuple
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame

from tests.gateway.h2_plan import (
    CREDITS,
    Advance,
    Answer,
    Cancel,
    Credit,
    Outcome,
    Plan,
    Prioritize,
    Request,
    Resettle,
    Settings,
    Step,
    Wait,
)

_TRICKLE = 97  # bytes per WINDOW_UPDATE when credits dribble (a prime: increments never line up with frames)
_IDLE_S = 0.01  # how long the server must be silent before an "idle" client gives the credit it owes
_MAX_WINDOW = (1 << 31) - 1
# The plan's parts, for the callers of run().
__all__ = [
    "CREDITS",
    "Advance",
    "Answer",
    "Cancel",
    "Credit",
    "Outcome",
    "Plan",
    "Prioritize",
    "Request",
    "Resettle",
    "Settings",
    "Step",
    "Wait",
    "run",
]


class _Stalled(Exception):
    pass


class _Client:
    def __init__(self, address: tuple[str, int], plan: Plan, timeout: float) -> None:
        self.plan, self.deadline = plan, time.monotonic() + timeout
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write its own segment, as gRPC's
        self.authority = f"{address[0]}:{address[1]}".encode()
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.outcome = Outcome()
        self.streams: dict[int, int] = {}  # call -> stream
        self.calls: dict[int, int] = {}  # stream -> call
        self.cursor: dict[int, int] = defaultdict(int)  # call -> steps done
        # Each call's steps, built once: building them gzips the body (4 ms for a 26 KB search), and _all_answered
        # runs at every poll; a 7-byte window makes that thousands of polls, which once ran a plan past its deadline.
        self.actions = [request.actions() for request in plan.requests]
        self.owed: dict[int, int] = defaultdict(int)  # stream (0: the connection) -> credit not yet given
        self.encoder_table = plan.settings.encoder_table_size
        self.timeout = timeout
        resettled = (step.settings.initial_window for step in plan.steps if isinstance(step, Resettle))
        self.announced = max([plan.settings.initial_window, *resettled])
        self.closed = self.pinged = False
        self.unread = bytearray()
        self.last_read = time.monotonic()  # when the server's bytes last came: tells a stall from a slow exchange

    def run(self) -> Outcome:
        try:
            self._start()
            for step in self.plan.steps:
                self._step(step)
            for call in range(len(self.plan.requests)):
                while self._advance(call):
                    pass
            self._until(self._all_answered, "answers")
            self.h2.ping(b"fuzzdone")  # every frame sent so far has been read by the server once its ack comes
            self._until(lambda: self.pinged, "the PING's ack")
        except _Stalled as exc:
            self.outcome.problems.append(f"stalled waiting for {exc}")
        except h2.exceptions.ProtocolError as exc:
            self.outcome.problems.append(f"h2 ProtocolError: {type(exc).__name__}: {exc}")
        except OSError as exc:
            self.outcome.problems.append(f"socket error: {exc!r}")
        finally:
            self.sock.close()
        return self.outcome

    def _start(self) -> None:
        settings = self.plan.settings
        if self.plan.preface_settings:
            # Our SETTINGS come before any of our streams, so the server applies them to every stream: h2 may hold
            # us to them at once (its connection window stays the RFC's 65,535 whatever INITIAL_WINDOW_SIZE says).
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values=settings.codes())
            self.h2.max_inbound_frame_size = settings.max_frame_size
            self.h2.decoder.max_allowed_table_size = settings.header_table_size
            self.h2.initiate_connection()
        else:
            self.h2.initiate_connection()
            self._announce(settings)
        if self.plan.upfront:
            self.h2.increment_flow_control_window(self.plan.upfront)
        self._flush()

    def _announce(self, settings: Settings) -> None:
        self.h2.update_settings({int(code): value for code, value in settings.codes().items()})

    def _step(self, step: Step) -> None:
        if isinstance(step, Advance):
            self._advance(step.call)
        elif isinstance(step, Cancel):
            self.outcome.cancelled.add(step.call)
            stream = self.streams.get(step.call)
            if stream is not None:
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    self.h2.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        elif isinstance(step, Prioritize):
            stream = self.streams.get(step.call)
            on = self.streams.get(step.on, 0) if step.on is not None else 0
            if stream is not None and on != stream:
                self.h2.prioritize(stream, step.weight, on, step.exclusive)
        elif isinstance(step, Wait):
            self._until(self._all_answered, "answers")
        elif isinstance(step, Resettle):
            self._announce(step.settings)
            self.encoder_table = step.settings.encoder_table_size
        elif step.call is None:
            self._window_update(min(step.increment, _MAX_WINDOW - self.h2.inbound_flow_control_window), 0)
        elif (stream := self.streams.get(step.call)) is not None:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                # A window past 2**31 - 1 is the client's own error, now or once a larger INITIAL_WINDOW_SIZE the
                # plan announces comes into force.
                growth = max(self.announced - self.h2.local_settings.initial_window_size, 0)
                room = _MAX_WINDOW - self.h2.streams[stream].inbound_flow_control_window - growth
                self._window_update(min(step.increment, room), stream)
        self._flush()
        self._pump(0)

    def _advance(self, call: int) -> bool:
        """Send the call's next step; False when it has none left (or was cancelled)."""
        request, done, actions = self.plan.requests[call], self.cursor[call], self.actions[call]
        if call in self.outcome.cancelled or done > len(actions):
            return False
        self.cursor[call] += 1
        try:
            if done == 0:
                self._open(call, request)
            else:
                kind, payload, end = actions[done - 1]
                pads = request.pads or (None,)
                if kind == "data":
                    self._send_data(self.streams[call], payload, pads[(done - 1) % len(pads)], end)
                else:
                    self._send_block(self.streams[call], request, [(b"x-fuzz-trailer", b"1")], True)
        # The server ended the stream (a whole answer may end it before the request ends, RFC 9113 8.1), and h2
        # has forgotten it: the rest of the request is not sent; the answer says what happened.
        except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError):
            self.cursor[call] = len(actions) + 1
        self._flush()
        self._pump(0)
        return True

    def _open(self, call: int, request: Request) -> None:
        stream = self.h2.get_next_available_stream_id()
        self.streams[call], self.calls[stream] = stream, call
        self.outcome.answers[call] = Answer()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", request.method.encode()),
            (b":authority", self.authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"front-fuzz/1"),
            (b"grpc-accept-encoding", b"identity,gzip"),
        ]
        if request.compress:
            headers.append((b"grpc-encoding", b"gzip"))
        if request.timeout is not None:
            headers.append((b"grpc-timeout", request.timeout))
        table = min(self.encoder_table, self.h2.remote_settings.header_table_size)
        if self.h2.encoder.header_table_size != table:
            self.h2.encoder.header_table_size = table
        self._send_block(stream, request, headers, False)

    def _send_block(self, stream: int, request: Request, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        """A header block, re-cut into the plan's HEADERS + CONTINUATION frames (h2 cuts only at the frame size)."""
        self._flush()
        tuples = [(NeverIndexedHeaderTuple if request.never_index else HeaderTuple)(k, v) for k, v in headers]
        weight = request.weight if not end else None
        self.h2.send_headers(stream, tuples, end_stream=end, priority_weight=weight)
        frames, raw, at = [], self.h2.data_to_send(), 0
        while at < len(raw):
            parsed, length = Frame.parse_frame_header(memoryview(raw[at : at + 9]))
            parsed.parse_body(memoryview(raw[at + 9 : at + 9 + length]))
            frames.append(parsed)
            at += 9 + length
        first = frames[0]
        assert isinstance(first, HeadersFrame)
        block = b"".join(bytes(f.data) for f in frames if isinstance(f, HeadersFrame | ContinuationFrame))
        limit = self.h2.max_outbound_frame_size
        overhead = (5 if "PRIORITY" in first.flags else 0) + (
            request.header_pad + 1 if request.header_pad is not None else 0
        )
        pad = request.header_pad if overhead < limit else None
        sizes = [*request.split, len(block)]
        head = HeadersFrame(stream, block[: min(sizes[0], limit - overhead)], pad_length=pad or 0)
        for flag in {"END_STREAM", "PRIORITY"} & set(first.flags):
            head.flags.add(flag)
        head.depends_on, head.stream_weight, head.exclusive = first.depends_on, first.stream_weight, first.exclusive
        if pad is not None:
            head.flags.add("PADDED")
        out: list[HeadersFrame | ContinuationFrame] = [head]
        rest, i = block[len(head.data) :], 1
        while rest:
            size = max(1, min(sizes[min(i, len(sizes) - 1)], limit))
            out.append(ContinuationFrame(stream, rest[:size]))
            rest, i = rest[size:], i + 1
        out[-1].flags.add("END_HEADERS")
        if request.pause:
            time.sleep(request.pause)
            if len(out) > 1:
                self._send(out.pop(0).serialize())
                time.sleep(request.pause)
        self._send(b"".join(f.serialize() for f in out))

    def _send_data(self, stream: int, payload: bytes, pad: int | None, end: bool) -> None:
        """DATA frames of ``payload`` as the server's windows and frame size allow, padded where the pad fits."""
        view = payload
        while True:
            room = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
            padding = pad if pad is not None and pad + 1 + min(len(view), 1) <= room else None
            take = min(len(view), room - (0 if padding is None else padding + 1))
            if view and take <= 0:
                self._until(lambda: self.h2.local_flow_control_window(stream) > 0, f"send window, stream {stream}")
                continue
            last = take == len(view)
            self.h2.send_data(stream, view[:take], end_stream=end and last, pad_length=padding)
            view = view[take:]
            if last:
                return

    # Reading

    def _all_answered(self) -> bool:
        """Every call sent whole (and not cancelled) has its answer; one still being sent cannot have it yet."""
        return all(
            answer.ended or answer.reset is not None
            for call, answer in self.outcome.answers.items()
            if call not in self.outcome.cancelled and self.cursor[call] > len(self.actions[call])
        )

    def _until(self, done: object, what: str) -> None:
        assert callable(done)
        while not done():
            if self.closed:
                raise _Stalled(f"{what}: the connection is closed")
            if (now := time.monotonic()) > self.deadline:
                # A server silent for long stalled; one that kept sending was merely slower than the deadline.
                silent = now - self.last_read
                raise _Stalled(f"{what}: {self.timeout:g} s passed, the server silent for the last {silent:.2f} s")
            self._pump(_IDLE_S)

    def _pump(self, wait: float) -> None:
        self._flush()
        if self.closed:
            return
        self.sock.settimeout(wait if wait > 0 else 0.0)
        try:
            data = self.sock.recv(1 << 16)
        except (TimeoutError, BlockingIOError):
            if wait > 0 and self.plan.credit == "idle":
                self._give_credit()
            return
        self.last_read = time.monotonic()
        if not data:
            self.closed = True
            self.outcome.problems.append("the server closed the connection")
            return
        # Frame by frame: h2 takes a SETTINGS ACK's new MAX_FRAME_SIZE into account only from its next
        # receive_data(), and would refuse a larger frame that came in the same read as the ACK.
        self.unread += data
        while len(self.unread) >= 9 and len(self.unread) >= (end := 9 + int.from_bytes(self.unread[:3], "big")):
            frame, self.unread = bytes(self.unread[:end]), self.unread[end:]
            for event in self.h2.receive_data(frame):
                self._event(event)
        self._flush()

    def _event(self, event: h2.events.Event) -> None:
        call = self.calls.get(getattr(event, "stream_id", 0) or 0)
        answer = self.outcome.answers.get(call) if call is not None else None
        if isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
            self.outcome.problems.append(f"GOAWAY {event.error_code!r}: {event.additional_data!r}")
        elif isinstance(event, h2.events.PingAckReceived):
            self.pinged = True
        elif answer is None:
            return
        elif isinstance(event, h2.events.ResponseReceived):
            answer.headers = list(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            answer.trailers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            answer.body += event.data
            self._credit(event.stream_id, event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            answer.ended = True
        elif isinstance(event, h2.events.StreamReset):
            answer.reset = int(event.error_code)

    def _credit(self, stream: int, size: int) -> None:
        if self.plan.credit == "h2":
            self.h2.acknowledge_received_data(size, stream)
            return
        self.owed[0] += size
        self.owed[stream] += size
        if self.plan.credit != "idle":
            self._give_credit()

    def _give_credit(self) -> None:
        step = _TRICKLE if self.plan.credit == "trickle" else 1 << 30
        for stream, size in list(self.owed.items()):
            self.owed[stream] = 0
            while size > 0:
                self._window_update(min(size, step), stream)
                size -= step

    def _window_update(self, increment: int, stream: int) -> None:
        """Credit the connection (0) or a stream; none for a stream that is closed (h2 forgets them)."""
        if increment > 0:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self.h2.increment_flow_control_window(increment, stream or None)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self._send(data)

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)  # reads poll without blocking; writes wait for the server to read
        self.sock.sendall(data)


def run(address: tuple[str, int], plan: Plan, timeout: float = 20.0) -> Outcome:
    """Run ``plan`` on a new connection to ``address``; what came back, and what went wrong with the connection."""
    return _Client(address, plan, timeout).run()
