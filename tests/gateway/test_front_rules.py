"""The splicing front on real sockets: a client that breaks HTTP/2 gets a GOAWAY naming the error and the gateway
serves on; a backend that drops connection attempts is given up on (J); a backend that goes away lets the calls
the front answers finish and ends the others with a status instead of a hang (H)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymilvus
import pytest

from tests.conftest import CORPUS, create_docs_collection, rerank_function
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway import h2wire as wire
from vllm_ranker.gateway.front import Front
from vllm_ranker.testing import RerankServer, milvus_lite_server


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_g_a_client_that_breaks_http2_gets_a_goaway_with_the_code_and_the_gateway_serves_on(
    gateway: Gateway, plain: pymilvus.MilvusClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vllm_ranker.gateway")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0) + wire.frame(wire.DATA, wire.PADDED, 1, b""))
        frames, _ = wire.cut(_read_all(sock))
    goaways = [wire.goaway_fields(raw) for kind, _, _, raw in frames if kind == wire.GOAWAY]
    assert [code for _, code, _ in goaways] == [wire.FRAME_SIZE_ERROR]
    logged = [r for r in caplog.records if "closing a connection" in r.getMessage()]
    assert len(logged) == 1 and "pad length" in logged[0].getMessage()
    assert "docs" in plain.list_collections()


class _Recorder:
    """A TCP server that keeps what it receives (stands for the gateway's gRPC server in the fallback)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            with conn:
                while chunk := conn.recv(65536):
                    self.received += chunk


@contextlib.contextmanager
def _black_hole() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops every further SYN, as a firewall would."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def test_j_a_backend_that_drops_connection_attempts_is_given_up_after_the_connect_timeout() -> None:
    recorder = _Recorder()
    with _black_hole() as hole, ThreadPoolExecutor(1) as pool:
        handler: Any = None  # no call is spliced: the backend is never reached
        front = Front(("127.0.0.1", 0), ("127.0.0.1", hole), recorder.port, handler, pool, connect_timeout=0.3)
        port = front.start()
        try:
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"to the fallback")
                while recorder.received != b"to the fallback" and time.monotonic() - started < 20:
                    time.sleep(0.05)
            assert recorder.received == b"to the fallback"
            assert time.monotonic() - started < 10  # the kernel alone would retry SYNs for about two minutes
        finally:
            front.stop(0)
            recorder.listener.close()


def test_h_a_reranked_search_in_flight_finishes_when_the_backend_goes(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        slow = stack.enter_context(RerankServer(request_latency=2.0))
        backend = stack.enter_context(contextlib.ExitStack())
        uri = backend.enter_context(milvus_lite_server(tmp_path))
        gw = stack.enter_context(Gateway(uri, port=0, grace=2.0))
        client = pymilvus.MilvusClient(uri=gw.uri)
        stack.callback(client.close)
        create_docs_collection(client, "docs", slow.endpoint, CORPUS)
        client.load_collection("docs")
        slow.reset()
        found: list[tuple[Any, float]] = []

        def search_through_the_gateway() -> None:
            hits = client.search(
                "docs",
                data=["machine learning"],
                anns_field="sparse_vector",
                limit=3,
                output_fields=["document"],
                ranker=rerank_function(slow.endpoint, ["machine learning"]),
                timeout=30,
            )
            found.append((hits, time.monotonic()))

        search = threading.Thread(target=search_through_the_gateway)
        search.start()
        while not slow.bodies():  # the first stage is done and the rerank has started: now the backend goes
            time.sleep(0.05)
        backend.close()
        gone = time.monotonic()
        search.join(30)
        assert len(found) == 1 and len(found[0][0][0]) >= 1
        assert found[0][1] > gone  # answered by the front after its backend went
        with pytest.raises(pymilvus.MilvusException):
            client.list_collections(timeout=10)  # a status, not a hang
