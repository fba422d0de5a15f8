"""Rescore the TREC run files an ``eval`` report names with pytrec_eval (trec_eval's own code), reading the files
and the qrels here and nothing of the report but its file names, the ids of the queries it evaluated (all judged
ones, or the first N with ``--max-queries``) and its figures, and say how far apart they are.

    python -m vllm_ranker.tools.rescore out/scifact-eval.json ../shared/datasets/scifact/qrels/test.tsv

MRR@10 is trec_eval's ``recip_rank`` of each run's top 10 (trec_eval has no cutoff for it); every evaluated query
counts, a query without results as 0 (``trec_eval -c`` over those queries' qrels).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def read_run_file(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file; ``NAME.gz`` is read where ``NAME`` is not there (the runs committed under docs/eval/)."""
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        text = gzip.decompress(path.with_name(path.name + ".gz").read_bytes()).decode()
    else:
        text = path.read_text()
    run: dict[str, dict[str, float]] = defaultdict(dict)
    for line in text.splitlines():
        if line.strip():
            qid, _q0, doc_id, _rank, score, _tag = line.split()
            run[qid][doc_id] = float(score)
    return dict(run)


def read_qrels_tsv(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC qrels: qid iter docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
            continue  # the BEIR header
        qrels[parts[0]][parts[1]] = int(parts[2])
    return dict(qrels)


def rescore(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    import pytrec_eval

    ranked = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda d: (-d[1], d[0]))[:10]) for q, docs in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = max(len(qrels), 1)
    return {
        "nDCG@10": sum(ranked.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / n,
        "Recall@100": sum(ranked.get(q, {}).get("recall_100", 0.0) for q in qrels) / n,
        "MRR@10": sum(reciprocal.get(q, {}).get("recip_rank", 0.0) for q in qrels) / n,
    }


def check_report(report_path: Path, qrels_path: Path) -> tuple[float, dict[str, dict[str, float]]]:
    """(largest |rescored - reported| over all pipelines and metrics, the rescored metrics by pipeline)."""
    report: dict[str, Any] = json.loads(report_path.read_text())
    qrels = read_qrels_tsv(qrels_path)
    worst, rescored = 0.0, {}
    for pipeline in report["pipelines"]:
        evaluated = pipeline.get("per_query") or qrels  # per_query: one entry per evaluated query id
        judged = {qid: docs for qid, docs in qrels.items() if qid in evaluated}
        got = rescore(read_run_file(report_path.parent / pipeline["run_file"]), judged)
        rescored[pipeline["name"]] = got
        worst = max([worst, *(abs(got[m] - pipeline["metrics"][m]) for m in got)])
    return worst, rescored


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m vllm_ranker.tools.rescore REPORT.json QRELS.tsv\n\n{__doc__}", file=sys.stderr)
        return 2
    worst, rescored = check_report(Path(argv[0]), Path(argv[1]))
    for name, metrics in rescored.items():
        print(f"{name:15s} " + "  ".join(f"{m} {v:.4f}" for m, v in metrics.items()))
    print(f"largest difference from the report: {worst:.1e} ({'within' if worst <= 1e-4 else 'OVER'} 1e-4)")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
