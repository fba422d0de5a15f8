"""The splicing front's bookkeeping, frame by frame: what reaches each peer when a search is answered by the front,
released to the backend, taken over, or reset. The sockets are lists of written bytes here; tests/gateway runs the
same code between real SDKs and a real Milvus."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hpack

from vllm_ranker.gateway import h2wire as wire
from vllm_ranker.gateway.rerank import SEARCH
from vllm_ranker.gateway.splice import HOLD_LIMIT, Splice

OTHER = "/milvus.proto.milvus.MilvusService/ShowCollections"


class Sink:
    """Where a side's bytes go: the frames written to it, cut."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        frames, rest = wire.cut(self.data.removeprefix(wire.PREFACE))
        assert rest == b""
        return frames

    def kinds(self) -> list[tuple[int, int]]:
        return [(kind, stream) for kind, _, stream, _ in self.frames()]


class Handler:
    """Claims the requests that start with b"ours" and answers each with its own bytes reversed."""

    def __init__(self) -> None:
        self.served: list[bytes] = []

    def claims(self, method: str, payload: bytes) -> bool:
        return method == SEARCH and payload.startswith(b"ours")

    def unary_call(self, method: str, payload: bytes, context: Any) -> bytes:
        self.served.append(payload)
        return payload[::-1]

    def forget(self, *args: Any) -> None:
        pass


class Front:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.backend, self.handler = Sink(), Sink(), Handler()
        self.encoder = hpack.Encoder()
        self.splice = Splice(self.handler, POOL, loop, self.client, self.backend)  # type: ignore[arg-type]
        self.splice.from_client(wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0))

    def request(self, stream: int, method: str, body: bytes, frame_size: int = wire.MAX_FRAME) -> bytes:
        headers = [(":method", "POST"), (":path", method), ("content-type", "application/grpc"), ("te", "trailers")]
        out = wire.frame(wire.HEADERS, wire.END_HEADERS, stream, self.encoder.encode(headers))
        message = wire.grpc_body(body)
        for at in range(0, len(message), frame_size):
            last = at + frame_size >= len(message)
            out += wire.frame(wire.DATA, wire.END_STREAM if last else 0, stream, message[at : at + frame_size])
        return out


POOL = ThreadPoolExecutor(2)


async def settle(front: Front) -> None:
    for _ in range(100):
        if not front.splice.busy:
            return
        await asyncio.sleep(0.01)


def run(test: Any) -> None:
    async def main() -> None:
        await test(Front(asyncio.get_running_loop()))

    asyncio.run(main())


def test_a_search_the_front_answers_never_reaches_the_backend() -> None:
    async def test(front: Front) -> None:
        # The first block adds the headers to the HPACK table: it must reach the backend, then be reset there.
        front.splice.from_client(front.request(1, SEARCH, b"ours 1"))
        front.splice.from_client(front.request(3, SEARCH, b"ours 2"))
        await settle(front)
        assert front.handler.served == [b"ours 1", b"ours 2"]
        backend = front.backend.kinds()
        assert backend == [(wire.SETTINGS, 0), (wire.HEADERS, 1), (wire.RST_STREAM, 1)]  # stream 3: nothing at all
        decoder = hpack.Decoder()
        answers: dict[int, list[Any]] = {1: [], 3: []}
        for kind, _, stream, raw in front.client.frames():
            if kind == wire.HEADERS:
                answers[stream].append(dict(decoder.decode(raw[9:], raw=True)))
            elif kind == wire.DATA:
                answers[stream].append(wire.grpc_payload(raw[9:]))
        assert answers[3] == [
            {b":status": b"200", b"content-type": b"application/grpc"},
            b"2 sruo",
            {b"grpc-status": b"0"},
        ]
        assert len(decoder.header_table.dynamic_entries) == 0  # the SDK's table untouched by the answers
        # The SDK was credited for the request bytes the backend never saw, once per answered search.
        credits = [raw for kind, _, stream, raw in front.client.frames() if kind == wire.WINDOW_UPDATE]
        assert len(credits) == 2 and all(
            int.from_bytes(c[9:], "big") == len(wire.grpc_body(b"ours 1")) for c in credits
        )
        # Its credits for the answer bytes are kept from the backend; the rest reaches it with the next frames.
        answered = len(wire.grpc_body(b"2 sruo")) * 2
        front.splice.from_client(wire.window_update(0, answered + 100) + front.request(5, OTHER, b"x"))
        passed = [raw for kind, _, s, raw in front.backend.frames() if kind == wire.WINDOW_UPDATE and s == 0]
        assert [int.from_bytes(raw[9:], "big") for raw in passed] == [100]

    run(test)


def test_a_search_the_backend_answers_is_released_as_it_came() -> None:
    async def test(front: Front) -> None:
        request = front.request(1, SEARCH, b"theirs")
        front.splice.from_client(request)
        assert front.backend.data.endswith(request) and front.handler.served == []

    run(test)


def test_a_search_past_the_hold_limit_is_taken_over() -> None:
    async def test(front: Front) -> None:
        body = b"ours" + b"x" * (2 * HOLD_LIMIT)
        front.splice.from_client(front.request(1, SEARCH, body, frame_size=4096))
        await settle(front)
        assert front.handler.served == [body]
        credits = [
            (s, int.from_bytes(raw[9:], "big")) for k, _, s, raw in front.client.frames() if k == wire.WINDOW_UPDATE
        ]
        credited = {stream: sum(n for s, n in credits if s == stream) for stream in (0, 1)}
        assert credited[0] == len(wire.grpc_body(body))  # every byte the backend never saw
        assert credited[1] >= HOLD_LIMIT  # enough of the stream window for the SDK to send the rest

    run(test)


def test_a_reset_search_the_backend_never_saw_is_not_passed_on() -> None:
    async def test(front: Front) -> None:
        front.splice.from_client(front.request(1, SEARCH, b"theirs"))  # first: the block changes the table
        trailers = hpack.Encoder().encode([(":status", "200"), ("grpc-status", "0")])
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, trailers))
        frames, _ = wire.cut(front.request(3, SEARCH, b"theirs"))
        before = front.backend.data
        front.splice.from_client(frames[0][3] + wire.rst_stream(3))  # headers withheld, then the SDK gives up
        assert front.backend.data == before  # no reset of a stream the backend never opened (a protocol error)
        assert not front.splice.busy

    run(test)
