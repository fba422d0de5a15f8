"""The remote path: a Milvus server URI (``milvus-lite server`` on loopback speaks a cluster's gRPC protocol;
the ``milvus_server`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
