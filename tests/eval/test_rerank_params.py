"""`vllm-ranker eval --rerank-params JSON`: the params reach the RERANK Function of the +rerank pipelines (the
stand-in sees chunks, not whole documents), and a bad JSON or a param the ranker refuses is one error: line before
any pipeline runs (the stand-in sees no rerank request)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.tiny_collection import DOCS
from vllm_ranker.cli.main import main
from vllm_ranker.testing import RerankServer


def test_chunk_params_reach_the_rerank_requests(
    tiny_beir: Path,
    legs_server: RerankServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ingested_tiny: list[str],
) -> None:
    common = ingested_tiny
    params = '{"chunk": {"words": 4, "overlap": 1}, "fuse": {"method": "rrf"}}'
    out = tmp_path / "out"
    args = ["eval", str(tiny_beir), *common, "--pipelines", "bm25+rerank", "--out", str(out), "--rerank-params"]
    assert main([*args, params]) == 0
    documents = [d for r in legs_server.requests if r.path.endswith("/rerank") for d in r.body["documents"]]
    # The long okapi document (30 words) is a candidate of "okapi": whole, the stand-in would see it in one piece.
    assert max(len(text.split()) for _, text in DOCS.values()) > 4
    assert documents and all(len(d.split()) <= 4 for d in documents)
    assert any("legs" in d for d in documents)
    report = json.loads((out / "tiny-eval.json").read_text())
    assert report["config"]["rerank_params"] == json.loads(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"chunk": {"words": 0}}', "error: chunk.words: 0 must be >= 1"),
        ('{"fuse": {"method": "max"}}', "error: fuse"),
        ('{"chunk": ', "error: --rerank-params is not valid JSON"),
        ('["chunk"]', "error: --rerank-params must be a JSON object"),
        ('{"maxBatch": 4}', "error: --rerank-params: maxBatch is set by the command: use --max-batch"),
    ],
)
def test_a_bad_rerank_param_is_one_error_line_before_any_search(
    tiny_beir: Path,
    legs_server: RerankServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    params: str,
    message: str,
    ingested_tiny: list[str],
) -> None:
    common = ingested_tiny
    code = main(["eval", str(tiny_beir), *common, "--rerank-params", params])  # all six pipelines
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not [r for r in legs_server.requests if r.path.endswith("/rerank")]  # nothing reranked
