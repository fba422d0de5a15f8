"""`vllm-ranker ingest`, `eval` and `bench` end to end on the tiny collection, against the loopback server
(/v1/embeddings with hashed vectors, /v1/rerank with a scripted model) and a Milvus Lite file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from vllm_ranker.cli.main import main
from vllm_ranker.testing import RerankServer


def test_ingest_eval_bench(
    tiny_beir: Path, legs_server: RerankServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = str(tmp_path / "cli.db"), tmp_path / "out"
    common = ["--uri", db, "--endpoint", legs_server.endpoint]

    assert main(["ingest", str(tiny_beir), *common, "--batch-size", "4", "--report", str(out / "ingest.json")]) == 0
    assert "'tiny' at" in capsys.readouterr().out
    assert json.loads((out / "ingest.json").read_text())["count"] == 6
    # Re-running is a no-op.
    assert main(["ingest", str(tiny_beir), *common]) == 0
    assert "0 inserted now, 6 already there" in " ".join(capsys.readouterr().out.split())

    assert main(["eval", str(tiny_beir), *common, "--out", str(out), "--window", "100"]) == 0
    printed = capsys.readouterr().out
    assert "hybrid+rerank" in printed and "nDCG@10" in printed
    report = json.loads((out / "tiny-eval.json").read_text())
    assert report["queries"] == 3 and report["config"]["window"] == 100
    metrics = {p["name"]: p["metrics"] for p in report["pipelines"]}
    assert list(metrics) == ["bm25", "dense", "hybrid", "bm25+rerank", "dense+rerank", "hybrid+rerank"]
    assert metrics["bm25"]["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3, abs=1e-6)
    assert metrics["bm25+rerank"]["MRR@10"] == pytest.approx(2 / 3, abs=1e-6)
    assert (out / "tiny-eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reranks = [r for r in legs_server.requests if r.path.endswith("/rerank")]
    assert reranks and all(r.body["truncate_prompt_tokens"] == -1 for r in reranks)

    bench = [*common, "--out", str(out), "--queries", "2", "--warmup", "1", "--concurrency", "2"]
    assert main(["bench", str(tiny_beir), "--pipeline", "hybrid+rerank", *bench]) == 0
    assert "our share" in capsys.readouterr().out
    timed = json.loads((out / "tiny-bench-hybrid_rerank-c2.json").read_text())
    assert timed["completed"] == 2 and timed["errors"] == [] and timed["concurrency"] == 2
    assert timed["latency_s"]["p50"] > 0 and timed["service_s"]["p50"] > 0 and timed["search_s"]["p50"] > 0
    assert 0 <= timed["overhead_share"] < 1
    parts = sum(timed[k]["mean"] for k in ("search_s", "service_s", "ours_s"))
    assert parts == pytest.approx(timed["latency_s"]["mean"], rel=1e-6)


def test_bad_pipeline_name_says_what_to_use(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", str(tiny_beir), "--pipelines", "bm25,colbert", "--endpoint", "http://127.0.0.1:9"])
    assert code == 1
    assert re.search(
        r"^error: unknown pipeline 'colbert': use one of bm25, dense, hybrid, bm25\+rerank",
        capsys.readouterr().err,
        re.M,
    )
