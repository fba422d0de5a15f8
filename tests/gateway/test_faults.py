"""Faults: the backend dies, the rerank service is down or slow, a caller gives up, 64 searches at once; the
gateway answers clean Milvus errors, never hangs, and leaves no threads or connections behind."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pymilvus
import pytest
from pymilvus import DataType
from pymilvus.client.prepare import Prepare

from tests.conftest import rerank_function
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer

WORDS = ["AI research", "energy progress", "dogs and cats", "Python language", "solar wind power", "deep learning"]


def small_collection(client: pymilvus.MilvusClient, name: str = "small") -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    schema.add_field("document", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, [{"id": i, "v": [float(i), 1.0], "document": w} for i, w in enumerate(WORDS * 4)])
    client.flush(name)
    client.load_collection(name)


def search(client: pymilvus.MilvusClient, endpoint: str, query: str = "AI research", **params: Any) -> Any:
    return client.search(
        "small",
        data=[[1.0, 1.0]],
        limit=8,
        output_fields=["document"],
        ranker=rerank_function(endpoint, [query], **params),
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def killable_backend(gw_backend: str) -> Iterator[tuple[str, Any]]:
    """A Milvus-protocol backend this test may kill: a second gateway in front of the session's milvus-lite
    (starting another milvus-lite costs ~10 s of the tier's budget); yields (uri, stop)."""
    inner = Gateway(gw_backend, port=0).start()
    yield inner.uri, lambda: inner.stop(0)
    inner.stop(0)


def test_slow_service_hits_the_timeout_param(plain: pymilvus.MilvusClient, ours: MilvusClient) -> None:
    with RerankServer(request_latency=3.0) as slow:
        small_collection(plain, "small") if not plain.has_collection("small") else None
        started = time.monotonic()
        with pytest.raises(pymilvus.MilvusException) as caught:
            search(plain, slow.endpoint, timeout=0.5, max_retries=0)
        assert time.monotonic() - started < 2.5
        assert caught.value.message.startswith("call service failed")
        with pytest.raises(pymilvus.MilvusException) as reference:
            search(ours, slow.endpoint, timeout=0.5, max_retries=0)
        assert caught.value.message == reference.value.message


def test_caller_deadline_bounds_the_rerank(plain: pymilvus.MilvusClient) -> None:
    """A caller that gives up (its deadline) gets DEADLINE_EXCEEDED, and the gateway stops its HTTP calls."""
    with RerankServer(request_latency=1.0) as slow:
        small_collection(plain, "small") if not plain.has_collection("small") else None
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:  # pymilvus lets DEADLINE_EXCEEDED out as it is
            plain.search(
                "small", data=[[1.0, 1.0]], limit=8, ranker=rerank_function(slow.endpoint, ["AI"]), timeout=0.3
            )
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.0
        assert len(search(plain, slow.endpoint, max_retries=0)[0]) == 8  # the gateway serves on


class SilentService:
    """A TCP service that reads requests and never answers; ``hung_up`` is set when the client closes its
    connection (what a rerank service sees when the gateway stops a request)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.received = threading.Event()
        self.hung_up = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            connection, _ = self._listener.accept()
            with connection:
                while chunk := connection.recv(65536):
                    if b"\r\n\r\n" in chunk:
                        self.received.set()
                self.hung_up.set()

    def close(self) -> None:
        self._listener.close()


def test_a_cancelled_call_stops_the_rerank_request_and_leaves_the_gateway_serving(
    gateway: Gateway, plain: pymilvus.MilvusClient
) -> None:
    """No deadline on the call, a rerank timeout of 60 s: only the caller's cancel can end the request early."""
    small_collection(plain, "small") if not plain.has_collection("small") else None
    silent = SilentService()
    try:
        request = Prepare.search_requests_with_expr(
            "small",
            "v",
            {"metric_type": "L2", "params": {}},
            8,
            data=[[1.0, 1.0]],
            output_fields=["document"],
            ranker=rerank_function(silent.endpoint, ["AI"], timeout=60, max_retries=0),
        )
        with grpc.insecure_channel(gateway.uri.removeprefix("http://")) as channel:
            call = channel.unary_unary("/milvus.proto.milvus.MilvusService/Search")
            future = call.future(request.SerializeToString())
            assert silent.received.wait(10), "the gateway never sent the rerank request"
            assert future.cancel()
            assert future.cancelled()
            # Without the cancel the request lives until the 60 s rerank timeout: 5 s is a correctness bound.
            assert silent.hung_up.wait(5), "the rerank request outlived its caller"
    finally:
        silent.close()
    with RerankServer() as service:
        assert len(search(plain, service.endpoint)[0]) == 8  # the gateway serves on


def test_64_concurrent_searches_from_several_clients_and_nothing_leaks(gw_backend: str) -> None:
    uri = gw_backend
    server = RerankServer(request_latency=0.05).start()  # a little service time, so that calls overlap
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = open_fds()
    with Gateway(uri, port=0, workers=64) as gw:
        clients = [pymilvus.MilvusClient(uri=gw.uri) for _ in range(4)]
        reference = MilvusClient(uri=uri)
        try:
            if not clients[0].has_collection("small"):
                small_collection(clients[0])
            want = {q: [(h["id"], h["distance"]) for h in search(reference, server.endpoint, q)[0]] for q in WORDS}
            jobs = [(clients[i % 4], WORDS[i % len(WORDS)]) for i in range(64)]
            with ThreadPoolExecutor(64) as pool:
                got = list(pool.map(lambda job: (job[1], search(job[0], server.endpoint, job[1])), jobs))
            assert all([(h["id"], h["distance"]) for h in res[0]] == want[q] for q, res in got)
            assert server.max_in_flight > 1  # the searches really overlapped
        finally:
            for client in clients:
                client.close()
            reference.close()
            server.stop()
    deadline = time.monotonic() + 10
    while True:
        extra = [t.name for t in threading.enumerate() if t.ident not in threads_before]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert extra == []
    assert open_fds() <= fds_before + 2  # closed: gateway channels, HTTP pools, listening socket


def test_backend_killed_mid_run_gives_a_clean_unavailable_error(
    killable_backend: tuple[str, Any], server: RerankServer
) -> None:
    uri, stop = killable_backend
    with Gateway(uri, port=0) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        try:
            if not client.has_collection("small"):
                small_collection(client)
            assert len(search(client, server.endpoint)[0]) == 8
            stop()
            calls: list[Callable[[], Any]] = [
                lambda: search(client, server.endpoint),
                lambda: client.search("small", data=[[1.0, 1.0]], limit=3),
                lambda: client.has_collection("small"),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(pymilvus.MilvusException) as caught:
                    call()
                assert time.monotonic() - started < 10
                assert "unavailable" in caught.value.message and uri in caught.value.message
        finally:
            client.close()
