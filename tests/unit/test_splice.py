"""The splicing front's bookkeeping, frame by frame: what reaches each peer when a search is answered by the front,
released to the backend, taken over, or reset, and every frame type copied in both directions. The sockets are
lists of written bytes here (splice_harness.py); tests/gateway runs the same code between real SDKs and Milvus."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import hpack
import pytest

from tests.unit.splice_harness import OTHER, Front, pool, run, settle
from vllm_ranker.gateway import h2wire as wire
from vllm_ranker.gateway.grpc_wire import grpc_body
from vllm_ranker.gateway.ledger import HOLD_LIMIT
from vllm_ranker.gateway.rerank import SEARCH

__all__ = ["pool"]


def test_a_search_the_front_answers_never_reaches_the_backend(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        # The first block adds the headers to the HPACK table: it must reach the backend, then be reset there.
        front.send(front.request(1, SEARCH, b"ours 1"))
        front.send(front.request(3, SEARCH, b"ours 2"))
        await settle(front)
        assert front.handler.served == [b"ours 1", b"ours 2"]
        backend = front.backend.kinds()
        assert backend == [(wire.SETTINGS, 0), (wire.HEADERS, 1), (wire.RST_STREAM, 1)]  # stream 3: nothing at all
        answers = front.answers()
        assert answers[3] == [
            {b":status": b"200", b"content-type": b"application/grpc"},
            grpc_body(b"2 sruo"),
            {b"grpc-status": b"0"},
        ]
        # The SDK was credited for every request byte the backend never saw.
        assert front.client.credits(0) == 2 * len(grpc_body(b"ours 1"))
        # Its credits for the answer bytes are kept from the backend; the rest reaches it with the next frames.
        answered = len(grpc_body(b"2 sruo")) * 2
        front.send(wire.window_update(0, answered + 100) + front.request(5, OTHER, b"x"))
        assert front.backend.credits(0) == 100

    run(pool, test)


def test_a_search_the_backend_answers_is_released_as_it_came(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        request = front.request(1, SEARCH, b"theirs")
        front.send(request)
        assert front.backend.data.endswith(request) and front.handler.served == []

    run(pool, test)


def test_a_search_past_the_hold_limit_is_taken_over(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        body = b"ours" + b"x" * (2 * HOLD_LIMIT)
        front.send(front.request(1, SEARCH, body, frame_size=4096))
        await settle(front)
        assert front.handler.served == [body]
        assert front.client.credits(0) == len(grpc_body(body))  # every byte the backend never saw
        assert front.client.credits(1) >= HOLD_LIMIT  # enough of the stream window for the SDK to send the rest
        assert (wire.RST_STREAM, 1) in front.backend.kinds()  # the backend saw the headers: its stream is reset

    run(pool, test)


def test_a_reset_search_the_backend_never_saw_is_not_passed_on(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.request(1, SEARCH, b"theirs"))  # first: the block changes the table
        trailers = hpack.Encoder().encode([(":status", "200"), ("grpc-status", "0")])
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, trailers))
        frames, _ = wire.cut(front.request(3, SEARCH, b"theirs"))
        before = front.backend.data
        front.send(frames[0][3] + wire.rst_stream(3))  # headers withheld, then the SDK gives up
        assert front.backend.data == before  # no reset of a stream the backend never opened (a protocol error)
        assert not front.splice.busy

    run(pool, test)


PAYLOADS = {
    wire.PRIORITY_FRAME: (1, (0).to_bytes(4, "big") + b"\x10"),
    wire.RST_STREAM: (1, wire.CANCEL.to_bytes(4, "big")),
    wire.PING: (0, b"12345678"),
    wire.GOAWAY: (0, (1).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"bye"),
    wire.WINDOW_UPDATE: (1, (1000).to_bytes(4, "big")),
    0xFA: (1, b"an extension frame"),  # unknown types are passed on, as receivers must ignore them
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_every_other_frame_type_of_a_passthrough_call_is_copied_both_ways(pool: ThreadPoolExecutor, kind: int) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, OTHER))
        front.splice.from_backend(
            wire.frame(wire.HEADERS, wire.END_HEADERS, 1, hpack.Encoder().encode([(":status", "200")]))
        )
        stream, payload = PAYLOADS[kind]
        raw = wire.frame(kind, 0, stream, payload)
        front.send(raw)
        assert front.backend.frames()[-1][3] == raw
        if kind != wire.GOAWAY:  # the backend's GOAWAY is the front's to rewrite (test_splice_rules.py)
            front.splice.from_backend(raw)
            assert front.client.frames()[-1][3] == raw

    run(pool, test)


def test_data_headers_continuation_and_settings_are_copied_both_ways(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        block = front.encoder.encode([(":method", "POST"), (":path", OTHER), ("x-long", "v" * 100)])
        request = wire.frame(wire.HEADERS, wire.PADDED, 1, bytes([3]) + block[:20] + b"\0\0\0")
        request += wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, block[20:])
        request += wire.frame(wire.DATA, wire.PADDED | wire.END_STREAM, 1, bytes([2]) + grpc_body(b"x") + b"\0\0")
        front.send(request)
        assert front.backend.data.endswith(request)  # padding and the split kept: the front copies, not re-frames
        settings = wire.frame(
            wire.SETTINGS, 0, 0, (wire.SETTINGS_INITIAL_WINDOW_SIZE).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")
        )
        front.splice.from_backend(settings)
        answer = hpack.Encoder().encode([(":status", "200"), ("content-type", "application/grpc"), ("x", "y" * 50)])
        response = wire.frame(wire.HEADERS, 0, 1, answer[:10]) + wire.frame(
            wire.CONTINUATION, wire.END_HEADERS, 1, answer[10:]
        )
        response += wire.frame(wire.DATA, 0, 1, grpc_body(b"answer"))
        front.splice.from_backend(response)
        assert front.client.data.endswith(settings + response)
        front.send(wire.frame(wire.SETTINGS, wire.ACK, 0))
        assert front.backend.frames()[-1] == (wire.SETTINGS, wire.ACK, 0, wire.frame(wire.SETTINGS, wire.ACK, 0))
        # The SDK's SETTINGS reach the backend without a dynamic header table, the rest as they were.
        front.send(
            wire.frame(
                wire.SETTINGS, 0, 0, (wire.SETTINGS_MAX_FRAME_SIZE).to_bytes(2, "big") + (1 << 15).to_bytes(4, "big")
            )
        )
        assert wire.settings(front.backend.frames()[-1][3][9:]) == [
            (wire.SETTINGS_MAX_FRAME_SIZE, 1 << 15),
            (wire.SETTINGS_HEADER_TABLE_SIZE, 0),
        ]

    run(pool, test)


def test_a_backends_push_promise_reaches_the_sdk_whole(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, OTHER, end=True))
        block = hpack.Encoder().encode([(":method", "GET"), (":path", "/pushed"), ("x", "z" * 60)])
        promise = wire.frame(wire.PUSH_PROMISE, 0, 1, (2).to_bytes(4, "big") + block[:10])
        promise += wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, block[10:])
        front.splice.from_backend(promise)  # the SDK refuses it (gRPC clients disable push): its decision
        assert front.client.data.endswith(promise)

    run(pool, test)


def test_settle_fails_while_a_call_is_unanswered(pool: ThreadPoolExecutor) -> None:
    """The harness's own check: a call the front never answers fails the test in ``settle``, not passes it."""

    async def test(front: Front) -> None:
        front.handler.gate.clear()  # the handler waits: the call stays unanswered
        front.send(front.request(1, SEARCH, b"ours"))
        with pytest.raises(AssertionError, match=r"calls still unanswered: \[1\]"):
            await settle(front, limit=0.2)
        front.handler.gate.set()
        await settle(front)
        assert front.handler.served == [b"ours"]

    run(pool, test)
