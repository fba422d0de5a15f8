"""`vllm-ranker bench --rerank-params JSON`: a param the ranker refuses is one `error:` line, through the real entry
point, before anything is timed: no warm-up or measured search reaches the rerank service, no progress bar, no
table, no JSON report (as `eval` refuses it: tests/eval/test_rerank_params.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_errors import expect_error, run
from tests.eval.tiny_collection import write_beir
from vllm_ranker.testing import RerankServer

PIPELINE = "bm25+rerank"


@pytest.fixture(scope="module")
def service() -> Iterator[RerankServer]:
    with RerankServer(embedding_dim=16) as srv:
        yield srv


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, service: RerankServer) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("bench")
    write_beir(root / "tiny")
    db = str(root / "bench.db")
    done = run("ingest", "tiny", "--uri", db, "--endpoint", service.endpoint, cwd=root)
    assert done.returncode == 0, done.stderr
    return root, db


def _bench(root: Path, db: str, service: RerankServer, out: Path, *extra: str) -> list[str]:
    return [
        "bench", "tiny", "--uri", db, "--endpoint", service.endpoint, "--pipeline", PIPELINE, "--queries", "2",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _reranks(service: RerankServer) -> int:
    return len([r for r in service.requests if r.path.endswith("rerank")])


@pytest.mark.parametrize("warmup", ["0", "1"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"chunk": {"words": 0}}', "error: chunk.words: 0 must be >= 1"),
        ('{"fuse": {"method": "max"}}', "error: fuse"),
    ],
)
def test_a_refused_rerank_param_is_one_error_line_before_any_timing(
    ingested: tuple[Path, str], service: RerankServer, tmp_path: Path, params: str, message: str, warmup: str
) -> None:
    root, db = ingested
    out = tmp_path / "out"
    service.requests.clear()
    done = run(*_bench(root, db, service, out, "--warmup", warmup, "--rerank-params", params), cwd=root)
    expect_error(done, 1)
    error = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert error.startswith(message), done.stderr
    assert _reranks(service) == 0  # refused by the client before its first-stage search: nothing reranked
    assert f"{PIPELINE} x1" not in done.stdout and "q/s" not in done.stdout, done.stdout  # no progress, no table
    assert not out.exists()  # no report


def test_accepted_rerank_params_are_benched(ingested: tuple[Path, str], service: RerankServer, tmp_path: Path) -> None:
    root, db = ingested
    out = tmp_path / "out"
    service.requests.clear()
    params = '{"chunk": {"words": 4, "overlap": 1}}'
    done = run(*_bench(root, db, service, out, "--warmup", "1", "--rerank-params", params), cwd=root)
    assert done.returncode == 0, done.stderr
    assert "error:" not in done.stderr
    (report,) = out.glob("*.json")
    assert '"completed": 2' in report.read_text()
    assert _reranks(service) >= 3  # the warm-up and the two measured queries at least (chunks may add batches)
