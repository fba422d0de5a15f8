"""Milvus 3.0 function chains through the gateway, with plain pymilvus: the same hits, scores and fields as
``vllm_ranker.MilvusClient`` on the backend (whose results tests/milvus/test_function_chains.py checks against an
independent computation), Milvus Lite's messages for invalid chains, and chains that are the backend's."""

from __future__ import annotations

from typing import Any

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import rerank_requests
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer

Q1 = "AI research progress"
Q2 = "renewable energy"


def _chain(endpoint: str, queries: list[str], limit: int = 5) -> FunctionChain:
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("fresh", fn.decay(col("year"), function="gauss", origin=2010, scale=5))
        .map("$score", fn.rerank_model(col("document"), queries=queries, provider="vllm", endpoint=endpoint))
        .map("$score", fn.num_combine(col("$score"), col("fresh"), mode="weighted", weights=[0.7, 0.3]))
        .map("$score", fn.round_decimal(col("$score"), decimal=4))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(limit)
    )


def _rows(res: Any) -> list[list[tuple[Any, float, dict[str, Any]]]]:
    return [[(h["id"], round(h["distance"], 4), h["entity"]) for h in hits] for hits in res]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(data=[Q1], anns_field="dense_vector", limit=12, output_fields=["document"]),
        dict(data=[Q1, Q2], anns_field="dense_vector", limit=10, output_fields=["document", "category"]),
        dict(data=[Q1], anns_field="sparse_vector", limit=8, output_fields=["year"]),
        dict(data=[Q1], anns_field="dense_vector", limit=12, output_fields=[], filter="category == 'ai'"),
    ],
    ids=["nq1", "nq2-two-fields", "bm25-asked-for-a-read-field", "filter-no-fields"],
)
def test_a_chain_through_the_gateway_equals_the_client(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, kwargs: dict[str, Any]
) -> None:
    queries = kwargs["data"]
    got = plain.search("docs", **kwargs, function_chains=_chain(server.endpoint, queries))
    assert len(rerank_requests(server)) == len(queries)  # the gateway's engine reranked
    want = ours.search("docs", **kwargs, function_chains=_chain(server.endpoint, queries))
    assert _rows(got) == _rows(want)
    assert all(len(hits) == 5 for hits in got)
    # Only the asked-for fields come back: "year" (read by the chain) only where it was asked for.
    asked = set(kwargs["output_fields"])
    assert all(set(h["entity"]) == asked for hits in got for h in hits)


def test_invalid_chains_get_milvus_lite_messages(plain: pymilvus.MilvusClient, server: RerankServer) -> None:
    chain = _chain(server.endpoint, [Q1])
    kw: dict[str, Any] = dict(data=[Q1, Q2], anns_field="dense_vector", limit=5)
    with pytest.raises(pymilvus.MilvusException) as err:
        plain.search("docs", **kw, function_chains=chain)
    assert err.value.message.startswith(
        "function chain op[1] expression rerank_model: rerank_model query count 1 does not match search nq 2: "
    )
    keyed = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=[Q1], provider="vllm", api_key="sk-secret-1"))
        .limit(3)
    )
    with pytest.raises(pymilvus.MilvusException) as err:
        plain.search("docs", data=[Q1], anns_field="dense_vector", limit=5, function_chains=keyed)
    assert err.value.message.startswith(
        "function chain op[0] expression rerank_model: rerank_model credentials must be configured on the server: "
    )
    assert "sk-secret-1" not in err.value.message
    assert rerank_requests(server) == []


def test_a_chain_without_our_model_is_the_backends(
    plain: pymilvus.MilvusClient, direct: pymilvus.MilvusClient, server: RerankServer
) -> None:
    chain = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("f", fn.decay(col("year"), function="linear", origin=2004, scale=9))
        .map("$score", fn.num_combine(col("$score"), col("f"), mode="sum"))
        .sort(col("$score"), desc=False)
        .limit(4)
    )
    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=10, output_fields=["document"])
    assert _rows(plain.search("docs", **kw, function_chains=chain)) == _rows(
        direct.search("docs", **kw, function_chains=chain)
    )
    assert rerank_requests(server) == []
