"""The splicing front (front.py, splice.py): what it does beyond copying frames. A search too large to hold is
taken over whole and still answered right, a connection that is not HTTP/2 is closed without harm, and the gRPC
server alone (``splice=False``) answers exactly as the front does."""

from __future__ import annotations

import socket

import pymilvus
import pytest

from tests.conftest import rerank_function
from tests.gateway.test_pymilvus import QUERIES, both, rows
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.ledger import HOLD_LIMIT
from vllm_ranker.testing import RerankServer

# A filter listing many ids: the request then outgrows what the front holds (HOLD_LIMIT) before it ends.
LARGE_FILTER = "id in [" + ", ".join(str(i) for i in range(6000)) + "]"


def test_the_default_gateway_serves_through_the_front(gateway: Gateway) -> None:
    assert gateway._front is not None


@pytest.mark.parametrize("reranked", [True, False])
def test_a_search_larger_than_the_hold_limit_is_taken_over_and_answered_right(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, reranked: bool
) -> None:
    assert len(LARGE_FILTER) > 2 * HOLD_LIMIT
    ranker = {"ranker": rerank_function(server.endpoint, QUERIES)} if reranked else {}
    res = both(
        plain,
        ours,
        "search",
        "docs",
        data=QUERIES,
        anns_field="sparse_vector",
        filter=LARGE_FILTER,
        limit=4,
        output_fields=["document"],
        **ranker,
    )
    assert [len(hits) for hits in res] == [4, 4]


def test_a_connection_that_is_not_http2_is_closed_and_the_gateway_serves_on(
    gateway: Gateway, plain: pymilvus.MilvusClient
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while sock.recv(65536):  # the backend's SETTINGS may come first; then the end, not a hang (timeout)
            pass
    assert "docs" in plain.list_collections()


def test_without_the_front_the_grpc_server_answers_alike(
    gw_backend: str, plain: pymilvus.MilvusClient, server: RerankServer
) -> None:
    fn = rerank_function(server.endpoint, QUERIES)
    kwargs = {"data": QUERIES, "anns_field": "sparse_vector", "limit": 5, "output_fields": ["document"], "ranker": fn}
    with Gateway(gw_backend, port=0, splice=False) as gw:
        assert gw._front is None
        client = pymilvus.MilvusClient(uri=gw.uri)
        try:
            assert rows(client.search("docs", **kwargs)) == rows(plain.search("docs", **kwargs))
        finally:
            client.close()
