"""A measuring prototype of the gateway's splicing front (docs/gateway.md, "What the hop costs"): the passthrough
path of that design and nothing else, so its cost can be measured before it is built.

Each SDK connection is spliced to one backend connection. Frames are cut at their 9-byte headers in both directions;
the SDK's request headers are HPACK-decoded (one decoder per connection, mirroring the SDK's encoder) to find each
call's method; Search/HybridSearch request bytes are held until the request ends and parsed to look for a
``function_score``, then forwarded untouched (a real front would answer the model-ranker ones itself); the SDK's
SETTINGS are rewritten so the backend encodes its headers without a dynamic table (what would let a front drop the
backend's frames of a call it cancelled). Everything else is copied as it came.

Needs ``hpack`` (``pip install hpack``); ``gateway.py`` measures this front beside the others when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

import hpack  # type: ignore[import-not-found, unused-ignore]
from pymilvus.grpc_gen import milvus_pb2

SEARCHES = {
    b"/milvus.proto.milvus.MilvusService/Search": milvus_pb2.SearchRequest,
    b"/milvus.proto.milvus.MilvusService/HybridSearch": milvus_pb2.HybridSearchRequest,
}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, CONTINUATION = 0x0, 0x1, 0x4, 0x9
END_STREAM, END_HEADERS, PADDED, PRIORITY, ACK = 0x1, 0x4, 0x8, 0x20, 0x1
HEADER_TABLE_SIZE = 0x1


def _no_dynamic_table(payload: bytes) -> bytes:
    """The SDK's SETTINGS with SETTINGS_HEADER_TABLE_SIZE set to 0 (appended when absent)."""
    entries = [struct.unpack_from(">HI", payload, i) for i in range(0, len(payload), 6)]
    entries = [(key, value) for key, value in entries if key != HEADER_TABLE_SIZE] + [(HEADER_TABLE_SIZE, 0)]
    return b"".join(struct.pack(">HI", key, value) for key, value in entries)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload


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
        self.routed = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        out: list[bytes] = []
        if not self.preface_seen:
            if len(self.buffer) < len(PREFACE):
                return
            out.append(self.buffer[: len(PREFACE)])
            self.buffer = self.buffer[len(PREFACE) :]
            self.preface_seen = True
        view, at = self.buffer, 0
        while len(view) - at >= 9:
            length = int.from_bytes(view[at : at + 3], "big")
            end = at + 9 + length
            if end > len(view):
                break
            kind, flags = view[at + 3], view[at + 4]
            stream = int.from_bytes(view[at + 5 : at + 9], "big") & 0x7FFFFFFF
            frame = view[at:end]
            at = end
            if kind == SETTINGS and not flags & ACK:
                frame = _frame(SETTINGS, flags, 0, _no_dynamic_table(frame[9:]))
            elif kind in (HEADERS, CONTINUATION):
                self._headers(kind, flags, stream, frame[9:])
            elif kind == DATA and stream in self.held:
                self.held[stream].append(frame)
                if flags & END_STREAM:
                    out.extend(self._judge(stream))
                continue
            out.append(frame)
        self.buffer = view[at:]
        if out:
            self.writer.write(b"".join(out))

    def _headers(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == HEADERS:
            start, stop = 0, len(payload)
            if flags & PADDED:
                start, stop = 1, len(payload) - payload[0]
            if flags & PRIORITY:
                start += 5
            payload = payload[start:stop]
        fragment = self.block.pop(stream, b"") + payload
        if not flags & END_HEADERS:
            self.block[stream] = fragment
            return
        for name, value in self.decoder.decode(fragment, raw=True):
            if name == b":path":
                self.routed += 1
                if value in SEARCHES:
                    self.held[stream] = []
                    self.kinds[stream] = SEARCHES[value]
                break

    def _judge(self, stream: int) -> list[bytes]:
        frames = self.held.pop(stream)
        message = b"".join(frame[9:] for frame in frames)  # unpadded DATA from the SDKs
        request = self.kinds.pop(stream).FromString(message[5:])
        request.HasField("function_score")  # a real front answers the model-ranker ones itself
        return frames


def serve(conn: Any, backend: str) -> None:
    """The front in this process, for ``common.own_process``: sends its URI, stops when told."""
    host, port = backend.removeprefix("http://").rsplit(":", 1)

    async def downstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Backend -> SDK: copied as it came, cut at frame headers to see where calls end (a front's metrics)."""
        pending, ended = b"", 0
        try:
            while data := await reader.read(65536):
                writer.write(data)
                view, at = pending + data, 0
                while len(view) - at >= 9:
                    end = at + 9 + int.from_bytes(view[at : at + 3], "big")
                    if end > len(view):
                        break
                    if view[at + 3] == HEADERS and view[at + 4] & END_STREAM:
                        ended += 1
                    at = end
                pending = view[at:]
        finally:
            writer.close()

    async def upstream(reader: asyncio.StreamReader, front: _Upstream) -> None:
        try:
            while data := await reader.read(65536):
                front.feed(data)
        finally:
            front.writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend_reader, backend_writer = await asyncio.open_connection(host, int(port))
        for writer in (client_writer, backend_writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(asyncio.CancelledError):  # stopped with the process: no traceback for that
            await asyncio.gather(
                upstream(client_reader, _Upstream(backend_writer)),
                downstream(backend_reader, client_writer),
                return_exceptions=True,
            )

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        conn.send(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until the parent says stop
        server.close()

    asyncio.run(main())
