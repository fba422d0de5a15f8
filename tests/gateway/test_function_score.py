"""``ranker=FunctionScore([boost..., model])`` with plain pymilvus through the gateway: the backend's first stage keeps
the boosts, the gateway reranks with the model; the answers equal the Python client's; Milvus's refusals."""

from __future__ import annotations

import pymilvus
import pytest
from pymilvus import FunctionScore
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import milvus_pb2

from tests.conftest import CORPUS, rerank_function, rerank_requests
from tests.gateway.test_protocol import SERVICE, raw_call
from tests.gateway.test_pymilvus import both
from tests.milvus.test_function_score import SEARCH, boost, model_order
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer


def test_boosts_run_in_the_backend_and_the_model_in_the_gateway(
    plain: pymilvus.MilvusClient, ours: MilvusClient, direct: pymilvus.MilvusClient, server: RerankServer
) -> None:
    params = {"boost_mode": "Multiply"}
    candidates = list(direct.search("docs", ranker=FunctionScore([boost()], params), **SEARCH)[0].ids)
    assert set(candidates) != set(direct.search("docs", **SEARCH)[0].ids)  # the boost changed the candidates

    res = both(
        plain,
        ours,
        "search",
        "docs",
        ranker=FunctionScore([boost(), rerank_function(server.endpoint)], params),
        **SEARCH,
    )

    gateway_call = rerank_requests(server)[0].body  # the gateway's call comes first (both: plain, then ours)
    assert sorted(gateway_call["documents"]) == sorted(CORPUS[pk] for pk in candidates)
    assert res[0].ids == model_order(candidates)


def test_two_rankers_beside_the_boosts_are_refused(plain: pymilvus.MilvusClient, server: RerankServer) -> None:
    model = rerank_function(server.endpoint)
    with pytest.raises(pymilvus.MilvusException) as caught:
        plain.search("docs", ranker=FunctionScore([boost(), model, model]), **SEARCH)
    assert str(caught.value.message).startswith("Currently only supports one rerank: ")
    assert rerank_requests(server) == []


def test_boosts_at_the_top_of_a_hybrid_search_are_refused(gateway: Gateway, server: RerankServer) -> None:
    # pymilvus cannot send a FunctionScore with a hybrid search; other SDKs (Java's HybridSearchReq.functionScore) can.
    request = milvus_pb2.HybridSearchRequest(
        collection_name="docs", requests=[milvus_pb2.SearchRequest(collection_name="docs")]
    )
    ranker = FunctionScore([boost(), rerank_function(server.endpoint)])
    request.function_score.CopyFrom(Prepare.function_score_schema(ranker))
    answer = raw_call(gateway.uri, SERVICE + "HybridSearch", request.SerializeToString())
    assert isinstance(answer, bytes)
    reason = milvus_pb2.SearchResults.FromString(answer).status.reason
    assert reason.startswith("Boost Ranker cannot be used as the ranker of a hybrid search")
    assert rerank_requests(server) == []
