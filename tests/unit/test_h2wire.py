"""The splicing front's wire pieces, checked against the h2 project's own HPACK decoder."""

from __future__ import annotations

import gzip

import grpc
import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllm_ranker.gateway import grpc_wire
from vllm_ranker.gateway import h2wire as wire

names = st.binary(min_size=1, max_size=300).filter(lambda b: not b.startswith(b":"))


@given(st.lists(st.tuples(names, st.binary(max_size=400)), max_size=8))
def test_encoded_headers_decode_to_themselves_and_leave_the_table_empty(headers: list[tuple[bytes, bytes]]) -> None:
    decoder = hpack.Decoder()
    block = wire.encode_headers([(b":status", b"200"), *headers])
    assert decoder.decode(block, raw=True) == [(b":status", b"200"), *headers]
    assert len(decoder.header_table.dynamic_entries) == 0


def test_frames_are_cut_whole_and_the_rest_kept() -> None:
    first = wire.frame(wire.HEADERS, wire.END_HEADERS, 3, b"abc")
    second = wire.window_update(0, 70000)
    frames, rest = wire.cut(first + second[:5])
    assert frames == [(wire.HEADERS, wire.END_HEADERS, 3, first)] and rest == second[:5]
    frames, rest = wire.cut(rest + second[5:])
    assert frames == [(wire.WINDOW_UPDATE, 0, 0, second)] and rest == b""
    assert int.from_bytes(second[9:], "big") == 70000


def test_settings_lose_the_header_table_and_keep_the_rest() -> None:
    payload = (wire.SETTINGS_INITIAL_WINDOW_SIZE).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")
    payload += (wire.SETTINGS_HEADER_TABLE_SIZE).to_bytes(2, "big") + (4096).to_bytes(4, "big")
    assert wire.settings(wire.without_header_table(payload)) == [
        (wire.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),
        (wire.SETTINGS_HEADER_TABLE_SIZE, 0),
    ]


def test_padding_and_priority_are_removed() -> None:
    padded = bytes([2]) + b"data" + b"\0\0"
    assert wire.data_of(wire.PADDED, padded) == b"data"
    assert wire.block_fragment(wire.PADDED | wire.PRIORITY, bytes([1]) + b"12345" + b"block" + b"\0") == b"block"


@pytest.mark.parametrize(
    ("value", "seconds"), [(b"250m", 0.25), (b"3S", 3.0), (b"2M", 120.0), (b"1H", 3600.0), (b"5x", None), (b"m", None)]
)
def test_grpc_timeout(value: bytes, seconds: float | None) -> None:
    assert grpc_wire.grpc_timeout(value) == seconds


def test_grpc_message_is_percent_encoded() -> None:
    assert grpc_wire.grpc_message("50% off: café") == b"50%25 off: caf%C3%A9"


def test_only_one_message_is_read_and_compressed_ones_are_decompressed() -> None:
    assert grpc_wire.grpc_payload(grpc_wire.grpc_body(b"hello")) == b"hello"
    packed = gzip.compress(b"hello")
    assert grpc_wire.grpc_payload(b"\x01" + len(packed).to_bytes(4, "big") + packed, b"gzip") == b"hello"
    with pytest.raises(grpc_wire.MessageError, match="snappy") as caught:
        grpc_wire.grpc_payload(b"\x01" + grpc_wire.grpc_body(b"hello")[1:], b"snappy")
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    for bad in (grpc_wire.grpc_body(b"hello") + b"more", b"\x00\x00", b"\x01" + grpc_wire.grpc_body(b"not gzip")[1:]):
        with pytest.raises(grpc_wire.MessageError):
            grpc_wire.grpc_payload(bad, b"gzip")


def test_a_decompression_bomb_is_refused_at_milvuss_message_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_wire, "MAX_MESSAGE", 1 << 20)
    packed = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(grpc_wire.MessageError) as caught:
        grpc_wire.grpc_payload(b"\x01" + len(packed).to_bytes(4, "big") + packed, b"gzip")
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
