"""`vllm-ranker eval --variant NAME=JSON` and `--rerank-field`: each variant is one more +rerank pipeline whose
RERANK Function takes its params too (the stand-in sees what it reads), compared with the plain +rerank (W/T/L and
p-values against it, in the table and the JSON); a bad variant is one error: line before anything is reranked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.tiny_collection import DOCS
from vllm_ranker.cli.main import main
from vllm_ranker.testing import RerankServer
from vllm_ranker.tools.comparison import compare


def _documents(server: RerankServer) -> set[str]:
    return {d for r in server.requests if r.path.endswith("/rerank") for d in r.body["documents"]}


def test_variants_run_beside_the_plain_rerank_and_are_compared_with_it(
    tiny_beir: Path,
    legs_server: RerankServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ingested_tiny: list[str],
) -> None:
    common = ingested_tiny
    out = tmp_path / "out"
    code = main(
        [
            "eval", str(tiny_beir), *common, "--pipelines", "bm25,bm25+rerank", "--out", str(out),
            "--rerank-field", "body",
            "--variant", 'title={"document_template": "{title}: {body}"}',
            "--variant", 'rrf={"fuse": {"method": "rrf", "k": 1}}',
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "bm25+rerank:title" in printed and "vs" in printed
    # The plain rerank read the body alone (ingest keeps it beside title + body); the variant its template.
    seen = _documents(legs_server)
    bodies = {body for _, body in DOCS.values()}
    templated = {f"{title}: {body}" for title, body in DOCS.values()}
    assert seen & bodies and seen & templated
    assert seen <= bodies | templated
    report = json.loads((out / "tiny-eval.json").read_text())
    results = {p["name"]: p for p in report["pipelines"]}
    assert list(results) == ["bm25", "bm25+rerank", "bm25+rerank:title", "bm25+rerank:rrf"]
    assert report["config"]["rerank_field"] == "body"
    assert report["config"]["variants"]["bm25+rerank:rrf"] == {"fuse": {"method": "rrf", "k": 1}}
    assert results["bm25+rerank:title"]["params"] == {"document_template": "{title}: {body}"}
    plain = results["bm25+rerank"]
    assert plain["baseline"] == "bm25" and plain["vs_baseline"] == plain["vs_first_stage"]
    for name in ("bm25+rerank:title", "bm25+rerank:rrf"):
        variant = results[name]
        assert variant["baseline"] == "bm25+rerank"
        assert variant["vs_baseline"] == compare(plain["per_query"], variant["per_query"])
        assert variant["vs_first_stage"] == compare(results["bm25"]["per_query"], variant["per_query"])
        assert (out / variant["run_file"]).is_file() and ":" not in variant["run_file"]
    # Fused with BM25's ranks, the order differs from the model's alone: the variant is really another ranking,
    # not the plain one under another name.
    runs = {n: (out / results[n]["run_file"]).read_text().split("\n") for n in ("bm25+rerank", "bm25+rerank:rrf")}
    assert runs["bm25+rerank"] != runs["bm25+rerank:rrf"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "title"], "error: --variant 'title': give NAME=JSON"),
        (["--variant", "t={"], "error: --variant t is not valid JSON"),
        (["--variant", 't={"maxBatch": 2}'], "error: --variant t: maxBatch is set by the command"),
        (["--variant", "t={}", "--variant", "t={}"], "error: --variant 't' is given twice"),
        (["--variant", "a b={}"], "error: variant name 'a b'"),
        (["--pipelines", "bm25", "--variant", "t={}"], "error: --variant applies to +rerank pipelines"),
        (["--variant", 't={"document_template": "{abstract}"}'], "error: document_template"),
        (["--variant", 't={"chunk": {"words": 2, "overlap": 2}}'], "error: chunk"),
        (["--rerank-field", "nope"], "error: "),
    ],
)
def test_a_bad_variant_is_one_error_line_before_anything_is_reranked(
    tiny_beir: Path,
    legs_server: RerankServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
    ingested_tiny: list[str],
) -> None:
    common = ingested_tiny
    out = tmp_path / "out"
    code = main(["eval", str(tiny_beir), *common, "--out", str(out), *args])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not _documents(legs_server)  # nothing reranked
    assert not out.exists()  # no report
