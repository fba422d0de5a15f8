"""Eval reports in the format ``vllm-ranker eval`` writes (``EvalReport.as_dict``), for the evaluation view's tests."""

from __future__ import annotations

from typing import Any

METRICS = ["nDCG@10", "Recall@100", "MRR@10"]


def report(*, per_query: bool = True) -> dict[str, Any]:
    queries = [f"q{i}" for i in range(12)]

    def pipeline(name: str, values: list[float], seconds: float) -> dict[str, Any]:
        # One value per query, shaped per metric (monotonic, so wins and losses agree across metrics).
        shaped = {
            "nDCG@10": values,
            "Recall@100": [min(1.0, v + 0.25) for v in values],
            "MRR@10": [v**0.5 for v in values],
        }
        per = {q: {m: shaped[m][i] for m in METRICS} for i, q in enumerate(queries)} if per_query else {}
        means = {m: sum(shaped[m]) / len(values) for m in METRICS}
        rerank = {"requests": 24.0, "service_seconds": 1.5} if name.endswith("+rerank") else {}
        return {
            "name": name,
            "metrics": means,
            "seconds": seconds,
            "queries": len(queries),
            "rerank": rerank,
            "per_query": per,
        }

    bm25 = [0.2, 0.5, 0.0, 1.0, 0.3, 0.6, 0.1, 0.4, 0.7, 0.2, 0.0, 0.9]
    # bm25+rerank against bm25: 6 wins, 4 ties (q2, q3, q10, q11), 2 losses (q5, q9).
    bm25_rr = [0.6, 0.9, 0.0, 1.0, 0.8, 0.4, 0.5, 0.7, 0.9, 0.1, 0.0, 0.9]
    dense = [0.3, 0.4, 0.2, 0.8, 0.3, 0.5, 0.2, 0.5, 0.6, 0.3, 0.1, 0.7]
    return {
        "collection": "scifact",
        "split": "test",
        "queries": len(queries),
        "metrics": METRICS,
        "config": {"uri": "http://root:pw@milvus:19530", "rerank_provider": "vllm", "window": 100},
        "pipelines": [
            pipeline("bm25", bm25, 1.2),
            pipeline("bm25+rerank", bm25_rr, 9.5),
            pipeline("dense", dense, 2.0),
        ],
    }
