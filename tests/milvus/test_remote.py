"""The remote path: a Milvus server URI (``milvus-lite server`` on loopback speaks a cluster's gRPC protocol;
the ``milvus_server`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus import Function, FunctionType

from tests.conftest import CORPUS, create_docs_collection, rerank_function, rerank_requests
from vllm_ranker import AnnSearchRequest, MilvusClient
from vllm_ranker.testing import RerankServer, overlap_score


@pytest.fixture(scope="session")
def remote(milvus_server: str, server: RerankServer) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=milvus_server)
    create_docs_collection(client, "docs", server.endpoint, CORPUS)
    client.load_collection("docs")
    yield client
    client.close()


def test_seed_snippets_on_a_server_uri(remote: MilvusClient, server: RerankServer) -> None:
    queries = ["AI Research Progress", "What is AI"]
    fn = rerank_function(server.endpoint, queries, maxBatch=3)
    res = remote.search(
        "docs", data=queries, anns_field="sparse_vector", limit=5, output_fields=["document"], ranker=fn
    )
    for q, query in enumerate(queries):
        got = [(h["id"], h["distance"]) for h in res[q]]
        scores = {pk: d for pk, d in got}
        assert [pk for pk, _ in got] == sorted(scores, key=lambda pk: (-scores[pk], pk))
        assert all(abs(d - overlap_score(query, CORPUS[pk])) < 1e-6 for pk, d in got)
    assert len(rerank_requests(server)) == 4  # 5 candidates per query in batches of 3
    reqs = [AnnSearchRequest(queries, "dense_vector", {}, 4), AnnSearchRequest(queries, "sparse_vector", {}, 4)]
    hybrid = remote.hybrid_search("docs", reqs, ranker=fn, limit=3)
    assert [len(h) for h in hybrid] == [3, 3]


# Every key this project adds to Milvus's params (issue 5), with values that leave the answer unchanged.
OUR_KEYS = {
    "timeout": 5,
    "max_retries": 1,
    "max_concurrency": 4,
    "cache": True,
    "cache_ttl": 60,
    "rerank_window": 5,
    "score_normalization": "raw",
    "min_score": -100.0,
    "on_failure": "error",
    "eject_after": 3,
    "eject_seconds": 10,
    "tls_verify": True,
    "maxBatch": 2,
}


def test_a_function_with_our_keys_still_works_when_sent_to_milvus(remote: MilvusClient, milvus_server: str) -> None:
    """The same Function, sent by plain pymilvus to the Milvus server (whose only model ranker is Cohere), is
    accepted with all our extra keys and answers exactly as without them: Milvus ignores keys it does not know.
    (Not compared with our order: Milvus Lite reranks more candidates than `limit`, unlike Milvus 2.6.)"""
    query = "What is AI"
    plain = pymilvus.MilvusClient(uri=milvus_server)
    try:
        with RerankServer(wire="cohere") as cohere:
            params: dict[str, Any] = {
                "reranker": "model",
                "provider": "cohere",
                "queries": [query],
                "endpoint": cohere.endpoint,
                "model_name": "rerank-v3.5",
                "credential": "sk-test",
                # Milvus Lite's own Cohere ranker reads these names (a Milvus 2.6 server reads the two above).
                "base_url": cohere.endpoint + "/v2",
                "api_key": "sk-test",
            }
            answers = []
            for extra in ({}, OUR_KEYS | {"endpoints": [cohere.endpoint]}):
                fn = Function(
                    name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params | extra
                )
                kwargs: dict[str, Any] = dict(
                    data=[query], anns_field="sparse_vector", limit=5, output_fields=["document"], ranker=fn
                )
                before = len(rerank_requests(cohere))
                answers.append([(h["id"], h["distance"]) for h in plain.search("docs", **kwargs)[0]])
                assert len(rerank_requests(cohere)) > before  # Milvus really reranked through the service
                assert len(remote.search("docs", **kwargs)[0]) == 5  # and the same Function works with ours
            assert answers[0] == answers[1] and len(answers[0]) == 5
            assert all(r.headers.get("authorization") == "Bearer sk-test" for r in rerank_requests(cohere))
    finally:
        plain.close()
