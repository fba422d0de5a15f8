"""The vLLM Ranker end to end on a real embedded Milvus Lite, against the loopback vLLM server.

Ground truth is what Milvus's own tests use: the first-stage candidates scored by a direct call to the same
service, ordered by (float32 score desc, primary key asc).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymilvus
import pytest
from pymilvus import RRFRanker

from tests.conftest import CORPUS, rerank_function, rerank_requests
from vllm_ranker import (
    AnnSearchRequest,
    Function,
    FunctionType,
    MilvusClient,
    RerankParamError,
    RerankServiceError,
)
from vllm_ranker.testing import RerankServer, overlap_score

QUERIES = ["AI Research Progress", "What is AI"]


def truth(query: str, pks: list[int], score: Any = overlap_score) -> list[tuple[int, float]]:
    scored = [(pk, float(np.float32(score(query, CORPUS[pk])))) for pk in pks]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def plain(milvus: MilvusClient, **kwargs: Any) -> Any:
    return pymilvus.MilvusClient.search(milvus, "docs", **kwargs)


def test_seed_search_snippet(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    vllm_ranker = Function(
        name="vllm_semantic_ranker",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={
            "reranker": "model",
            "provider": "vllm",
            "queries": QUERIES,
            "endpoint": server.endpoint,
            "maxBatch": 64,
            "truncate_prompt_tokens": 256,
        },
    )
    results = client.search(
        collection_name="docs",
        data=QUERIES,
        anns_field="dense_vector",
        limit=5,
        output_fields=["document"],
        ranker=vllm_ranker,
        consistency_level="Bounded",
    )
    first = plain(milvus, data=QUERIES, anns_field="dense_vector", limit=5)
    assert isinstance(results, pymilvus.SearchResult) and len(results) == 2
    for q, query in enumerate(QUERIES):
        expected = truth(query, list(first[q].ids))
        assert [(h["id"], h["distance"]) for h in results[q]] == expected
        assert results[q].ids == [pk for pk, _ in expected]
        assert all(h["entity"]["document"] == CORPUS[h["id"]] for h in results[q])
    bodies = [r.body for r in rerank_requests(server)]
    assert len(bodies) == 2 and all(b["truncate_prompt_tokens"] == 256 for b in bodies)
    assert sorted(b["query"] for b in bodies) == sorted(QUERIES)


def test_seed_hybrid_snippet(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    vllm_ranker = rerank_function(server.endpoint, QUERIES, maxBatch=64, truncate_prompt_tokens=256)
    dense_search = AnnSearchRequest(data=QUERIES, anns_field="dense_vector", param={}, limit=5)
    sparse_search = AnnSearchRequest(data=QUERIES, anns_field="sparse_vector", param={}, limit=5)
    hybrid_results = client.hybrid_search(
        "docs", [dense_search, sparse_search], ranker=vllm_ranker, limit=5, output_fields=["document"]
    )
    dense = plain(milvus, data=QUERIES, anns_field="dense_vector", limit=5)
    sparse = plain(milvus, data=QUERIES, anns_field="sparse_vector", limit=5)
    for q, query in enumerate(QUERIES):
        union = list(dict.fromkeys(list(dense[q].ids) + list(sparse[q].ids)))
        assert [(h["id"], h["distance"]) for h in hybrid_results[q]] == truth(query, union)[:5]
        # every union member is scored exactly once
        sent = [d for r in rerank_requests(server) if r.body["query"] == query for d in r.body["documents"]]
        assert sorted(sent) == sorted(CORPUS[pk] for pk in union)


def test_seed_mismatch_is_the_milvus_error_before_any_call(
    client: Any, milvus: MilvusClient, server: RerankServer
) -> None:
    one_query = rerank_function(server.endpoint, ["renewable energy developments"])
    with pytest.raises(RerankParamError, match=r"nq must equal to queries size, but got nq \[2\], queries size \[1\]"):
        client.search("docs", data=QUERIES, anns_field="dense_vector", limit=5, ranker=one_query)
    with pytest.raises(pymilvus.MilvusException, match="nq must equal to queries size"):
        client.hybrid_search("docs", [AnnSearchRequest(QUERIES, "sparse_vector", {}, 5)], ranker=one_query)
    assert server.requests == []  # no embedding call for the search, no rerank call


def test_text_data_are_the_queries_when_queries_is_missing(
    client: Any, milvus: MilvusClient, server: RerankServer
) -> None:
    res = client.search(
        "docs",
        data=["energy progress"],
        anns_field="sparse_vector",
        limit=4,
        ranker=rerank_function(server.endpoint),
    )
    first = plain(milvus, data=["energy progress"], anns_field="sparse_vector", limit=4)
    assert [(h["id"], h["distance"]) for h in res[0]] == truth("energy progress", list(first[0].ids))


def test_vector_data_without_queries_is_the_milvus_error(
    client: Any, milvus: MilvusClient, server: RerankServer
) -> None:
    with pytest.raises(RerankParamError, match="rerank function lost params queries"):
        client.search(
            "docs",
            data=[[0.25] * 16],
            anns_field="dense_vector",
            limit=3,
            ranker=rerank_function(server.endpoint),
        )


@pytest.mark.parametrize("anns_field", ["dense_vector", "sparse_vector"])
def test_offset_reranks_the_page_after_offset(
    client: Any, milvus: MilvusClient, server: RerankServer, anns_field: str
) -> None:
    res = client.search(
        "docs",
        data=["AI research"],
        anns_field=anns_field,
        limit=3,
        offset=2,
        ranker=rerank_function(server.endpoint, maxBatch=2),
    )
    first = plain(milvus, data=["AI research"], anns_field=anns_field, limit=5)
    assert [(h["id"], h["distance"]) for h in res[0]] == truth("AI research", list(first[0].ids)[2:5])
    assert [len(r.body["documents"]) for r in rerank_requests(server)] in ([2, 1], [1, 2])


def test_hybrid_offset_applies_after_rerank(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    reqs = [
        AnnSearchRequest(["AI energy"], "dense_vector", {}, 6),
        AnnSearchRequest(["AI energy"], "sparse_vector", {}, 6),
    ]
    res = client.hybrid_search("docs", reqs, ranker=rerank_function(server.endpoint), limit=3, offset=2)
    dense = plain(milvus, data=["AI energy"], anns_field="dense_vector", limit=6)
    sparse = plain(milvus, data=["AI energy"], anns_field="sparse_vector", limit=6)
    union = list(dict.fromkeys(list(dense[0].ids) + list(sparse[0].ids)))
    assert [h["id"] for h in res[0]] == [pk for pk, _ in truth("AI energy", union)[2:5]]


def test_sub_request_filters_and_limits(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    reqs = [
        AnnSearchRequest(["AI"], "dense_vector", {}, 2, expr="year < 2005"),
        AnnSearchRequest(["AI"], "sparse_vector", {}, 3, expr="category == 'ai'"),
    ]
    res = client.hybrid_search(
        "docs", reqs, ranker=rerank_function(server.endpoint), limit=10, output_fields=["year", "category"]
    )
    dense = plain(milvus, data=["AI"], anns_field="dense_vector", limit=2, filter="year < 2005")
    sparse = plain(milvus, data=["AI"], anns_field="sparse_vector", limit=3, filter="category == 'ai'")
    union = list(dict.fromkeys(list(dense[0].ids) + list(sparse[0].ids)))
    assert [h["id"] for h in res[0]] == [pk for pk, _ in truth("AI", union)]
    assert all(set(h["entity"]) == {"year", "category"} for h in res[0])


def test_ties_are_broken_by_primary_key(client: Any, milvus: MilvusClient) -> None:
    with RerankServer(score=lambda q, d: 0.5) as flat:
        res = client.search(
            "docs", data=["AI"], anns_field="sparse_vector", limit=5, ranker=rerank_function(flat.endpoint)
        )
    assert res[0].ids == sorted(res[0].ids)
    assert set(res[0].distances) == {0.5}


def test_round_decimal(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    res = client.search(
        "docs",
        data=["AI research"],
        anns_field="sparse_vector",
        limit=4,
        round_decimal=2,
        ranker=rerank_function(server.endpoint),
    )
    exact = client.search(
        "docs",
        data=["AI research"],
        anns_field="sparse_vector",
        limit=4,
        ranker=rerank_function(server.endpoint),
    )
    assert res[0].ids == exact[0].ids  # rounding happens after sorting
    assert res[0].distances == [round(d, 2) for d in exact[0].distances]


def test_output_fields_with_and_without_the_text_field(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    fn = rerank_function(server.endpoint)
    without = client.search("docs", data=["AI"], anns_field="sparse_vector", limit=3, output_fields=["year"], ranker=fn)
    assert all(set(h["entity"]) == {"year"} for h in without[0])
    none = client.search("docs", data=["AI"], anns_field="sparse_vector", limit=3, ranker=fn)
    assert all(h["entity"] == {} for h in none[0])
    # the text was still fetched and sent for reranking
    assert all(
        r.body["documents"] and all(isinstance(d, str) and d for d in r.body["documents"])
        for r in rerank_requests(server)
    )
    star = client.search("docs", data=["AI"], anns_field="sparse_vector", limit=2, output_fields=["*"], ranker=fn)
    assert "document" in star[0][0]["entity"] and "year" in star[0][0]["entity"]


def test_empty_collection_makes_no_call(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    res = client.search(
        "empty",
        data=["AI", "energy"],
        anns_field="sparse_vector",
        limit=5,
        ranker=rerank_function(server.endpoint),
    )
    assert [list(h) for h in res] == [[], []]
    assert rerank_requests(server) == []


def test_query_with_no_hits_makes_no_call(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    res = client.search(
        "docs",
        data=["AI", "energy"],
        anns_field="sparse_vector",
        limit=5,
        filter="year > 2008",
        ranker=rerank_function(server.endpoint),
    )
    assert all(h["id"] > 8 for h in res[0])
    assert {r.body["query"] for r in rerank_requests(server)} <= {"AI", "energy"}
    empty = client.search(
        "docs",
        data=["AI", "zzzz"],
        anns_field="sparse_vector",
        limit=5,
        ranker=rerank_function(server.endpoint),
    )
    assert list(empty[1]) == []
    assert "zzzz" not in {r.body["query"] for r in rerank_requests(server)}


def test_empty_document_is_sent_as_is(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    last = len(CORPUS) - 1
    res = client.search(
        "docs",
        data=["AI"],
        anns_field="dense_vector",
        limit=3,
        filter=f"id == {last}",
        output_fields=["document"],
        ranker=rerank_function(server.endpoint),
    )
    assert res[0][0]["entity"]["document"] == ""
    assert rerank_requests(server)[0].body["documents"] == [""]


def test_group_by_is_refused(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    with pytest.raises(RerankParamError, match="group_by_field"):
        client.search(
            "docs",
            data=["AI"],
            anns_field="dense_vector",
            limit=3,
            group_by_field="category",
            ranker=rerank_function(server.endpoint),
        )


@pytest.mark.parametrize(
    ("fields", "substring"),
    [
        (["nope"], "function input field not found: nope"),
        (["note"], "function input field cannot be nullable: field note"),
        (["year"], "rerank model only support varchar, bug got [Int64]"),
        (["document", "category"], "rerank model only supports single input"),
    ],
)
def test_field_validation_through_the_client(
    client: Any, milvus: MilvusClient, server: RerankServer, fields: list[str], substring: str
) -> None:
    fn = Function(
        name="r",
        input_field_names=fields,
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "endpoint": server.endpoint, "queries": ["AI"]},
    )
    with pytest.raises(RerankParamError) as caught:
        client.search("docs", data=["AI"], anns_field="sparse_vector", limit=3, ranker=fn)
    assert substring in str(caught.value)
    assert server.requests == []


def test_service_errors_surface_as_milvus_exceptions(client: Any, milvus: MilvusClient) -> None:
    with RerankServer() as srv:
        endpoint = srv.endpoint
    with pytest.raises(RerankServiceError, match="call service failed") as caught:
        client.search(
            "docs",
            data=["AI"],
            anns_field="sparse_vector",
            limit=3,
            ranker=rerank_function(endpoint, max_retries=0),
        )
    assert isinstance(caught.value, pymilvus.MilvusException)


def test_other_rankers_go_to_the_server_untouched(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    reqs = [AnnSearchRequest(["AI"], "dense_vector", {}, 5), AnnSearchRequest(["AI"], "sparse_vector", {}, 5)]
    for ranker in (
        RRFRanker(60),
        Function(
            name="rrf",
            input_field_names=[],
            function_type=FunctionType.RERANK,
            params={"reranker": "rrf", "k": 60},
        ),
    ):
        ours = client.hybrid_search("docs", reqs, ranker=ranker, limit=5)
        theirs = pymilvus.MilvusClient.hybrid_search(milvus, "docs", reqs, ranker, limit=5)
        assert [list(h.ids) for h in ours] == [list(h.ids) for h in theirs]
    assert server.requests == [] or all(not r.path.endswith("rerank") for r in server.requests)


def test_nq_many_with_batches_in_flight(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    queries = ["AI", "energy", "dogs", "Python", "research progress"]
    res = client.search(
        "docs",
        data=queries,
        anns_field="sparse_vector",
        limit=6,
        ranker=rerank_function(server.endpoint, queries, maxBatch=2),
    )
    first = plain(milvus, data=queries, anns_field="sparse_vector", limit=6)
    for q, query in enumerate(queries):
        assert [(h["id"], h["distance"]) for h in res[q]] == truth(query, list(first[q].ids))
    assert res.extra["rerank"].batches == len(rerank_requests(server))
