"""A ``Splice`` between two lists of written bytes: the frame-level tests feed it what an SDK and a backend would
send and read back what each receives, with the checks every test makes (header blocks whole, frames well formed,
the SDK's send window never stuck behind the front)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import hpack
import pytest

from vllm_ranker.gateway import h2wire as wire
from vllm_ranker.gateway.grpc_wire import grpc_body
from vllm_ranker.gateway.ledger import DEBT_LIMIT, HOLD_TOTAL
from vllm_ranker.gateway.local_call import Aborted
from vllm_ranker.gateway.rerank import SEARCH
from vllm_ranker.gateway.splice import Splice

OTHER = "/milvus.proto.milvus.MilvusService/ShowCollections"


class Sink:
    """Where a side's bytes go: the frames written to it, cut."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def frames(self) -> list[wire.Frame]:
        frames, rest = wire.cut(self.data.removeprefix(wire.PREFACE))
        assert rest == b""
        return frames

    def kinds(self) -> list[tuple[int, int]]:
        return [(kind, stream) for kind, _, stream, _ in self.frames()]

    def credits(self, stream: int) -> int:
        return sum(
            int.from_bytes(raw[9:], "big") for k, _, s, raw in self.frames() if k == wire.WINDOW_UPDATE and s == stream
        )


class Handler:
    """Claims the requests that start with b"ours" and answers each with its own bytes reversed; b"ours fail"
    ends in an error whose message is the rest of the request; a search waits while ``gate`` is closed."""

    def __init__(self) -> None:
        self.served: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()

    def claims(self, method: str, payload: bytes) -> bool:
        return method == SEARCH and payload.startswith(b"ours")

    def unary_call(self, method: str, payload: bytes, context: Any) -> bytes:
        self.gate.wait(10)
        self.served.append(payload)
        if payload.startswith(b"ours fail"):
            raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, payload[9:].decode())
        return payload[::-1]

    def forget(self, *args: Any) -> None:
        pass


def check_blocks_whole(frames: list[wire.Frame]) -> None:
    """Nothing between a HEADERS without END_HEADERS and the CONTINUATION that ends it (RFC 9113 §6.10)."""
    open_block: int | None = None
    for kind, flags, stream, _ in frames:
        if open_block is not None:
            assert kind == wire.CONTINUATION and stream == open_block, f"a frame of type {kind} inside a block"
        if kind in (wire.HEADERS, wire.CONTINUATION):
            open_block = None if flags & wire.END_HEADERS else stream


class Front:
    def __init__(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
        self.client, self.backend, self.handler = Sink(), Sink(), Handler()
        self.encoder = hpack.Encoder()
        self.splice = Splice(self.handler, pool, loop, self.client, self.backend)  # type: ignore[arg-type]
        self.sent = 0  # flow-controlled bytes the SDK sent
        self.splice.from_client(wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0))

    def send(self, data: bytes) -> None:
        """Bytes from the SDK; its connection window, as it counts it, is checked after each."""
        self.sent += sum(len(raw) - 9 for kind, _, _, raw in wire.cut(data)[0] if kind == wire.DATA)
        self.splice.from_client(data)
        assert self.sdk_window() >= wire.DEFAULT_WINDOW - HOLD_TOTAL - DEBT_LIMIT - wire.MAX_FRAME

    def sdk_window(self) -> int:
        """The SDK's send window on the connection if the backend credits every DATA byte it receives."""
        forwarded = sum(len(raw) - 9 for kind, _, _, raw in self.backend.frames() if kind == wire.DATA)
        return wire.DEFAULT_WINDOW - self.sent + self.client.credits(0) + forwarded

    def headers(self, stream: int, method: str, end: bool = False, extra: list[tuple[str, str]] | None = None) -> bytes:
        fields = [(":method", "POST"), (":path", method), ("content-type", "application/grpc"), ("te", "trailers")]
        block = self.encoder.encode([*fields, *(extra or [])])
        return wire.frame(wire.HEADERS, wire.END_HEADERS | (wire.END_STREAM if end else 0), stream, block)

    def request(self, stream: int, method: str, body: bytes, frame_size: int = wire.MAX_FRAME) -> bytes:
        out = self.headers(stream, method)
        message = grpc_body(body)
        for at in range(0, len(message), frame_size):
            last = at + frame_size >= len(message)
            out += wire.frame(wire.DATA, wire.END_STREAM if last else 0, stream, message[at : at + frame_size])
        return out

    def answers(self) -> dict[int, list[Any]]:
        """What the SDK received per stream: decoded header blocks (dicts) and DATA payloads."""
        decoder = hpack.Decoder()
        out: dict[int, list[Any]] = {}
        block: list[bytes] = []
        for kind, flags, stream, raw in self.client.frames():
            if kind in (wire.HEADERS, wire.CONTINUATION):
                block.append(wire.block_fragment(flags, raw[9:]) if kind == wire.HEADERS else raw[9:])
                if flags & wire.END_HEADERS:
                    out.setdefault(stream, []).append(dict(decoder.decode(b"".join(block), raw=True)))
                    block = []
            elif kind == wire.DATA:
                out.setdefault(stream, []).append(raw[9:])
        return out

    def check(self) -> None:
        check_blocks_whole(self.client.frames())
        check_blocks_whole(self.backend.frames())


async def settle(front: Front, limit: float = 5.0) -> None:
    """Until every call the front answers is answered (fails past ``limit``: a test never passes on a hang)."""
    for _ in range(int(limit * 100)):
        if not any(s.context is not None for s in front.splice._streams.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"calls still unanswered: {sorted(front.splice._streams)}")


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


Test = Callable[[Front], Awaitable[None]]


def run(pool: ThreadPoolExecutor, test: Test) -> Front:
    """Run one test on a fresh front in an event loop of its own; both peers' frames are checked after it."""

    async def main() -> Front:
        front = Front(asyncio.get_running_loop(), pool)
        try:
            await test(front)
        finally:
            front.handler.gate.set()
        front.check()
        return front

    return asyncio.run(main())
