"""The rules of HTTP/2 the splicing front keeps, one test per risk a frame-level review found (issue 23, A-I):
each sequence here is legal (or, for malformed input, ends the connection with the right error code) and each
failed on the front before its rewrite."""

from __future__ import annotations

import asyncio
import gzip
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.splice_harness import OTHER, Front, pool, run, settle
from vllm_ranker.gateway import h2wire as wire
from vllm_ranker.gateway.grpc_wire import grpc_body
from vllm_ranker.gateway.ledger import DEBT_LIMIT, HOLD_LIMIT, HOLD_TOTAL
from vllm_ranker.gateway.rerank import SEARCH
from vllm_ranker.gateway.streams import MAX_BLOCK

__all__ = ["pool"]
RESPONSE = hpack.Encoder().encode([(":status", "200"), ("content-type", "application/grpc"), ("x-pad", "p" * 40)])


def _setting(key: int, value: int) -> bytes:
    return wire.frame(wire.SETTINGS, 0, 0, key.to_bytes(2, "big") + value.to_bytes(4, "big"))


# A: nothing of the front's own inside a header block, in either direction


def test_a_credit_to_the_backend_never_lands_inside_the_sdks_header_block(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.request(1, SEARCH, b"ours"))
        await settle(front)
        block = front.encoder.encode([(":method", "POST"), (":path", OTHER), ("x-big", "b" * 300)])
        front.send(wire.frame(wire.HEADERS, 0, 3, block[:100]))
        # The backend's late answer to the reset stream 1: the front credits it to the backend itself.
        front.splice.from_backend(wire.frame(wire.DATA, 0, 1, b"late answer bytes"))
        front.send(wire.frame(wire.CONTINUATION, wire.END_HEADERS, 3, block[100:]))
        assert (wire.WINDOW_UPDATE, 0) in front.backend.kinds()  # the credit was written, outside the block

    run(pool, test)


def test_a_local_answer_never_lands_inside_the_backends_header_block(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, OTHER, end=True))
        front.handler.gate.clear()
        front.send(front.request(3, SEARCH, b"ours"))
        front.splice.from_backend(wire.frame(wire.HEADERS, 0, 1, RESPONSE[:5]))
        front.handler.gate.set()
        await settle(front)  # the answer to stream 3 is ready while the backend's block on stream 1 is open
        front.splice.from_backend(wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, RESPONSE[5:]))
        assert {1, 3} <= set(front.answers())

    run(pool, test)


# B: the SDK's connection credit is never held back without bound


@pytest.mark.parametrize("cancel", [False, True])
def test_b_request_bytes_of_searches_in_flight_are_credited_within_the_bound(
    pool: ThreadPoolExecutor, cancel: bool
) -> None:
    async def test(front: Front) -> None:
        front.handler.gate.clear()  # the reranks take their time: every search stays in flight
        size = 12000
        for stream in range(1, 24, 2):
            front.send(front.request(stream, SEARCH, b"ours" + b"q" * size))  # Front.send checks the SDK's window
            if cancel:
                front.send(wire.rst_stream(stream))
        assert front.sent - front.client.credits(0) <= DEBT_LIMIT  # 144 KB sent; all but the last 16 KiB credited

    run(pool, test)


# C: compressed searches are judged like any other


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
@pytest.mark.parametrize("size", [100, 3 * HOLD_LIMIT])
def test_c_a_compressed_search_is_decompressed_and_judged(pool: ThreadPoolExecutor, codec: str, size: int) -> None:
    async def test(front: Front) -> None:
        message = b"ours" + os.urandom(size)  # random bytes: the compressed body is as large as the message
        packed = gzip.compress(message) if codec == "gzip" else zlib.compress(message)
        body = b"\x01" + len(packed).to_bytes(4, "big") + packed
        front.send(front.headers(1, SEARCH, extra=[("grpc-encoding", codec)]))
        for at in range(0, len(body), 4096):
            end = wire.END_STREAM if at + 4096 >= len(body) else 0
            front.send(wire.frame(wire.DATA, end, 1, body[at : at + 4096]))
        await settle(front)
        assert front.handler.served == [message]
        assert front.answers()[1][-1] == {b"grpc-status": b"0"}

    run(pool, test)


def test_c_a_taken_over_search_in_an_unknown_encoding_gets_grpcs_own_answer(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        body = b"\x01" + (3 * HOLD_LIMIT).to_bytes(4, "big") + b"z" * (3 * HOLD_LIMIT)
        front.send(front.headers(1, SEARCH, extra=[("grpc-encoding", "snappy")]))
        for at in range(0, len(body), 8192):
            front.send(wire.frame(wire.DATA, wire.END_STREAM if at + 8192 >= len(body) else 0, 1, body[at : at + 8192]))
        await settle(front)
        trailers = front.answers()[1][-1]
        assert trailers[b"grpc-status"] == b"12" and b"snappy" in trailers[b"grpc-message"]
        assert front.handler.served == []

    run(pool, test)


# D: the front's header blocks fit the SDK's frame and header-list limits


def test_d_a_long_error_message_is_split_into_continuation_frames_and_cut(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(_setting(wire.SETTINGS_MAX_HEADER_LIST_SIZE, 6000))
        front.send(front.request(1, SEARCH, b"ours fail" + b"m" * 48000))
        await settle(front)
        frames = [(kind, raw) for kind, _, stream, raw in front.client.frames() if stream == 1]
        assert all(len(raw) - 9 <= wire.MAX_FRAME for _, raw in frames)
        trailers = front.answers()[1][-1]
        assert trailers[b"grpc-status"] == b"3" and 5000 < len(trailers[b"grpc-message"]) <= 6000 - 256

    run(pool, test)


def test_d_header_blocks_of_any_size_are_cut_to_the_frame_limit() -> None:
    block = os.urandom(40000)
    frames, rest = wire.cut(wire.header_block(7, wire.END_STREAM | wire.END_HEADERS, block))
    assert rest == b"" and [k for k, *_ in frames] == [wire.HEADERS, wire.CONTINUATION, wire.CONTINUATION]
    assert [f & wire.END_HEADERS for _, f, _, _ in frames] == [0, 0, wire.END_HEADERS]
    assert frames[0][1] & wire.END_STREAM and b"".join(raw[9:] for *_, raw in frames) == block


# E: the hold limits follow the backend's windows and are checked before a frame is held


def test_e_a_search_is_taken_over_before_the_sdk_waits_on_a_small_backend_window(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.splice.from_backend(_setting(wire.SETTINGS_INITIAL_WINDOW_SIZE, 4096))
        body = grpc_body(b"ours" + b"v" * 9000)
        front.send(front.headers(1, SEARCH))
        at, window = 0, 4096
        while at < len(body):  # an SDK that sends only what the stream window takes
            window += front.client.credits(1) - getattr(front, "_seen", 0)
            front._seen = front.client.credits(1)  # type: ignore[attr-defined]
            size = min(1000, window, len(body) - at)
            assert size > 0, "the SDK waits for a stream credit the backend cannot give"
            front.send(wire.frame(wire.DATA, wire.END_STREAM if at + size == len(body) else 0, 1, body[at : at + size]))
            at, window = at + size, window - size
        await settle(front)
        assert front.handler.served == [b"ours" + b"v" * 9000]

    run(pool, test)


def test_e_the_bytes_held_on_a_connection_never_pass_the_total(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        for stream in (1, 3, 5):
            front.send(front.headers(stream, SEARCH))
            front.send(wire.frame(wire.DATA, 0, stream, b"\0" * (HOLD_LIMIT - 1000)))
            assert front.splice.books.held <= HOLD_TOTAL
        assert front.splice._streams[5].state.value == "local"  # the third is taken over rather than held

    run(pool, test)


# F: request trailers end a held search, which is then judged


def test_f_request_trailers_end_a_held_search_and_it_is_judged(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, SEARCH) + wire.frame(wire.DATA, 0, 1, grpc_body(b"ours")))
        front.send(
            wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, front.encoder.encode([("x-t", "1")]))
        )
        await settle(front)
        assert front.handler.served == [b"ours"]
        assert (wire.DATA, 1) not in front.backend.kinds()

    run(pool, test)


# G: malformed input ends the connection with the right code, never an unhandled exception


def _expect(front: Front, data: bytes, code: int) -> None:
    with pytest.raises(wire.ProtocolError) as caught:
        front.splice.from_client(data)
    assert caught.value.code == code, str(caught.value)


MALFORMED = {
    "padded DATA without its pad length": (wire.frame(wire.DATA, wire.PADDED, 1, b""), wire.FRAME_SIZE_ERROR),
    "padding past the end": (wire.frame(wire.DATA, wire.PADDED, 1, b"\x05abc"), wire.PROTOCOL_ERROR),
    "padded HEADERS past the end": (
        wire.frame(wire.HEADERS, wire.PADDED | wire.END_HEADERS, 3, b"\x09x"),
        wire.PROTOCOL_ERROR,
    ),
    "CONTINUATION with no block": (wire.frame(wire.CONTINUATION, wire.END_HEADERS, 3, b"\x82"), wire.PROTOCOL_ERROR),
    "a frame inside a block": (
        wire.frame(wire.HEADERS, 0, 3, b"\x82") + wire.frame(wire.PING, 0, 0, b"8 bytes!"),
        wire.PROTOCOL_ERROR,
    ),
    "SETTINGS of a bad length": (wire.frame(wire.SETTINGS, 0, 0, b"12345"), wire.FRAME_SIZE_ERROR),
    "a window over 2^31-1": (_setting(wire.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31), wire.FLOW_CONTROL_ERROR),
    "a frame size under 16 KiB": (_setting(wire.SETTINGS_MAX_FRAME_SIZE, 100), wire.PROTOCOL_ERROR),
    "ENABLE_PUSH 2": (_setting(wire.SETTINGS_ENABLE_PUSH, 2), wire.PROTOCOL_ERROR),
    "SETTINGS on a stream": (wire.frame(wire.SETTINGS, 0, 1), wire.PROTOCOL_ERROR),
    "DATA on stream 0": (wire.frame(wire.DATA, 0, 0, b"x"), wire.PROTOCOL_ERROR),
    "a PING of 7 bytes": (wire.frame(wire.PING, 0, 0, b"7 bytes"), wire.FRAME_SIZE_ERROR),
    "a zero WINDOW_UPDATE": (wire.window_update(0, 0), wire.PROTOCOL_ERROR),
    "a frame over the frame size": (wire.frame(wire.DATA, 0, 1, b"x" * (wire.MAX_FRAME + 1)), wire.FRAME_SIZE_ERROR),
    "an even stream": (wire.frame(wire.HEADERS, wire.END_HEADERS, 2, b"\x82"), wire.PROTOCOL_ERROR),
    "an undecodable block": (
        wire.frame(wire.HEADERS, wire.END_HEADERS, 3, b"\xff\xff\xff\xff"),
        wire.COMPRESSION_ERROR,
    ),
    "PUSH_PROMISE from a client": (
        wire.frame(wire.PUSH_PROMISE, wire.END_HEADERS, 1, b"\0\0\0\x02"),
        wire.PROTOCOL_ERROR,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_g_malformed_input_is_a_protocol_error_with_the_rfcs_code(pool: ThreadPoolExecutor, case: str) -> None:
    async def test(front: Front) -> None:
        data, code = MALFORMED[case]
        _expect(front, data, code)

    run(pool, test)


def test_g_endless_continuation_is_refused_once_the_block_passes_its_bound(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(wire.frame(wire.HEADERS, 0, 1, b"\x82"))
        piece = wire.frame(wire.CONTINUATION, 0, 1, b"\x82" * wire.MAX_FRAME)
        for _ in range(MAX_BLOCK // wire.MAX_FRAME - 1):
            front.splice.from_client(piece)
        _expect(front, piece * 2, wire.ENHANCE_YOUR_CALM)
        assert front.backend.kinds() == [(wire.SETTINGS, 0)]  # nothing of the block reached the backend

    run(pool, test)


def test_g_frames_on_a_stream_the_front_answered_are_stream_closed(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.request(1, SEARCH, b"ours"))
        await settle(front)
        front.send(wire.window_update(1, 100) + wire.frame(wire.PRIORITY_FRAME, 0, 1, b"\0\0\0\0\x10"))  # legal
        _expect(front, wire.frame(wire.DATA, 0, 1, b"late"), wire.STREAM_CLOSED)

    run(pool, test)


def test_g_the_backends_malformed_frames_are_refused_too(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        with pytest.raises(wire.ProtocolError) as caught:
            front.splice.from_backend(wire.frame(wire.HEADERS, wire.PADDED | wire.END_HEADERS, 1, b""))
        assert caught.value.code == wire.FRAME_SIZE_ERROR

    run(pool, test)


def test_g_the_backend_keeps_a_larger_frame_size_until_the_sdks_smaller_one_is_acknowledged(
    pool: ThreadPoolExecutor,
) -> None:
    """Found by the front fuzz: the SDK lowered SETTINGS_MAX_FRAME_SIZE while the backend's answer, in frames the
    old size allowed, was on its way; the backend is held to the new size once it acknowledged it, not before."""

    async def test(front: Front) -> None:
        ack = wire.frame(wire.SETTINGS, wire.ACK, 0)
        front.send(_setting(wire.SETTINGS_MAX_FRAME_SIZE, 32768))
        front.splice.from_backend(ack * 2)  # the harness's preface SETTINGS, then these
        front.send(front.headers(1, OTHER, end=True))
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS, 1, RESPONSE))
        front.send(_setting(wire.SETTINGS_MAX_FRAME_SIZE, wire.MAX_FRAME))
        large = wire.frame(wire.DATA, 0, 1, b"x" * 20000)
        front.splice.from_backend(large)  # sent before the backend read the SDK's new SETTINGS
        assert front.client.data.endswith(large)
        front.splice.from_backend(ack)
        with pytest.raises(wire.ProtocolError) as caught:
            front.splice.from_backend(large)
        assert caught.value.code == wire.FRAME_SIZE_ERROR

    run(pool, test)


# H: the backend's GOAWAY lets the front's calls finish, and no stream is left hanging


def test_h_a_backend_goaway_lets_local_calls_finish_and_refuses_the_rest(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.handler.gate.clear()
        front.send(front.headers(1, OTHER, end=True))  # the backend processes this one
        front.send(front.request(3, SEARCH, b"ours"))  # answered by the front
        front.send(front.headers(5, OTHER, end=True))  # past the backend's last stream: never processed
        front.send(front.headers(7, SEARCH) + wire.frame(wire.DATA, 0, 7, grpc_body(b"ours 7")[:6]))  # held
        front.splice.from_backend(wire.goaway(1, wire.NO_ERROR, b"shutting down"))
        goaway = [raw for kind, _, _, raw in front.client.frames() if kind == wire.GOAWAY]
        assert [wire.goaway_fields(raw) for raw in goaway] == [(7, wire.NO_ERROR, b"shutting down")]
        assert (wire.RST_STREAM, 5) in front.client.kinds()
        reset = front.client.frames()[front.client.kinds().index((wire.RST_STREAM, 5))][3]
        assert int.from_bytes(reset[9:], "big") == wire.REFUSED_STREAM
        front.send(wire.frame(wire.DATA, wire.END_STREAM, 7, grpc_body(b"ours 7")[6:]))  # the held one, taken over
        front.send(front.headers(9, OTHER, end=True))  # a new stream after the GOAWAY
        assert (wire.RST_STREAM, 9) in front.client.kinds() and (wire.HEADERS, 9) not in front.backend.kinds()
        front.handler.gate.set()
        await settle(front)
        assert sorted(front.handler.served) == [b"ours", b"ours 7"]
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, RESPONSE))
        assert not front.splice.busy

    run(pool, test)


def test_h_when_the_backend_is_gone_its_calls_end_unavailable(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, OTHER, end=True))
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS, 1, RESPONSE))
        front.send(front.headers(3, OTHER, end=True))
        front.splice.backend_gone()
        answers = front.answers()
        assert answers[1][-1][b"grpc-status"] == b"14" and b":status" not in answers[1][-1]
        assert answers[3][-1][b"grpc-status"] == b"14" and answers[3][-1][b":status"] == b"200"
        assert not front.splice.busy and front.client.kinds()[-1] == (wire.GOAWAY, 0)

    run(pool, test)


# I: whether a header block changes the HPACK table, read from the block itself (no hpack internals)

fields = st.lists(
    st.tuples(st.sampled_from([":path", "x-a", "x-b", "authorization", "te"]), st.text(max_size=30)), max_size=6
)


@settings(max_examples=200, deadline=None)
@given(st.lists(fields, min_size=1, max_size=6), st.sampled_from([True, False]))
def test_i_changes_table_agrees_with_hpacks_decoder(blocks: list[list[tuple[str, str]]], huffman: bool) -> None:
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    for number, headers in enumerate(blocks):
        if number == 2:
            encoder.header_table_size = 256  # a dynamic table size update in the next block
        block = encoder.encode(headers, huffman=huffman)
        before = [*decoder.header_table.dynamic_entries], decoder.header_table.maxsize
        decoder.decode(block)
        after = [*decoder.header_table.dynamic_entries], decoder.header_table.maxsize
        # Never "unchanged" for a block that changed the table; "changed" may also be said of a block whose
        # additions evicted their way back to the same entries (forwarding it then is merely unneeded).
        assert wire.changes_table(block) or before == after


def test_i_changes_table_reads_each_kind_of_field() -> None:
    encoder = hpack.Encoder()
    assert wire.changes_table(encoder.encode([("x-a", "1")]))  # literal with incremental indexing
    assert not wire.changes_table(encoder.encode([("x-a", "1")]))  # now indexed
    assert not wire.changes_table(encoder.encode([hpack.NeverIndexedHeaderTuple("x-b", "2")]))
    ours = wire.encode_headers([(b"x-c", b"3" * 200)])
    assert ours[0] == 0x20 and not wire.changes_table(ours[1:])  # a size update to 0, then literals without indexing
    encoder.header_table_size = 100
    assert wire.changes_table(encoder.encode([("x-a", "1")]))  # a dynamic table size update first


def test_i_a_search_whose_block_indexes_nothing_is_withheld(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.request(1, SEARCH, b"theirs"))  # indexes its fields: the backend must see the block
        assert (wire.HEADERS, 1) in front.backend.kinds()
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, RESPONSE))
        front.send(front.request(3, SEARCH, b"ours"))  # the same fields, all indexed now: withheld, never sent
        await settle(front)
        assert (wire.HEADERS, 3) not in front.backend.kinds()

    run(pool, test)


def test_the_harness_settle_fails_on_a_hang(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.handler.gate.clear()
        front.send(front.request(1, SEARCH, b"ours"))
        with pytest.raises(AssertionError, match="unanswered"):
            await settle(front, limit=0.2)

    run(pool, test)


# Flow control downstream: the front's answers and the backend's frames share the SDK's windows


def test_answers_wait_for_the_sdks_stream_window(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(_setting(wire.SETTINGS_INITIAL_WINDOW_SIZE, 100))
        front.send(front.request(1, SEARCH, b"ours" + b"a" * 996))
        for _ in range(100):
            if front.answers().get(1):
                break
            await asyncio.sleep(0.01)
        assert sum(len(p) for p in front.answers()[1] if isinstance(p, bytes)) == 100
        front.send(wire.window_update(1, 2000))
        answer = front.answers()[1]
        assert b"".join(p for p in answer if isinstance(p, bytes)) == grpc_body(b"a" * 996 + b"sruo")
        assert answer[-1] == {b"grpc-status": b"0"}

    run(pool, test)


def test_a_larger_initial_window_counts_for_answers_once_the_sdk_has_the_ack(pool: ThreadPoolExecutor) -> None:
    """The SDK may count by its old SETTINGS_INITIAL_WINDOW_SIZE until it gets the ACK (RFC 9113 §6.5.3), which the
    backend sends: the rest of an answer waiting for its stream window goes after that ACK, not before."""

    async def test(front: Front) -> None:
        front.send(_setting(wire.SETTINGS_INITIAL_WINDOW_SIZE, 100))  # smaller: counted at once
        front.send(front.request(1, SEARCH, b"ours" + b"a" * 996))
        for _ in range(100):
            if front.answers().get(1):
                break
            await asyncio.sleep(0.01)
        assert sum(len(p) for p in front.answers()[1] if isinstance(p, bytes)) == 100
        front.send(_setting(wire.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20))
        assert sum(len(p) for p in front.answers()[1] if isinstance(p, bytes)) == 100
        ack = wire.frame(wire.SETTINGS, wire.ACK, 0)
        front.splice.from_backend(ack * 3)  # the harness's preface SETTINGS', the 100's, then the 1 MiB's
        kinds = front.client.kinds()
        acks = [i for i, (kind, _) in enumerate(kinds) if kind == wire.SETTINGS]
        assert (wire.DATA, 1) not in kinds[acks[0] : acks[2]]  # still 100 until the last ACK
        assert b"".join(p for p in front.answers()[1] if isinstance(p, bytes)) == grpc_body(b"a" * 996 + b"sruo")

    run(pool, test)


def test_a_backend_frame_that_would_overflow_the_sdks_real_window_waits(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(front.headers(1, OTHER, end=True))
        front.splice.from_backend(wire.frame(wire.HEADERS, wire.END_HEADERS, 1, RESPONSE))
        body = b"ours" + b"b" * 60000
        front.send(front.request(3, SEARCH, body, frame_size=8192))
        await settle(front)  # the front's answer took 60,009 bytes of the SDK's 65,535-byte window
        late = wire.frame(wire.DATA, 0, 1, b"x" * wire.MAX_FRAME)
        front.splice.from_backend(late)  # the backend thinks the whole window is free
        assert not front.client.data.endswith(late)
        front.send(wire.window_update(0, len(grpc_body(body))))  # the SDK credits the front's answer
        assert front.client.data.endswith(late) and front.backend.credits(0) == 0  # that credit was the front's
        front.send(wire.window_update(0, wire.MAX_FRAME))
        assert front.backend.credits(0) == wire.MAX_FRAME  # and this one the backend's

    run(pool, test)


def test_an_sdk_that_announced_no_header_table_decodes_the_fronts_first_block(pool: ThreadPoolExecutor) -> None:
    async def test(front: Front) -> None:
        front.send(_setting(wire.SETTINGS_HEADER_TABLE_SIZE, 0))
        front.send(front.request(1, SEARCH, b"ours"))
        await settle(front)
        decoder = hpack.Decoder()
        decoder.max_allowed_table_size = 0  # as h2 sets it once the backend acknowledged the SDK's SETTINGS
        blocks = [raw[9:] for kind, _, stream, raw in front.client.frames() if kind == wire.HEADERS and stream == 1]
        assert [dict(decoder.decode(block, raw=True)).get(b"grpc-status") for block in blocks] == [None, b"0"]

    run(pool, test)
