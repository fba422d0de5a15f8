"""``ranker=FunctionScore([boost..., model])`` (Milvus 2.6.2+) through both clients on a Milvus Lite file: the boosts
run in the first stage (they decide which hits reach the model), the model orders them; Milvus's refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pymilvus
import pytest
from pymilvus import AnnSearchRequest, Function, FunctionScore, FunctionType

from tests.conftest import CORPUS, rerank_function, rerank_requests
from vllm_ranker import MilvusClient, RerankParamError
from vllm_ranker.testing import RerankServer, overlap_score

QUERY = "What is AI"
SEARCH: dict[str, Any] = dict(data=[QUERY], anns_field="dense_vector", limit=4, output_fields=["category"])


def boost(weight: Any = 100.0, name: str = "boost_other", **params: Any) -> Function:
    """Lifts the 'other' documents, which the query's own top 4 (all 'ai') does not hold."""
    merged = {"reranker": "boost", "filter": "category == 'other'", "weight": weight, **params}
    merged = {key: value for key, value in merged.items() if value is not None}  # None: the param is left out
    return Function(name=name, input_field_names=[], function_type=FunctionType.RERANK, params=merged)


def first_stage(milvus: MilvusClient, ranker: Any = None) -> list[int]:
    """The backend's own answer with plain pymilvus: the candidates the model must be given."""
    return list(pymilvus.MilvusClient.search(milvus, "docs", ranker=ranker, **SEARCH)[0].ids)


def model_order(pks: list[int]) -> list[int]:
    scored = [(pk, float(np.float32(overlap_score(QUERY, CORPUS[pk])))) for pk in pks]
    return [pk for pk, _ in sorted(scored, key=lambda t: (-t[1], t[0]))]


@pytest.mark.parametrize("params", [None, {"boost_mode": "Sum", "function_mode": "Sum"}], ids=["multiply", "sum"])
def test_boosts_choose_the_candidates_and_the_model_orders_them(
    client: Any, milvus: MilvusClient, server: RerankServer, params: dict[str, str] | None
) -> None:
    boosts = [boost(), boost(1.0, name="boost_all", filter=None)]
    candidates = first_stage(milvus, FunctionScore(boosts, params))
    unboosted = first_stage(milvus)
    assert all(CORPUS[pk] and "AI" in CORPUS[pk] for pk in unboosted)  # the data makes the boost visible
    assert set(candidates) != set(unboosted) and any("AI" not in CORPUS[pk] for pk in candidates)

    res = client.search("docs", ranker=FunctionScore([*boosts, rerank_function(server.endpoint)], params), **SEARCH)

    (sent,) = [r.body for r in rerank_requests(server)]
    assert sorted(sent["documents"]) == sorted(CORPUS[pk] for pk in candidates)  # what reached the model
    assert res[0].ids == model_order(candidates)  # and the model's order, not the boosted one
    assert [h["distance"] for h in res[0]] == [float(np.float32(overlap_score(QUERY, CORPUS[pk]))) for pk in res[0].ids]
    assert all(h["entity"]["category"] == ("ai" if "AI" in CORPUS[h["id"]] else "other") for h in res[0])
    assert res.extra["rerank"].candidates == 4 and res.extra["rerank"].batches == 1


def test_a_function_score_holding_only_the_model_ranks_the_plain_first_stage(
    milvus: MilvusClient, server: RerankServer
) -> None:
    # No boost: Milvus reads none of the FunctionScore's params and the search is the model ranker's alone.
    res = milvus.search("docs", ranker=FunctionScore([rerank_function(server.endpoint)], {"boost_mode": "x"}), **SEARCH)
    assert res[0].ids == model_order(first_stage(milvus))


def test_boosts_without_a_model_ranker_go_to_the_server(milvus: MilvusClient, server: RerankServer) -> None:
    res = milvus.search("docs", ranker=FunctionScore([boost()]), **SEARCH)
    assert res[0].ids == first_stage(milvus, FunctionScore([boost()])) and rerank_requests(server) == []


def _bm25() -> Function:
    return Function("bm25", FunctionType.BM25, input_field_names=["document"], output_field_names=["sparse_vector"])


def _decay() -> Function:
    params = {"reranker": "decay", "function": "gauss", "origin": 2000, "scale": 5}
    return Function("decay", FunctionType.RERANK, input_field_names=["year"], params=params)


@pytest.mark.parametrize(
    ("functions", "params", "message"),
    [
        (["boost", "model", "model"], None, "Currently only supports one rerank: "),
        (["boost", "model", "decay"], None, "Currently only supports one rerank: "),
        (["model", "bm25"], None, "BM25 is not rerank function.: "),
        (["no_weight", "model"], None, "must set weight params for weight scorer: "),
        (
            ["bad_weight", "model"],
            None,
            'parse function scorer weight params failed with error: {strconv.ParseFloat: parsing "heavy": '
            "invalid syntax}: ",
        ),
        (["boost", "model"], {"boost_mode": "Max"}, "unknown boost mode: max: "),
        (["boost", "model"], {"function_mode": "avg"}, "unknown function mode: avg: "),
        (["boost", "unknown_kind"], None, "unsupported rerank function: [cross] , list of supported "),
    ],
)
def test_milvus_refusals(
    milvus: MilvusClient, server: RerankServer, functions: list[str], params: Any, message: str
) -> None:
    made = {
        "boost": boost(),
        "model": rerank_function(server.endpoint),
        "decay": _decay(),
        "bm25": _bm25(),
        "no_weight": boost(None),
        "bad_weight": boost("heavy"),
        "unknown_kind": rerank_function(server.endpoint, reranker="cross"),
    }
    with pytest.raises(RerankParamError) as caught:
        milvus.search("docs", ranker=FunctionScore([made[f] for f in functions], params), **SEARCH)
    assert str(caught.value.message).startswith(message)
    assert rerank_requests(server) == []


def test_hybrid_search_takes_no_function_score(milvus: MilvusClient, server: RerankServer) -> None:
    # pymilvus refuses it before sending anything (so does plain pymilvus); Milvus documents boosts at the top of a
    # hybrid search as unsupported.
    ranker = FunctionScore([boost(), rerank_function(server.endpoint)])
    with pytest.raises(pymilvus.MilvusException, match="The hybrid search rerank must be a Function or a Ranker"):
        milvus.hybrid_search("docs", [AnnSearchRequest([QUERY], "dense_vector", {}, 4)], ranker=ranker, limit=4)
