"""The splicing front (front.py, splice.py): what it does beyond copying frames. A search too large to hold is
taken over whole and still answered right, a connection that is not HTTP/2 is closed without harm, and the gRPC
server alone (``splice=False``) answers exactly as the front does.

Which path served a call is read from the backend's side: a ``RecordingBackend`` in front of the session's Milvus
Lite notes the connection each call came on. A call the front relays comes on the backend connection of the SDK's
own connection; a call the gateway's handler served (a reranked search's first stage, a search the front took
over, everything without the front) comes on the gateway's one backend channel."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pymilvus
import pytest
from pymilvus.grpc_gen import milvus_pb2

from tests.conftest import rerank_function, rerank_requests
from tests.gateway.recording_backend import RecordingBackend
from tests.gateway.test_pymilvus import QUERIES, rows
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.audit import AUDIT_LOGGER
from vllm_ranker.gateway.ledger import HOLD_LIMIT
from vllm_ranker.testing import RerankServer

# A filter listing many ids: a request of ~77 KB, in 16 KiB frames behind a grpc-go backend (a Milvus server; the
# recording backend's windows), outgrows what the front holds (HOLD_LIMIT) in its first frame, and the backend's
# 64 KiB stream window too: a front that held it instead of taking it over would wait for credit that never comes.
LARGE_FILTER = "id in [" + ", ".join(str(i) for i in range(12000)) + "]"
SHOW_COLLECTIONS = "/milvus.proto.milvus.MilvusService/ShowCollections"


@pytest.fixture(scope="module")
def fronted(recorded: RecordingBackend) -> Iterator[Gateway]:
    """A gateway with its front (the default), in front of the recording backend."""
    with Gateway(recorded.uri, port=0, grace=1.0) as gw:
        yield gw


def gateway_channel(client: pymilvus.MilvusClient, backend: RecordingBackend, endpoint: str) -> str:
    """The connection the gateway's own backend channel comes on: a reranked search's first stage is sent by the
    gateway's handler, whatever the path."""
    backend.seen.clear()
    client.search("docs", data=["AI"], anns_field="sparse_vector", limit=2, ranker=rerank_function(endpoint))
    (first_stage,) = backend.calls("Search")
    return first_stage.peer


def show_collections(uri: str) -> None:
    """One ShowCollections on a new SDK connection (pymilvus shares one connection between clients of a URI, and
    gRPC channels share one unless told otherwise)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(uri.removeprefix("http://"), options=options) as channel:
        request = milvus_pb2.ShowCollectionsRequest().SerializeToString()
        answer = milvus_pb2.ShowCollectionsResponse.FromString(
            channel.unary_unary(SHOW_COLLECTIONS)(request, timeout=10)
        )
        assert "docs" in answer.collection_names


def test_the_default_gateway_relays_each_sdk_connection_on_a_backend_connection_of_its_own(
    fronted: Gateway, recorded: RecordingBackend, server: RerankServer
) -> None:
    client = pymilvus.MilvusClient(uri=fronted.uri)
    try:
        channel = gateway_channel(client, recorded, server.endpoint)
    finally:
        client.close()
    recorded.seen.clear()
    show_collections(fronted.uri)
    show_collections(fronted.uri)
    peers = [seen.peer for seen in recorded.calls("ShowCollections")]
    # Spliced: one backend connection per SDK connection, neither the gateway's channel (the gRPC server alone
    # sends every call on that channel: see the last test).
    assert len(peers) == 2 and len(set(peers)) == 2 and channel not in peers


@pytest.mark.parametrize("reranked", [True, False])
def test_a_search_larger_than_the_hold_limit_is_taken_over_and_answered_right(
    fronted: Gateway,
    recorded: RecordingBackend,
    ours: MilvusClient,
    server: RerankServer,
    reranked: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert len(LARGE_FILTER) > 65535 > HOLD_LIMIT
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    client = pymilvus.MilvusClient(uri=fronted.uri)
    try:
        channel = gateway_channel(client, recorded, server.endpoint)
        server.reset()
        recorded.seen.clear()
        caplog.clear()
        ranker: dict[str, Any] = {"ranker": rerank_function(server.endpoint, QUERIES)} if reranked else {}
        kwargs: dict[str, Any] = dict(
            data=QUERIES, anns_field="sparse_vector", filter=LARGE_FILTER, limit=4, output_fields=["document"]
        )
        got = client.search("docs", **kwargs, **ranker, timeout=30)  # a stalled request fails, not hangs
    finally:
        client.close()
    # Taken over: the gateway's handler received the request and sent the backend its search on the gateway's own
    # channel; released, the backend would have received it on the SDK's spliced connection (and refused the vllm
    # ranker: Milvus Lite serves none).
    (search,) = recorded.calls("Search")
    assert search.peer == channel
    audited = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    if reranked:  # the gateway reranked it: the stand-in scored the hits, the audit line says so
        assert len(rerank_requests(server)) >= 1 and len(audited) == 1 and " outcome=ok " in audited[0]
    else:
        assert rerank_requests(server) == [] and audited == []
    # And answered right: as the Python client answers the same search on the backend itself.
    assert rows(got) == rows(ours.search("docs", **kwargs, **ranker))
    assert [len(hits) for hits in got] == [4, 4]


def test_a_connection_that_is_not_http2_is_closed_and_the_gateway_serves_on(
    gateway: Gateway, plain: pymilvus.MilvusClient
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while sock.recv(65536):  # the backend's SETTINGS may come first; then the end, not a hang (timeout)
            pass
    assert "docs" in plain.list_collections()


def test_without_the_front_the_grpc_server_answers_alike(
    recorded: RecordingBackend, plain: pymilvus.MilvusClient, server: RerankServer
) -> None:
    fn = rerank_function(server.endpoint, QUERIES)
    kwargs = {"data": QUERIES, "anns_field": "sparse_vector", "limit": 5, "output_fields": ["document"], "ranker": fn}
    with Gateway(recorded.uri, port=0, grace=1.0, splice=False) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        try:
            assert rows(client.search("docs", **kwargs)) == rows(plain.search("docs", **kwargs))
            channel = gateway_channel(client, recorded, server.endpoint)
        finally:
            client.close()
        recorded.seen.clear()
        show_collections(gw.uri)
        show_collections(gw.uri)
    # No front: every call, from every SDK connection, is the gRPC server's and comes on the gateway's channel.
    assert [seen.peer for seen in recorded.calls("ShowCollections")] == [channel, channel]
