"""POST /api/eval: a ``vllm-ranker eval`` report reduced to what the evaluation view draws, or refused in words."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.ui.reports import METRICS, report


def test_report_gives_bars_and_wins_losses(http: Any) -> None:
    answer = http.post("/api/eval", content=json.dumps(report())).json()
    assert answer["collection"] == "scifact" and answer["queries"] == 12 and answer["metrics"] == METRICS
    assert [p["name"] for p in answer["pipelines"]] == ["bm25", "bm25+rerank", "dense"]
    assert all("per_query" not in p for p in answer["pipelines"])  # the bars need the means only
    assert math.isclose(answer["pipelines"][1]["metrics"]["nDCG@10"], 6.8 / 12)
    (pair,) = answer["pairs"]  # dense has no dense+rerank in this report
    assert (pair["base"], pair["reranked"]) == ("bm25", "bm25+rerank")
    ndcg = pair["by_metric"]["nDCG@10"]
    assert (ndcg["wins"], ndcg["ties"], ndcg["losses"]) == (6, 4, 2)
    deltas = [d["delta"] for d in ndcg["deltas"]]
    assert deltas == sorted(deltas, reverse=True) and ndcg["deltas"][0]["query"] == "q4"
    assert answer["config"] == {"uri": "http://milvus:19530", "rerank_provider": "vllm", "window": 100}


def test_a_variant_is_paired_with_its_plain_rerank(http: Any) -> None:
    body = report()
    plain = body["pipelines"][1]
    variant = dict(plain, name="bm25+rerank:title", baseline="bm25+rerank")
    # One query better than the plain rerank (q2: 0.0 -> 1.0), one worse (q0: 0.6 -> 0.1), the rest tied.
    variant["per_query"] = {q: dict(v) for q, v in plain["per_query"].items()}
    variant["per_query"]["q2"] = dict.fromkeys(METRICS, 1.0)
    variant["per_query"]["q0"] = dict.fromkeys(METRICS, 0.1)
    body["pipelines"].append(variant)
    plain["baseline"] = "bm25"
    answer = http.post("/api/eval", content=json.dumps(body)).json()
    pairs = {(p["base"], p["reranked"]): p for p in answer["pairs"]}
    assert set(pairs) == {("bm25", "bm25+rerank"), ("bm25+rerank", "bm25+rerank:title")}
    ndcg = pairs[("bm25+rerank", "bm25+rerank:title")]["by_metric"]["nDCG@10"]
    assert (ndcg["wins"], ndcg["ties"], ndcg["losses"]) == (1, 10, 1)


def test_report_without_per_query_values_has_no_pairs(http: Any) -> None:
    answer = http.post("/api/eval", content=json.dumps(report(per_query=False))).json()
    assert answer["pairs"] == [] and len(answer["pipelines"]) == 3


def test_config_keys_naming_a_key_are_left_out(http: Any) -> None:
    body = report()
    body["config"]["api_key"] = "sk-123"
    answer = http.post("/api/eval", content=json.dumps(body)).json()
    assert "api_key" not in answer["config"] and "sk-123" not in json.dumps(answer)


def _broken(change: Any) -> dict[str, Any]:
    body = report()
    change(body)
    return body


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>", "the request is not JSON"),
        (b"[1, 2]", "the file is JSON but not an object"),
        (json.dumps({"collection": "x"}).encode(), "it has no 'pipelines' list"),
        (
            json.dumps(_broken(lambda b: b["pipelines"][0].pop("metrics"))).encode(),
            "pipeline #1 has no name and metrics",
        ),
        (
            json.dumps(_broken(lambda b: b["pipelines"][1]["metrics"].update({"MRR@10": "high"}))).encode(),
            "bm25+rerank's MRR@10 is 'high', not a finite number",
        ),
        (json.dumps(_broken(lambda b: b.update(metrics=[]))).encode(), "its 'metrics' list is empty"),
    ],
)
def test_not_a_report_is_refused_in_words(http: Any, content: bytes, message: str) -> None:
    answer = http.post("/api/eval", content=content)
    assert answer.status_code == 400 and message in answer.json()["error"]
