"""Plain, unmodified pymilvus against the gateway: the seed's searches, the Python client's messages, every
other ranker and RPC passed through, answers equal to ``vllm_ranker.MilvusClient``'s on the same data."""

from __future__ import annotations

from typing import Any

import pymilvus
import pytest
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, RRFRanker, WeightedRanker

from tests.conftest import DIM, rerank_function, rerank_requests
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer, hashed_embedding, overlap_score

QUERIES = ["AI Research Progress", "What is AI"]


def rows(result: Any, pk: str = "id") -> list[list[tuple[Any, float, dict[str, Any]]]]:
    return [[(h[pk], h["distance"], dict(h["entity"])) for h in hits] for hits in result]


def both(plain: pymilvus.MilvusClient, ours: MilvusClient, method: str, *args: Any, **kwargs: Any) -> Any:
    """The gateway's answer, checked equal to the Python client's (ids, scores, entity fields, order)."""
    got = getattr(plain, method)(*args, **kwargs)
    want = getattr(ours, method)(*args, **kwargs)
    assert rows(got) == rows(want)
    return got


def test_seed_search(plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer) -> None:
    fn = rerank_function(server.endpoint, QUERIES, maxBatch=64, truncate_prompt_tokens=256)
    res = both(
        plain,
        ours,
        "search",
        "docs",
        data=QUERIES,
        anns_field="sparse_vector",
        limit=5,
        output_fields=["document"],
        ranker=fn,
        consistency_level="Bounded",
    )
    for q, query in enumerate(QUERIES):
        hits = res[q]
        assert len(hits) == 5
        assert [h["distance"] for h in hits] == sorted((h["distance"] for h in hits), reverse=True)
        assert all(abs(h["distance"] - overlap_score(query, h["entity"]["document"])) < 1e-6 for h in hits)
    assert all(r.body["truncate_prompt_tokens"] == 256 for r in rerank_requests(server))


def test_seed_hybrid_search(plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer) -> None:
    fn = rerank_function(server.endpoint, QUERIES)
    reqs = [AnnSearchRequest(QUERIES, "dense_vector", {}, 5), AnnSearchRequest(QUERIES, "sparse_vector", {}, 5)]
    res = both(plain, ours, "hybrid_search", "docs", reqs, ranker=fn, limit=5, output_fields=["document"])
    assert [len(h) for h in res] == [5, 5]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(output_fields=None),
        dict(output_fields=["year", "category"]),
        dict(output_fields=["*"]),
        dict(output_fields=["document", "note"], round_decimal=2),
        dict(output_fields=["year"], offset=2, filter="year > 2001"),
    ],
    ids=["no-fields", "other-fields", "star", "round", "offset-filter"],
)
def test_output_fields_paging_and_rounding(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, kwargs: dict[str, Any]
) -> None:
    fn = rerank_function(server.endpoint, ["AI research"])
    res = both(
        plain,
        ours,
        "search",
        "docs",
        data=[hashed_embedding("AI research", DIM)],
        anns_field="dense_vector",
        limit=4,
        ranker=fn,
        **kwargs,
    )
    assert len(res[0]) == 4
    if not kwargs.get("output_fields"):
        assert res[0][0]["entity"] == {}


def test_hybrid_offset_and_sub_filters(plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer) -> None:
    fn = rerank_function(server.endpoint, ["energy progress"])
    reqs = [
        AnnSearchRequest(["energy progress"], "sparse_vector", {}, 6, expr="year >= 2003"),
        AnnSearchRequest([hashed_embedding("energy", DIM)], "dense_vector", {}, 4),
    ]
    both(plain, ours, "hybrid_search", "docs", reqs, ranker=fn, limit=3, offset=1, output_fields=["year"])


def test_text_data_are_the_queries(plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer) -> None:
    both(
        plain,
        ours,
        "search",
        "docs",
        data=["renewable energy"],
        anns_field="sparse_vector",
        limit=3,
        ranker=rerank_function(server.endpoint),
    )


def _raised(call: Any) -> pymilvus.MilvusException:
    with pytest.raises(pymilvus.MilvusException) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"reranker": "nope"}, ["document"]),
        ({}, ["nope"]),
        ({}, ["note"]),
        ({}, ["year"]),
        ({}, ["document", "category"]),
        ({"provider": None}, ["document"]),
        ({"provider": "acme"}, ["document"]),
        ({"endpoint": None}, ["document"]),
        ({"endpoint": "ftp://x"}, ["document"]),
        ({"maxBatch": 0}, ["document"]),
        ({"maxBatch": "many"}, ["document"]),
        ({"truncate_prompt_tokens": "lots"}, ["document"]),
        ({"queries": ["a", "b", "c"]}, ["document"]),
        ({"queries": "not json"}, ["document"]),
        ({"timeout": -1}, ["document"]),
    ],
)
def test_validation_messages_equal_the_python_clients(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, params: dict[str, Any], fields: list[str]
) -> None:
    merged: dict[str, Any] = {"reranker": "model", "provider": "vllm", "endpoint": server.endpoint, "queries": ["AI"]}
    merged.update(params)
    merged = {k: v for k, v in merged.items() if v is not None}
    fn = Function(name="r", input_field_names=fields, function_type=FunctionType.RERANK, params=merged)
    kwargs: dict[str, Any] = dict(data=[hashed_embedding("AI", DIM)], anns_field="dense_vector", limit=3, ranker=fn)
    got = _raised(lambda: plain.search("docs", **kwargs))
    want = _raised(lambda: ours.search("docs", **kwargs))
    assert (got.message, got.code) == (want.message, want.code)
    assert rerank_requests(server) == []


def test_group_by_is_refused_with_the_same_message(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer
) -> None:
    kwargs: dict[str, Any] = dict(
        data=["AI"],
        anns_field="sparse_vector",
        limit=3,
        group_by_field="category",
        ranker=rerank_function(server.endpoint),
    )
    assert (
        _raised(lambda: plain.search("docs", **kwargs)).message
        == _raised(lambda: ours.search("docs", **kwargs)).message
    )


def test_service_down_is_call_service_failed(plain: pymilvus.MilvusClient, ours: MilvusClient) -> None:
    with RerankServer() as srv:
        endpoint = srv.endpoint  # closed at once: nothing listens there any more
    kwargs: dict[str, Any] = dict(
        data=["AI"], anns_field="sparse_vector", limit=3, ranker=rerank_function(endpoint, max_retries=0)
    )
    got = _raised(lambda: plain.search("docs", **kwargs))
    assert "call service failed" in got.message
    assert got.message == _raised(lambda: ours.search("docs", **kwargs)).message


def test_other_rankers_pass_through(
    plain: pymilvus.MilvusClient, direct: pymilvus.MilvusClient, server: RerankServer
) -> None:
    reqs = [AnnSearchRequest(["AI"], "dense_vector", {}, 5), AnnSearchRequest(["AI"], "sparse_vector", {}, 5)]
    rrf = Function(
        name="rrf", input_field_names=[], function_type=FunctionType.RERANK, params={"reranker": "rrf", "k": 60}
    )
    for ranker in (RRFRanker(60), WeightedRanker(0.7, 0.3), rrf):
        got = plain.hybrid_search("docs", reqs, ranker=ranker, limit=5, output_fields=["year"])
        assert rows(got) == rows(direct.hybrid_search("docs", reqs, ranker=ranker, limit=5, output_fields=["year"]))
    assert rerank_requests(server) == []


def test_collection_rpcs_pass_through(plain: pymilvus.MilvusClient, direct: pymilvus.MilvusClient) -> None:
    name = "gw_crud"
    schema = plain.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("n", DataType.INT64)
    plain.create_collection(name, schema=schema)
    try:
        assert name in direct.list_collections()
        assert [f["name"] for f in plain.describe_collection(name)["fields"]] == ["pk", "v", "n"]
        plain.create_partition(name, "p1")
        assert plain.has_partition(name, "p1") and "p1" in direct.list_partitions(name)
        data = [{"pk": f"k{i}", "v": [float(i), 1.0, 0.0, 0.5], "n": i} for i in range(6)]
        assert plain.insert(name, data[:4])["insert_count"] == 4
        plain.insert(name, data[4:], partition_name="p1")
        index = plain.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        plain.create_index(name, index)
        assert "v" in plain.list_indexes(name)
        plain.load_collection(name)
        assert sorted(r["pk"] for r in plain.query(name, filter="n >= 3", output_fields=["pk"])) == ["k3", "k4", "k5"]
        plain.delete(name, ids=["k0"])
        assert plain.query(name, filter="n < 2", output_fields=["n"]) == direct.query(
            name, filter="n < 2", output_fields=["n"]
        )
        hits = plain.search(name, data=[[1.0, 1.0, 0.0, 0.5]], limit=2, output_fields=["n"])
        again = direct.search(name, data=[[1.0, 1.0, 0.0, 0.5]], limit=2, output_fields=["n"])
        assert rows(hits, "pk") == rows(again, "pk")
        plain.release_collection(name)
        plain.drop_partition(name, "p1")
        assert not direct.has_partition(name, "p1")
    finally:
        plain.drop_collection(name)
    assert name not in direct.list_collections()


def test_backend_status_errors_come_back_unchanged(plain: pymilvus.MilvusClient, direct: pymilvus.MilvusClient) -> None:
    got = _raised(lambda: plain.describe_collection("no_such_collection"))
    want = _raised(lambda: direct.describe_collection("no_such_collection"))
    assert (got.code, got.message) == (want.code, want.message)


def test_recreated_collection_is_validated_against_its_new_schema(
    plain: pymilvus.MilvusClient, server: RerankServer
) -> None:
    """The gateway forgets a cached schema when a create/drop goes through it."""
    name = "gw_recreated"
    for text_type in (DataType.VARCHAR, DataType.INT64):
        schema = plain.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        kwargs: dict[str, Any] = {"max_length": 64} if text_type == DataType.VARCHAR else {}
        schema.add_field("document", text_type, **kwargs)
        index = plain.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        plain.drop_collection(name)
        plain.create_collection(name, schema=schema, index_params=index)
        plain.insert(name, [{"id": 1, "v": [0.0, 1.0], "document": "AI" if text_type == DataType.VARCHAR else 7}])
        plain.load_collection(name)
        fn = rerank_function(server.endpoint, ["AI"])
        if text_type == DataType.VARCHAR:
            assert plain.search(name, data=[[0.0, 1.0]], limit=1, ranker=fn)[0][0]["id"] == 1
        else:
            assert (
                "only support varchar"
                in _raised(lambda fn=fn: plain.search(name, data=[[0.0, 1.0]], limit=1, ranker=fn)).message
            )
    plain.drop_collection(name)


def test_backend_errors_of_a_reranked_search_equal_the_python_clients(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer
) -> None:
    fn = rerank_function(server.endpoint, ["AI"])
    for collection, field in (("no_such_collection", "dense_vector"), ("docs", "no_such_field")):
        kwargs: dict[str, Any] = dict(data=[hashed_embedding("AI", DIM)], anns_field=field, limit=3, ranker=fn)
        got = _raised(lambda c=collection, k=kwargs: plain.search(c, **k))
        want = _raised(lambda c=collection, k=kwargs: ours.search(c, **k))
        assert (got.code, got.message) == (want.code, want.message)
