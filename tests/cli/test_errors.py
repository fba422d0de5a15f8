"""Every failure a user can cause, through the real `vllm-ranker` entry point: exit 1 (2 for a flag that cannot
work), one `error:` line on stderr, no traceback; the same command with --debug shows the traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eval.tiny_collection import write_beir
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer

ENTRY = Path(sys.executable).with_name("vllm-ranker")


def command() -> list[str]:
    # The console script pip installed; from a bare source tree, the same main through -m.
    return [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "vllm_ranker.cli.main"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, COLUMNS="200", **(env or {})),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_beir(root / "tiny")
    (root / "table.jsonl").write_text("id,text\n1,a csv saved as jsonl\n")
    (root / "no_id.jsonl").write_text(json.dumps({"text": "no id here"}) + "\n")
    return root


@pytest.fixture(scope="module")
def service() -> Iterator[RerankServer]:
    with RerankServer(embedding_dim=16) as srv:
        yield srv


def expect_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


CASES = {
    "missing corpus": (["ingest", "/nope/corpus.jsonl"], 1, ["no such file", "/nope/corpus.jsonl"]),
    "csv saved as jsonl": (["ingest", "table.jsonl"], 1, ["not a JSON object", "table.jsonl:1"]),
    "missing _id": (["ingest", "no_id.jsonl"], 1, ["no '_id' field", "--id-field"]),
    "ftp uri": (["ingest", "tiny", "--uri", "ftp://x"], 2, ["--uri", "ftp://x"]),
    "unreachable milvus": (["ingest", "tiny", "--uri", "http://127.0.0.1:1"], 1, ["cannot open Milvus at"]),
    "unknown collection": (["eval", "tiny", "--collection", "nope"], 1, ["collection 'nope' not found"]),
    "pipeline typo": (["bench", "tiny", "--pipeline", "hybird"], 2, ["invalid choice: 'hybird'", "hybrid+rerank"]),
    "eval pipeline typo": (["eval", "tiny", "--pipelines", "bm25,hybird"], 1, ["unknown pipeline 'hybird'"]),
    "missing split": (["eval", "tiny", "--split", "dev"], 1, ["no such file", "dev.tsv"]),
    "batch size 0": (["ingest", "tiny", "--batch-size", "0"], 2, ["--batch-size", "must be at least 1"]),
    "concurrency 0": (["bench", "tiny", "--concurrency", "0"], 2, ["--concurrency", "must be at least 1"]),
    "window 0": (["eval", "tiny", "--window", "0"], 2, ["--window", "must be at least 1"]),
    "one collection, two datasets": (["eval", "tiny", "tiny", "--collection", "x"], 2, ["--collection names one"]),
    "no vllm installed": (
        ["ingest", "tiny", "--vllm-venv", "/nope/venv", "--port", "1"],
        1,
        ["No vLLM virtual environment at /nope/venv"],  # the install commands follow, each on its own line
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_is_one_error_line(case: str, workdir: Path) -> None:
    args, code, fragments = CASES[case]
    expect_error(
        run(*args, "--uri", str(workdir / "e.db"), cwd=workdir) if "--uri" not in args else run(*args, cwd=workdir),
        code,
        *fragments,
    )


SERVE_CASES = {
    "same port twice": (["--port", "8500", "--rerank-port", "8500"], 2, ["--rerank-port 8500 is --port"]),
    "missing rerank model directory": (
        ["--rerank-model", "./no/such/dir"],
        1,
        ["rerank model directory ./no/such/dir"],
    ),
}


@pytest.mark.parametrize("case", list(SERVE_CASES))
def test_each_serve_failure_is_one_error_line_before_vllm_starts(case: str, workdir: Path, tmp_path: Path) -> None:
    args, code, fragments = SERVE_CASES[case]
    env = {"VLLM_RANKER_STATE_DIR": str(tmp_path), "VLLM_RANKER_VLLM_VENV": str(tmp_path / "no-venv")}
    expect_error(run("serve", *args, cwd=workdir, env=env), code, *fragments)


@pytest.mark.parametrize("case", ["missing corpus", "unknown collection"])
def test_debug_shows_the_traceback(case: str, workdir: Path) -> None:
    args, _, _ = CASES[case]
    done = run("--debug", *args, "--uri", str(workdir / "e.db"), cwd=workdir)
    assert done.returncode != 0 and "Traceback (most recent call last)" in done.stderr
    env_done = run(*args, "--uri", str(workdir / "e.db"), cwd=workdir, env={"VLLM_RANKER_DEBUG": "1"})
    assert "Traceback (most recent call last)" in env_done.stderr


def test_eval_without_the_extra_names_the_install_command_before_any_work(workdir: Path, tmp_path: Path) -> None:
    # A sitecustomize that makes ir_measures unimportable, as on a machine without the eval extra.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ir_measures':\n"
        "            raise ModuleNotFoundError(\"No module named 'ir_measures'\")\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    started = time.monotonic()
    done = run("eval", "tiny", "--uri", str(workdir / "e.db"), cwd=workdir, env={"PYTHONPATH": pythonpath})
    expect_error(done, 1, "pip install 'vllm-ranker[eval]'")
    print(f"eval without the extra failed in {time.monotonic() - started:.1f} s")


def test_bench_warns_when_it_has_fewer_queries_than_asked(workdir: Path, service: RerankServer) -> None:
    db = str(workdir / "bench.db")
    ingest = run("ingest", "tiny", "--uri", db, "--endpoint", service.endpoint, cwd=workdir)
    assert ingest.returncode == 0, ingest.stderr
    done = run(
        "bench", "tiny", "--uri", db, "--endpoint", service.endpoint, "--pipeline", "bm25", "--queries", "50",
        "--out", str(workdir / "out"), cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stdout and "not --queries 50" in done.stdout


def test_mixing_another_corpus_is_refused_before_any_write(workdir: Path, service: RerankServer) -> None:
    db = str(workdir / "mix.db")
    assert run("ingest", "tiny", "--uri", db, "--endpoint", service.endpoint, cwd=workdir).returncode == 0
    other = workdir / "other.jsonl"
    other.write_text("".join(json.dumps({"_id": f"x{i}", "text": f"other {i}"}) + "\n" for i in range(3)))
    done = run(
        "ingest", "other.jsonl", "--uri", db, "--collection", "tiny", "--endpoint", service.endpoint, cwd=workdir
    )
    expect_error(done, 1, "it holds another corpus", "--collection NAME")
    client = MilvusClient(uri=db)
    try:
        client.load_collection("tiny")
        rows = client.query("tiny", filter='id like "x%"', output_fields=["id"])
    finally:
        client.close()
    assert rows == []


def test_a_beir_corpus_file_names_its_collection_as_its_directory(workdir: Path, service: RerankServer) -> None:
    db = str(workdir / "names.db")
    done = run("ingest", "tiny/corpus.jsonl", "--uri", db, "--endpoint", service.endpoint, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "'tiny'" in done.stdout  # the name eval DIR looks for


def test_ctrl_c_says_how_to_resume_and_resume_works(workdir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "big.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(40)))
    db = str(tmp_path / "ctrlc.db")
    with RerankServer(request_latency=0.3, embedding_dim=16) as slow:
        args = [*command(), "ingest", str(corpus), "--uri", db, "--endpoint", slow.endpoint, "--batch-size", "4"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while len([r for r in slow.requests if r.path.endswith("/embeddings")]) < 3:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130
        assert "interrupted; run the same command again to resume" in err and "Traceback" not in err
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="200"))
        assert done.returncode == 0, done.stderr
        assert "40 documents" in done.stdout and "already there" in done.stdout
