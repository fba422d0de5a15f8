"""The evaluation view's data: a ``vllm-ranker eval`` JSON report checked and reduced to what the page draws.

Per-pipeline means (nDCG@10, Recall@100, MRR@10) for the bars, and for each ``X+rerank`` pipeline whose first stage
``X`` is in the same report with per-query values (for a variant ``X+rerank:NAME``, its ``baseline``: the plain
``X+rerank``): how many queries the rerank won, tied and lost, and each query's change, sorted (the page draws them
as a strip). A report that is not one is refused in words, never half drawn.
"""

from __future__ import annotations

import math
from typing import Any

from .compare import without_userinfo

KNOWN_METRICS = ("nDCG@10", "Recall@100", "MRR@10")
SUFFIX = "+rerank"
TIE = 1e-9  # metric values are means of trec_eval floats: smaller differences are rounding, not a win


class ReportError(ValueError):
    """The uploaded file is not a report written by ``vllm-ranker eval``."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReportError(f"not a vllm-ranker eval report: {where} is {value!r}, not a finite number")
    return float(value)


def _pipelines(report: dict[str, Any], metrics: list[str]) -> list[dict[str, Any]]:
    raw = report.get("pipelines")
    if not isinstance(raw, list) or not raw:
        raise ReportError("not a vllm-ranker eval report: it has no 'pipelines' list (write one with vllm-ranker eval)")
    out = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(p.get("metrics"), dict):
            raise ReportError(f"not a vllm-ranker eval report: pipeline #{i + 1} has no name and metrics")
        name = p["name"]
        values = {m: _number(p["metrics"].get(m), f"{name}'s {m}") for m in metrics}
        per_query: dict[str, dict[str, float]] = {}
        if isinstance(p.get("per_query"), dict):
            for qid, qv in p["per_query"].items():
                if isinstance(qv, dict):
                    per_query[str(qid)] = {m: _number(qv.get(m, 0.0), f"{name}'s {m} of query {qid}") for m in metrics}
        seconds = p.get("seconds")
        baseline = p.get("baseline")
        out.append(
            {
                "name": name,
                "baseline": baseline if isinstance(baseline, str) else None,
                "metrics": values,
                "seconds": float(seconds) if isinstance(seconds, (int, float)) else None,
                "queries": int(p.get("queries") or len(per_query)),
                "per_query": per_query,
            }
        )
    return out


def summarize(report: Any) -> dict[str, Any]:
    """What the page draws for ``report`` (the parsed JSON); raises ReportError in words when it is not one."""
    if not isinstance(report, dict):
        raise ReportError("not a vllm-ranker eval report: the file is JSON but not an object")
    listed = report.get("metrics")
    metrics = [m for m in listed if isinstance(m, str)] if isinstance(listed, list) else list(KNOWN_METRICS)
    if not metrics:
        raise ReportError("not a vllm-ranker eval report: its 'metrics' list is empty")
    pipelines = _pipelines(report, metrics)
    by_name = {p["name"]: p for p in pipelines}
    pairs = []
    for p in pipelines:
        # The report names what each pipeline is compared with (eval's --variant); older reports do not.
        if p["baseline"] is not None:
            base = by_name.get(p["baseline"])
        else:
            base = by_name.get(p["name"].removesuffix(SUFFIX)) if p["name"].endswith(SUFFIX) else None
        if base is None or not p["per_query"] or not base["per_query"]:
            continue
        pairs.append(_pair(base, p, metrics))
    return {
        "collection": str(report.get("collection", "")),
        "split": str(report.get("split", "")),
        "queries": int(report.get("queries") or 0),
        "metrics": metrics,
        "config": _config(report.get("config")),
        "pipelines": [{k: v for k, v in p.items() if k != "per_query"} for p in pipelines],
        "pairs": pairs,
    }


def _config(raw: Any) -> dict[str, Any]:
    """The run's settings as the report has them, less anything named like a key and any URL's user-info."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): without_userinfo(v) if isinstance(v, str) else v
        for k, v in raw.items()
        if "key" not in str(k).lower() and "token" not in str(k).lower()
    }


def _pair(base: dict[str, Any], reranked: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"base": base["name"], "reranked": reranked["name"], "by_metric": {}}
    # Queries judged for both: a query missing on one side scored 0 there (eval counts every judged query).
    qids = sorted(set(base["per_query"]) | set(reranked["per_query"]))
    for metric in metrics:
        deltas = []
        for qid in qids:
            before = base["per_query"].get(qid, {}).get(metric, 0.0)
            after = reranked["per_query"].get(qid, {}).get(metric, 0.0)
            deltas.append({"query": qid, "before": before, "after": after, "delta": after - before})
        deltas.sort(key=lambda d: (-d["delta"], d["query"]))
        out["by_metric"][metric] = {
            "wins": sum(d["delta"] > TIE for d in deltas),
            "losses": sum(d["delta"] < -TIE for d in deltas),
            "ties": sum(abs(d["delta"]) <= TIE for d in deltas),
            "deltas": deltas,
        }
    return out
