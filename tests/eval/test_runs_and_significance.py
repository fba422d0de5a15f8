"""What makes `eval` checkable: TREC run files that an independent scorer (pytrec_eval, reading the files) rescores to
the reported metrics, each +rerank compared with its own first stage (wins/ties/losses, SciPy p-values), a window
below the scoring depth that keeps the first stage's tail, several datasets in one call, and the reranker's kind."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest
import pytrec_eval
from scipy import stats

from tests.eval.tiny_collection import write_beir
from vllm_ranker import MilvusClient
from vllm_ranker.cli.main import main
from vllm_ranker.testing import RerankServer
from vllm_ranker.tools import rescore as rescore_module
from vllm_ranker.tools.comparison import compare, write_run_file
from vllm_ranker.tools.corpus_files import read_corpus, read_qrels
from vllm_ranker.tools.embeddings import Embedder
from vllm_ranker.tools.ingest import ingest

PIPELINES = ["bm25", "dense", "hybrid", "bm25+rerank", "dense+rerank", "hybrid+rerank"]


def read_run(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file as pytrec_eval takes it, parsed here (not by our code)."""
    run: dict[str, dict[str, float]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        qid, q0, doc, rank, score, tag = line.split()
        assert q0 == "Q0" and int(rank) >= 1 and tag
        run[qid][doc] = float(score)
    return dict(run)


def rescore(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 by trec_eval's code (pytrec_eval); every judged query counts."""
    ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    # trec_eval's recip_rank has no cutoff: MRR@10 is recip_rank of the top 10 (by score, ties by doc id).
    top10 = {q: dict(sorted(docs.items(), key=lambda d: (-d[1], d[0]))[:10]) for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)
    return {
        "nDCG@10": sum(ndcg.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / n,
        "Recall@100": sum(ndcg.get(q, {}).get("recall_100", 0.0) for q in qrels) / n,
        "MRR@10": sum(rr.get(q, {}).get("recip_rank", 0.0) for q in qrels) / n,
    }


@pytest.fixture
def two_datasets(tmp_path: Path, legs_server: RerankServer) -> tuple[list[Path], str]:
    roots = [write_beir(tmp_path / "tiny"), write_beir(tmp_path / "tiny_two")]
    db = str(tmp_path / "runs.db")
    client = MilvusClient(uri=db)
    try:
        with Embedder(legs_server.endpoint) as embedder:
            for root in roots:
                ingest(client, root.name, read_corpus(root), embedder, batch_size=4)
    finally:
        client.close()
    return roots, db


def test_eval_writes_run_files_an_independent_scorer_reproduces(
    two_datasets: tuple[list[Path], str],
    legs_server: RerankServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    roots, db = two_datasets
    out = tmp_path / "out"
    # Window 2, below the scoring depth (100): each +rerank reranks 2 and keeps the rest of its first stage.
    argv = ["eval", *map(str, roots), "--uri", db, "--endpoint", legs_server.endpoint, "--out", str(out)]
    assert main([*argv, "--window", "2"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "reranker: " in printed and "unknown model kind" in printed
    assert "Summary: nDCG@10 over 2 datasets" in printed and "W/T/L" in printed

    for root in roots:
        report = json.loads((out / f"{root.name}-eval.json").read_text())
        assert report["rerank_model_kind"] == "unknown" and report["config"]["rerank_model_kind"] == "unknown"
        qrels = read_qrels(root, "test")
        by_name = {p["name"]: p for p in report["pipelines"]}
        assert list(by_name) == PIPELINES
        for name, pipeline in by_name.items():
            run_file = out / pipeline["run_file"]
            assert run_file.name == f"{root.name}-{name.replace('+', '_')}.trec"
            rescored = rescore(read_run(run_file), qrels)
            for metric, value in pipeline["metrics"].items():
                assert rescored[metric] == pytest.approx(value, abs=1e-4), (root.name, name, metric)
        # The packaged checker (python -m vllm_ranker.tools.rescore) agrees: what docs/evaluation.md runs on SciFact.
        assert rescore_module.main([str(out / f"{root.name}-eval.json"), str(root / "qrels" / "test.tsv")]) == 0
        assert rescore_module.check_report(out / f"{root.name}-eval.json", root / "qrels" / "test.tsv")[0] <= 1e-4
        # The tail: dense (FLAT) returns all 6 documents; dense+rerank reranks 2 and keeps the other 4 after them.
        dense_rerank = read_run(out / by_name["dense+rerank"]["run_file"])
        assert all(len(docs) == 6 for docs in dense_rerank.values())
        for name in ("bm25", "dense", "hybrid"):
            reranked = by_name[f"{name}+rerank"]
            assert reranked["metrics"]["Recall@100"] == by_name[name]["metrics"]["Recall@100"]
            c = reranked["vs_first_stage"]
            assert c["wins"] + c["ties"] + c["losses"] == 3 and c["metric"] == "nDCG@10"
            assert by_name[name]["vs_first_stage"] is None
        # bm25+rerank lifts q3's relevant document (rank 2 -> 1) and changes nothing else: one win, two ties.
        assert by_name["bm25+rerank"]["vs_first_stage"]["wins"] == 1
        assert by_name["bm25+rerank"]["vs_first_stage"]["losses"] == 0

    # --max-queries: the report and the packaged checker average over the same first N queries (not all judged).
    part = tmp_path / "part"
    assert main([*argv[:-2], "--out", str(part), "--window", "2", "--max-queries", "2"]) == 0
    for root in roots:
        report_path = part / f"{root.name}-eval.json"
        assert json.loads(report_path.read_text())["queries"] == 2
        assert rescore_module.check_report(report_path, root / "qrels" / "test.tsv")[0] <= 1e-4
        # Gzipped run files (as committed under docs/eval/) are read in place of missing plain ones.
        for run_file in part.glob(f"{root.name}-*.trec"):
            run_file.with_name(run_file.name + ".gz").write_bytes(gzip.compress(run_file.read_bytes()))
            run_file.unlink()
        assert rescore_module.check_report(report_path, root / "qrels" / "test.tsv")[0] <= 1e-4


def test_run_file_columns_and_tail_order(tmp_path: Path) -> None:
    path = write_run_file(tmp_path / "r.trec", {"q1": ["b", "a", "c"], "q2": []}, "bm25+rerank")
    assert path.read_text().splitlines() == [
        "q1 Q0 b 1 3 bm25+rerank",
        "q1 Q0 a 2 2 bm25+rerank",
        "q1 Q0 c 3 1 bm25+rerank",
    ]


def test_compare_counts_and_takes_p_values_from_scipy() -> None:
    base = {f"q{i}": {"nDCG@10": v} for i, v in enumerate([0.1, 0.5, 0.3, 0.9, 0.2, 0.4])}
    new = {f"q{i}": {"nDCG@10": v} for i, v in enumerate([0.3, 0.5, 0.6, 0.8, 0.5, 0.7])}
    c = compare(base, new)
    assert (c["wins"], c["ties"], c["losses"]) == (4, 1, 1)
    a, b = [base[q]["nDCG@10"] for q in base], [new[q]["nDCG@10"] for q in base]
    assert c["p_ttest"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert c["mean_delta"] == pytest.approx((sum(b) - sum(a)) / 6)
    # Six pairs: 2^6 = 64 sign patterns, so the randomisation test is exact; 0 < p <= 1.
    assert c["p_randomisation"] is not None and 0 < c["p_randomisation"] <= 1
    same = compare(base, base)
    assert (same["ties"], same["p_ttest"], same["p_randomisation"]) == (6, None, None)
