"""Metrics wiring: hand-computed nDCG@10 / Recall@100 / MRR@10, on bare runs and end to end on a tiny collection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.eval.tiny_collection import QRELS, QUERIES
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer
from vllm_ranker.tools.corpus_files import read_corpus, read_qrels, read_queries
from vllm_ranker.tools.embeddings import Embedder
from vllm_ranker.tools.evaluation import METRICS, embed_queries, evaluate, score_run
from vllm_ranker.tools.ingest import ingest
from vllm_ranker.tools.pipelines import RerankConfig, Searcher, parse_pipelines

LOG2_3 = math.log2(3)


def test_score_run_by_hand() -> None:
    qrels = {"a": {"d1": 1, "d2": 1}, "b": {"d3": 2, "d4": 1}, "c": {"d5": 1}}
    run = {
        "a": ["d1", "x", "d2"],  # relevant at ranks 1 and 3
        "b": ["y", "d4", "d3"],  # graded: gain 1 at rank 2, gain 2 at rank 3
        # "c" is missing from the run: it must count as 0, not be dropped from the mean
    }
    means, per_query = score_run(run, qrels)
    ndcg_a = (1 + 1 / 2) / (1 + 1 / LOG2_3)
    ndcg_b = (1 / LOG2_3 + 2 / 2) / (2 + 1 / LOG2_3)
    assert per_query["a"]["nDCG@10"] == pytest.approx(ndcg_a, abs=1e-6)
    assert per_query["b"]["nDCG@10"] == pytest.approx(ndcg_b, abs=1e-6)
    assert per_query["c"] == dict.fromkeys(METRICS, 0.0)
    assert means["nDCG@10"] == pytest.approx((ndcg_a + ndcg_b) / 3, abs=1e-6)
    assert means["MRR@10"] == pytest.approx((1 + 1 / 2 + 0) / 3, abs=1e-6)
    assert means["Recall@100"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-6)


def test_cutoffs_are_applied() -> None:
    qrels = {"q": {"rel": 1}}
    eleventh = {"q": [f"x{i}" for i in range(10)] + ["rel"]}
    means, _ = score_run(eleventh, qrels)
    assert means == {"nDCG@10": 0.0, "Recall@100": 1.0, "MRR@10": 0.0}
    beyond = {"q": [f"x{i}" for i in range(100)] + ["rel"]}
    assert score_run(beyond, qrels)[0]["Recall@100"] == 0.0


def test_order_is_ours_not_doc_id_order() -> None:
    # trec_eval sorts by score and breaks ties by doc id; ranks must reach it as distinct scores.
    qrels = {"q": {"a_relevant": 1}}
    means, _ = score_run({"q": ["z_first", "a_relevant"]}, qrels)
    assert means["MRR@10"] == 0.5


def test_end_to_end_known_answers(tiny_beir: Path, legs_server: RerankServer, tmp_path: Path) -> None:
    client = MilvusClient(uri=str(tmp_path / "e2e.db"))
    try:
        with Embedder(legs_server.endpoint) as embedder:
            ingest(client, "tiny", read_corpus(tiny_beir), embedder, batch_size=4)
            queries, qrels = read_queries(tiny_beir), read_qrels(tiny_beir, "test")
            assert qrels == QRELS and set(queries) == set(QUERIES)
            texts = [queries[q] for q in qrels]
            vectors = dict(zip(qrels, embed_queries(embedder, texts), strict=True))
        rerank = RerankConfig(endpoints=(legs_server.endpoint,), window=100, cache=True)
        searcher = Searcher(client, "tiny", depth=100, rerank=rerank)
        report = evaluate(searcher, parse_pipelines("all"), queries, qrels, vectors, chunk=2)
    finally:
        client.close()
    got = {r.name: r.metrics for r in report.results}
    assert report.queries == 3 and list(got) == [
        "bm25",
        "dense",
        "hybrid",
        "bm25+rerank",
        "dense+rerank",
        "hybrid+rerank",
    ]
    # BM25: q1 at rank 1, q2's relevant document shares no word with it, q3's at rank 2.
    assert got["bm25"]["nDCG@10"] == pytest.approx((1 + 0 + 1 / LOG2_3) / 3, abs=1e-6)
    assert got["bm25"]["MRR@10"] == pytest.approx((1 + 0 + 0.5) / 3, abs=1e-6)
    assert got["bm25"]["Recall@100"] == pytest.approx(2 / 3, abs=1e-6)
    # The scripted model lifts q3's relevant document to rank 1 and cannot bring back what BM25 missed (q2).
    assert got["bm25+rerank"] == pytest.approx(dict.fromkeys(METRICS, 2 / 3), abs=1e-6)
    # Dense (FLAT, 100 > 6 documents) returns every document for every query; so does hybrid's union.
    for name in ("dense", "hybrid", "dense+rerank", "hybrid+rerank"):
        assert got[name]["Recall@100"] == pytest.approx(1.0), name
    # q3's relevant document mentions legs: first for every reranked pipeline that retrieves it.
    for name in ("dense+rerank", "hybrid+rerank"):
        assert report.results[[r.name for r in report.results].index(name)].per_query["q3"]["MRR@10"] == 1.0
    # Shared scores: the pipelines after the first +rerank found their pairs in the score cache.
    totals = {r.name: r.rerank for r in report.results}
    assert totals["bm25+rerank"]["cache_misses"] > 0
    assert totals["hybrid+rerank"]["cache_misses"] == 0 and totals["hybrid+rerank"]["cache_hits"] > 0
