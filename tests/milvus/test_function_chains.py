"""Milvus 3.0 function chains calling one of our rerank models, through both clients, on Milvus Lite (a .db) and
on ``milvus-lite server`` (a cluster's protocol).

The expected hits are computed here, independently of core/chain/: from a plain first-stage search (pymilvus
itself, the same arguments without the chain) and the service's scores (``overlap_score``, the stand-in's model),
with the decay curves written in their textbook form (``decay ** (d / scale) ** 2`` and so on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import CORPUS, create_docs_collection, rerank_function, rerank_requests
from vllm_ranker import MilvusClient, RerankParamError
from vllm_ranker.testing import RerankServer, overlap_score

Row = dict[str, Any]
Q1 = "AI research progress"
Q2 = "renewable energy"


def gauss(v: float, origin: float, scale: float, offset: float = 0.0, decay: float = 0.5) -> float:
    d = max(0.0, abs(v - origin) - offset)
    return float(decay ** ((d / scale) ** 2))


def exp(v: float, origin: float, scale: float, offset: float = 0.0, decay: float = 0.5) -> float:
    d = max(0.0, abs(v - origin) - offset)
    return float(decay ** (d / scale))


def linear(v: float, origin: float, scale: float, offset: float = 0.0, decay: float = 0.5) -> float:
    d = max(0.0, abs(v - origin) - offset)
    return max(0.0, 1.0 - (1.0 - decay) * d / scale)


def model(query: str, row: Row) -> float:
    return overlap_score(query, row["document"])


def _issue_chain(endpoint: str, queries: list[str], **extra: Any) -> FunctionChain:
    """The issue's chain (its ``published`` is this corpus's ``year``)."""
    model_expr = fn.rerank_model(col("document"), queries=queries, provider="vllm", endpoint=endpoint, **extra)
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("fresh", fn.decay(col("year"), function="gauss", origin=2010, scale=5))
        .map("$score", model_expr)
        .map("$score", fn.num_combine(col("$score"), col("fresh"), mode="weighted", weights=[0.7, 0.3]))
        .map("$score", fn.round_decimal(col("$score"), decimal=4))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(5)
    )


def _issue_expected(query: str, rows: list[Row]) -> list[tuple[int, float]]:
    scored = [(r["id"], round(0.7 * model(query, r) + 0.3 * gauss(r["year"], 2010, 5), 4)) for r in rows]
    return sorted(scored, key=lambda t: (-t[1], t[0]))[:5]


def _multiply_chain(endpoint: str, queries: list[str]) -> FunctionChain:
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("m", fn.rerank_model(col("document"), queries=queries, provider="vllm", endpoint=endpoint))
        .map("f", fn.decay(col("year"), function="exp", origin=2008, scale=4, offset=2, decay=0.3))
        .map("$score", fn.num_combine(col("m"), col("f"), mode="multiply"))
        .sort(col("$score"))
        .limit(4, offset=1)
    )


def _multiply_expected(query: str, rows: list[Row]) -> list[tuple[int, float]]:
    scored = [(r["id"], model(query, r) * exp(r["year"], 2008, 4, 2, 0.3)) for r in rows]
    return sorted(scored, key=lambda t: -t[1])[1:5]  # a stable sort, as Milvus's: ties keep first-stage order


def _avg_chain(endpoint: str, queries: list[str]) -> FunctionChain:
    """The model's score as the distance, the hits in ascending order of another column."""
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=queries, provider="vllm", endpoint=endpoint))
        .map("f", fn.decay(col("year"), function="linear", origin=2005, scale=8, decay=0.2))
        .map("s2", fn.num_combine(col("$score"), col("f"), col("year"), mode="avg"))
        .sort(col("s2"), desc=False, tie_break_col=col("$id"))
        .limit(6)
    )


def _avg_expected(query: str, rows: list[Row]) -> list[tuple[int, float]]:
    keyed = []
    for r in rows:
        m = model(query, r)
        keyed.append(((m + linear(r["year"], 2005, 8, 0, 0.2) + r["year"]) / 3, r["id"], m))
    return [(pk, m) for _, pk, m in sorted(keyed)[:6]]


def _max_min_chain(endpoint: str, queries: list[str]) -> FunctionChain:
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("m", fn.rerank_model(col("document"), queries=queries, provider="vllm", endpoint=endpoint))
        .map("f", fn.decay(col("year"), function="gauss", origin=2003, scale=6, offset=1, decay=0.4))
        .map("hi", fn.num_combine(col("m"), col("f"), mode="max"))
        .map("$score", fn.num_combine(col("hi"), col("m"), col("f"), mode="min"))
        .map("$score", fn.num_combine(col("$score"), col("hi"), mode="sum"))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(3)
    )


def _max_min_expected(query: str, rows: list[Row]) -> list[tuple[int, float]]:
    scored = []
    for r in rows:
        m, f = model(query, r), gauss(r["year"], 2003, 6, 1, 0.4)
        scored.append((r["id"], min(max(m, f), m, f) + max(m, f)))
    return sorted(scored, key=lambda t: (-t[1], t[0]))[:3]


Case = tuple[Callable[[str, list[str]], FunctionChain], Callable[[str, list[Row]], list[tuple[int, float]]]]
CASES: dict[str, Case] = {
    "issue": (_issue_chain, _issue_expected),
    "exp-multiply-offset": (_multiply_chain, _multiply_expected),
    "linear-avg-ascending": (_avg_chain, _avg_expected),
    "max-min-sum": (_max_min_chain, _max_min_expected),
}


def _first_stage(milvus: MilvusClient, queries: list[str], anns_field: str, limit: int) -> list[list[Row]]:
    found = pymilvus.MilvusClient.search(
        milvus, "docs", data=queries, anns_field=anns_field, limit=limit, output_fields=["document", "year"]
    )
    return [[{"id": h["id"], "distance": h["distance"], **h["entity"]} for h in hits] for hits in found]


def _check(res: Any, expected: list[list[tuple[int, float]]], fields: set[str]) -> None:
    assert len(res) == len(expected)
    for hits, want in zip(res, expected, strict=True):
        assert [h["id"] for h in hits] == [pk for pk, _ in want]
        for hit, (_, score) in zip(hits, want, strict=True):
            assert math.isclose(hit["distance"], score, rel_tol=1e-6, abs_tol=1e-6), (hit, score)
            assert set(hit["entity"]) == fields  # the fields the chain read but the caller did not ask for: gone


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("queries", [[Q1], [Q1, Q2]], ids=["nq1", "nq2"])
def test_chains_with_each_expression_and_op(
    case: str, queries: list[str], client: Any, milvus: MilvusClient, server: RerankServer
) -> None:
    build, expected = CASES[case]
    res = client.search(
        "docs",
        data=queries,
        anns_field="dense_vector",
        limit=12,
        output_fields=["document"],
        function_chains=build(server.endpoint, queries),
    )
    rows = _first_stage(milvus, queries, "dense_vector", 12)
    _check(res, [expected(q, r) for q, r in zip(queries, rows, strict=True)], {"document"})
    # The engine did the rerank: one request per query (12 candidates, maxBatch default 64), stats attached.
    assert len(rerank_requests(server)) == len(queries)
    assert res.extra["rerank"].candidates == 12 * len(queries)


def test_bm25_score_and_a_model_column(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    """$score of a BM25 search is the BM25 score (positive, as Milvus gives it to a chain), combined with the
    model's; the fields the chain reads are fetched even when the caller asks for none."""
    chain = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("m", fn.rerank_model(col("document"), queries=[Q1], provider="vllm", endpoint=server.endpoint))
        .map("$score", fn.num_combine(col("$score"), col("m"), mode="weighted", weights=[0.5, 2.0]))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(3)
    )
    res = client.search("docs", data=[Q1], anns_field="sparse_vector", limit=8, function_chains=chain)
    (rows,) = _first_stage(milvus, [Q1], "sparse_vector", 8)
    scored = [(r["id"], 0.5 * abs(r["distance"]) + 2.0 * model(Q1, r)) for r in rows]
    _check(res, [sorted(scored, key=lambda t: (-t[1], t[0]))[:3]], set())


def test_search_round_decimal_and_a_cached_second_search(milvus: MilvusClient, server: RerankServer) -> None:
    chain = _issue_chain(server.endpoint, [Q1], cache=True)  # our score cache (beyond Milvus): same scores
    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=12, output_fields=["document", "year"])
    first = milvus.search("docs", **kw, function_chains=chain, round_decimal=2)
    second = milvus.search("docs", **kw, function_chains=chain)
    (rows,) = _first_stage(milvus, [Q1], "dense_vector", 12)
    want = _issue_expected(Q1, rows)
    assert [(h["id"], h["distance"]) for h in first[0]] == [(pk, round(s, 2)) for pk, s in want]
    _check(second, [want], {"document", "year"})
    assert second.extra["rerank"].cache_hits == 12 and len(rerank_requests(server)) == 1


def test_refusals_before_any_search(milvus: MilvusClient, server: RerankServer) -> None:
    chain = _issue_chain(server.endpoint, [Q1])
    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=5, output_fields=["document"])
    with pytest.raises(RerankParamError, match=r"^function_score and function_chains cannot be used together: "):
        milvus.search("docs", **kw, function_chains=chain, ranker=rerank_function(server.endpoint, [Q1]))
    with pytest.raises(RerankParamError, match=r"^ordinary search supports exactly one function chain: "):
        milvus.search("docs", **kw, function_chains=[chain, chain])
    with pytest.raises(RerankParamError, match=r"^function chain op\[1\] expression rerank_model: rerank_model "):
        milvus.search("docs", data=[Q1, Q2], anns_field="dense_vector", limit=5, function_chains=chain)
    assert rerank_requests(server) == []


def test_a_chain_without_our_model_goes_to_milvus_untouched(milvus: MilvusClient) -> None:
    chain = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("f", fn.decay(col("year"), function="exp", origin=2010, scale=3))
        .map("$score", fn.num_combine(col("$score"), col("f"), mode="multiply"))
        .sort(col("$score"))
        .limit(4)
    )
    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=10, output_fields=["document"])
    ours = milvus.search("docs", **kw, function_chains=chain)
    lite = pymilvus.MilvusClient.search(milvus, "docs", **kw, function_chains=chain)
    assert [(h["id"], h["distance"], h["entity"]) for h in ours[0]] == [
        (h["id"], h["distance"], h["entity"]) for h in lite[0]
    ]
    foreign = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=[Q1], provider="acme"))
        .limit(3)
    )
    with pytest.raises(pymilvus.MilvusException, match="Unknown rerank provider: 'acme'"):
        milvus.search("docs", **kw, function_chains=foreign)


@pytest.fixture(scope="module")
def remote(milvus_server: str, server: RerankServer) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=milvus_server)
    create_docs_collection(client, "chain_docs", server.endpoint, CORPUS)
    client.load_collection("chain_docs")
    yield client
    client.close()


def test_the_issue_chain_on_a_server_uri(remote: MilvusClient, server: RerankServer) -> None:
    queries = [Q1, Q2]
    res = remote.search(
        "chain_docs",
        data=queries,
        anns_field="dense_vector",
        limit=12,
        output_fields=["document"],
        function_chains=_issue_chain(server.endpoint, queries),
    )
    found = pymilvus.MilvusClient.search(
        remote, "chain_docs", data=queries, anns_field="dense_vector", limit=12, output_fields=["document", "year"]
    )
    rows = [[{"id": h["id"], **h["entity"]} for h in hits] for hits in found]
    _check(res, [_issue_expected(q, r) for q, r in zip(queries, rows, strict=True)], {"document"})


def test_hybrid_search_with_a_chain_is_refused(client: Any, server: RerankServer) -> None:
    reqs = [pymilvus.AnnSearchRequest([Q1], "dense_vector", {}, 5)]
    with pytest.raises(RerankParamError, match=r"^function_chains is not supported for hybrid search yet: "):
        client.hybrid_search(
            "docs",
            reqs,
            ranker=rerank_function(server.endpoint, [Q1]),
            limit=3,
            function_chains=_issue_chain(server.endpoint, [Q1]),
        )
    assert rerank_requests(server) == []


def test_a_chain_credential_names_a_configured_entry(tmp_path: Any, server: RerankServer) -> None:
    """Milvus reads a chain's ``credential`` as the name of a configured one; a key written in the chain is
    refused without being echoed."""
    client = MilvusClient(uri=str(tmp_path / "cred.db"), rerank_config={"credential": {"k1": {"apikey": "sk-abc"}}})
    create_docs_collection(client, "docs", server.endpoint, CORPUS)

    def chain(credential: str) -> FunctionChain:
        model_expr = fn.rerank_model(
            col("document"), queries=[Q1], provider="vllm", endpoint=server.endpoint, credential=credential
        )
        return FunctionChain(FunctionChainStage.L2_RERANK).map("$score", model_expr).limit(2)

    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=4)
    assert len(client.search("docs", **kw, function_chains=chain("k1"))[0]) == 2
    assert rerank_requests(server)[-1].headers.get("authorization") == "Bearer sk-abc"
    with pytest.raises(RerankParamError, match=r"^rerank_model credentials must be configured on the server") as err:
        client.search("docs", **kw, function_chains=chain("sk-raw-secret"))
    assert "sk-raw-secret" not in str(err.value)
    client.close()
