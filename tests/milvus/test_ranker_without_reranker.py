"""A Function that names a model provider but has no ``reranker`` key, through both clients on Milvus Lite.

Before: ``is_model_ranker`` said no, the search went to Milvus Lite and failed with its own provider table's
"Unknown rerank provider: 'vllm'. Supported: 'cohere'" (or, for cohere, ran Milvus Lite's own Cohere call, which
a Milvus server refuses). Now: a ``RerankParamError`` before any search, with Milvus's message and the fix.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import AnnSearchRequest, Function, FunctionType

from tests.conftest import rerank_function
from vllm_ranker import RerankParamError
from vllm_ranker.testing import RerankServer

QUERIES = ["AI research progress", "renewable energy"]
FIX = "set params['reranker'] = 'model'"


def without_reranker(endpoint: str, provider: str, **params: Any) -> Function:
    merged = dict(rerank_function(endpoint, QUERIES, provider=provider, **params).params)
    merged.pop("reranker")
    return Function(
        name="no_reranker", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged
    )


@pytest.mark.parametrize(
    ("provider", "params"),
    [
        ("vllm", {}),
        ("tei", {}),
        ("cohere", {"model_name": "rerank-v3.5", "credential": "test-key"}),  # Milvus Lite has its own cohere
        ("VLLM", {}),
    ],
)
def test_a_provider_without_reranker_fails_before_any_search(
    client: Any, server: RerankServer, provider: str, params: dict[str, Any]
) -> None:
    ranker = without_reranker(server.endpoint, provider, **params)
    with pytest.raises(RerankParamError) as searched:
        client.search("docs", data=QUERIES, anns_field="dense_vector", limit=5, ranker=ranker)
    with pytest.raises(RerankParamError) as hybrid:
        client.hybrid_search(
            "docs",
            [AnnSearchRequest(QUERIES, "dense_vector", {}, 5), AnnSearchRequest(QUERIES, "sparse_vector", {}, 5)],
            ranker=ranker,
            limit=5,
        )
    for caught in (searched, hybrid):
        message = str(caught.value)
        assert "unsupported rerank function: [] , list of supported [decay,model,rrf,weighted]" in message
        assert f"provider '{provider}'" in message
        assert FIX in message
        assert "Unknown rerank provider" not in message
    assert server.requests == []  # not even the embedding call of a text search: nothing was searched


def test_rankers_that_are_not_model_rankers_still_go_to_milvus(client: Any, server: RerankServer) -> None:
    rrf = Function(name="rrf", input_field_names=[], function_type=FunctionType.RERANK, params={"reranker": "rrf"})
    result = client.hybrid_search(
        "docs",
        [AnnSearchRequest(QUERIES, "dense_vector", {}, 5), AnnSearchRequest(QUERIES, "sparse_vector", {}, 5)],
        ranker=rrf,
        limit=3,
    )
    assert [len(hits) for hits in result] == [3, 3]
    assert not [r for r in server.requests if r.path.endswith("rerank")]
