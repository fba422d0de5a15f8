"""The vLLM Ranker against a REAL vLLM server (CPU build, packaged all-MiniLM-L6-v2; a tiny cross-encoder).

Ground truth is a direct call to the same server on the same candidates, ordered by (float32 score desc, pk asc),
exactly as Milvus's own end-to-end tests do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pymilvus
import pytest

from tests.conftest import CORPUS, rerank_function
from vllm_ranker import AnnSearchRequest, DataType, MilvusClient, RerankServiceError
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

DOCS = [d for d in CORPUS if d]
QUERIES = ["AI Research Progress", "What is AI"]


def direct_scores(endpoint: str, query: str, documents: list[str], **extra: Any) -> list[float]:
    answer = httpx.post(f"{endpoint}/v1/rerank", json={"query": query, "documents": documents, **extra}, timeout=120)
    answer.raise_for_status()
    scores = [0.0] * len(documents)
    for item in answer.json()["results"]:
        scores[item["index"]] = item["relevance_score"]
    return scores


def truth(endpoint: str, query: str, pks: list[int]) -> list[int]:
    scores = direct_scores(endpoint, query, [DOCS[pk] for pk in pks])
    return [pk for _, pk in sorted(zip((-np.float32(s) for s in scores), pks, strict=True))]


@pytest.fixture(scope="module")
def real(minilm_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    """Milvus Lite with dense vectors from the real vLLM /v1/embeddings (TEXTEMBEDDING) and BM25."""
    endpoint = minilm_server.endpoint
    dim = len(httpx.post(f"{endpoint}/v1/embeddings", json={"input": ["x"]}, timeout=60).json()["data"][0]["embedding"])
    client = MilvusClient(uri=str(tmp_path_factory.mktemp("real") / "real.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    add_text_fields(schema, embeddings_url=f"{endpoint}/v1", model=minilm_server.model_name, dim=dim, max_length=4000)
    index = text_index_params(client, dense_index="FLAT")
    client.create_collection("docs", schema=schema, index_params=index)
    client.insert("docs", [{"id": i, "document": d} for i, d in enumerate(DOCS)])
    client.flush("docs")
    yield client
    client.close()


def test_seed_search_against_real_vllm(real: MilvusClient, minilm_server: Any) -> None:
    fn = rerank_function(minilm_server.endpoint, QUERIES, maxBatch=3, truncate_prompt_tokens=256)
    res = real.search(
        collection_name="docs",
        data=QUERIES,
        anns_field="dense_vector",
        limit=5,
        output_fields=["document"],
        ranker=fn,
        consistency_level="Bounded",
    )
    first = pymilvus.MilvusClient.search(real, "docs", data=QUERIES, anns_field="dense_vector", limit=5)
    for q, query in enumerate(QUERIES):
        assert list(res[q].ids) == truth(minilm_server.endpoint, query, list(first[q].ids))
        assert all(h["entity"]["document"] == DOCS[h["id"]] for h in res[q])
    assert res.extra["rerank"].batches == 4 and res.extra["rerank"].prompt_tokens > 0


def test_seed_hybrid_against_real_vllm(real: MilvusClient, minilm_server: Any) -> None:
    fn = rerank_function(minilm_server.endpoint, QUERIES, maxBatch=64, truncate_prompt_tokens=256)
    reqs = [AnnSearchRequest(QUERIES, "dense_vector", {}, 5), AnnSearchRequest(QUERIES, "sparse_vector", {}, 5)]
    res = real.hybrid_search("docs", reqs, ranker=fn, limit=5, output_fields=["document"])
    dense = pymilvus.MilvusClient.search(real, "docs", data=QUERIES, anns_field="dense_vector", limit=5)
    sparse = pymilvus.MilvusClient.search(real, "docs", data=QUERIES, anns_field="sparse_vector", limit=5)
    for q, query in enumerate(QUERIES):
        union = list(dict.fromkeys(list(dense[q].ids) + list(sparse[q].ids)))
        assert list(res[q].ids) == truth(minilm_server.endpoint, query, union)[:5]


def test_real_vllm_errors_are_clear(real: MilvusClient, minilm_server: Any) -> None:
    wrong_model = rerank_function(minilm_server.endpoint, ["AI"], model_name="no-such-model", max_retries=0)
    with pytest.raises(RerankServiceError, match="call service failed") as caught:
        real.search("docs", data=["AI"], anns_field="sparse_vector", limit=3, ranker=wrong_model)
    assert caught.value.status == 404 and "no-such-model" in str(caught.value)
    with pytest.raises(RerankServiceError, match="HTTP 404"):
        real.search(
            "docs",
            data=["AI"],
            anns_field="sparse_vector",
            limit=3,
            ranker=rerank_function(minilm_server.endpoint + "/v1/nothing/here/rerankx", ["AI"]),
        )


def test_cross_encoder_and_truncation_end_to_end(real: MilvusClient, cross_encoder_server: Any) -> None:
    endpoint = cross_encoder_server.endpoint
    fn = rerank_function(endpoint, ["AI research"], model_name=cross_encoder_server.model_name)
    res = real.search("docs", data=["AI research"], anns_field="sparse_vector", limit=5, ranker=fn)
    first = pymilvus.MilvusClient.search(real, "docs", data=["AI research"], anns_field="sparse_vector", limit=5)
    assert list(res[0].ids) == truth(endpoint, "AI research", list(first[0].ids))
    # A document longer than the tiny model's context: refused without truncation, scored with it.
    long_doc = " ".join(["energy"] * 2000)
    with pytest.raises(httpx.HTTPStatusError):
        direct_scores(endpoint, "energy", [long_doc])
    assert len(direct_scores(endpoint, "energy", [long_doc], truncate_prompt_tokens=32)) == 1
