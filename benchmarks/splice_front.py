"""A measuring prototype of the gateway's splicing front (docs/gateway.md, "What the hop costs"): the passthrough
path of that design and nothing else, so its cost can be measured before it is built.

Each SDK connection is spliced to one backend connection. Frames are cut at their 9-byte headers in both directions;
the SDK's request headers are HPACK-decoded (one decoder per connection, mirroring the SDK's encoder) to find each
call's method; Search/HybridSearch request bytes are held until the request ends and parsed to look for a
``function_score``, then forwarded untouched (a real front would answer the model-ranker ones itself); the SDK's
SETTINGS are rewritten so the backend encodes its headers without a dynamic table (what would let a front drop the
backend's frames of a call it cancelled). Everything else is copied as it came.

``gateway.py`` measures it beside the gateway's own front (front.py), as a floor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hpack
from common import serve_tcp_hop
from pymilvus.grpc_gen import milvus_pb2

from vllm_ranker.gateway.h2wire import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    SETTINGS,
    block_fragment,
    cut,
    frame,
    without_header_table,
)

SEARCHES = {
    b"/milvus.proto.milvus.MilvusService/Search": milvus_pb2.SearchRequest,
    b"/milvus.proto.milvus.MilvusService/HybridSearch": milvus_pb2.HybridSearchRequest,
}
# What the front saw, for the benchmark to check that it did route: calls whose headers it decoded, searches it held
# and parsed, calls the backend ended.
TALLY = {"calls": 0, "searches parsed": 0, "calls ended": 0}


class _Upstream:
    """SDK -> backend: frames cut, request headers decoded, searches held until their request ends."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.buffer = b""
        self.preface_seen = False
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 24  # the backend, not the front, bounds the SDK's table
        self.block: dict[int, bytes] = {}  # header block fragments until END_HEADERS
        self.held: dict[int, list[bytes]] = {}  # stream -> the frames of a search request, held
        self.kinds: dict[int, Any] = {}

    def feed(self, data: bytes) -> None:
        self.buffer += data
        out: list[bytes] = []
        if not self.preface_seen:
            if len(self.buffer) < len(PREFACE):
                return
            out.append(self.buffer[: len(PREFACE)])
            self.buffer = self.buffer[len(PREFACE) :]
            self.preface_seen = True
        frames, self.buffer = cut(self.buffer)
        for kind, flags, stream, raw in frames:
            if kind == SETTINGS and not flags & ACK:
                raw = frame(SETTINGS, flags, 0, without_header_table(raw[9:]))
            elif kind in (HEADERS, CONTINUATION):
                self._headers(kind, flags, stream, raw[9:])
            elif kind == DATA and stream in self.held:
                self.held[stream].append(raw)
                if flags & END_STREAM:
                    out.extend(self._judge(stream))
                continue
            out.append(raw)
        if out:
            self.writer.write(b"".join(out))

    def _headers(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == HEADERS:
            payload = block_fragment(flags, payload)
        fragment = self.block.pop(stream, b"") + payload
        if not flags & END_HEADERS:
            self.block[stream] = fragment
            return
        for name, value in self.decoder.decode(fragment, raw=True):
            if name == b":path":
                TALLY["calls"] += 1
                if value in SEARCHES:
                    self.held[stream] = []
                    self.kinds[stream] = SEARCHES[value]
                break

    def _judge(self, stream: int) -> list[bytes]:
        frames = self.held.pop(stream)
        message = b"".join(raw[9:] for raw in frames)  # unpadded DATA from the SDKs
        request = self.kinds.pop(stream).FromString(message[5:])
        request.HasField("function_score")  # a real front answers the model-ranker ones itself
        TALLY["searches parsed"] += 1
        return frames


def serve(conn: Any, backend: str) -> None:
    """The front in this process, for ``common.own_process``: sends its URI, answers "tally" with ``TALLY``."""

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        front = _Upstream(writer)
        try:
            while data := await reader.read(65536):
                front.feed(data)
        finally:
            writer.close()

    async def downstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Backend -> SDK: copied as it came, cut at frames to see where calls end (a front's bookkeeping)."""
        pending = b""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                frames, pending = cut(pending + data)
                TALLY["calls ended"] += sum(1 for kind, flags, *_ in frames if kind == HEADERS and flags & END_STREAM)
        finally:
            writer.close()

    serve_tcp_hop(conn, backend, upstream, downstream, commands=lambda _: dict(TALLY))
