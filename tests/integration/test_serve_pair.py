"""`vllm-ranker serve` runs two models for two jobs, against REAL vLLM servers.

* The two-process path: the packaged all-MiniLM-L6-v2 as the embedder and the tests' tiny cross-encoder as the
  reranker (`--rerank-model DIR`), detached; one PID file per process, one `--stop` for both; `demo` against them
  shows a rerank order that differs from the dense order.
* The fallback, offline (HF_HUB_OFFLINE=1, an empty HF_HOME): the default cross-encoder cannot be had, so ONE vLLM
  runs, the rerank port reaches it, and serve says so in one line.

Each module fixture costs vLLM starts (25-80 s each on 2 CPUs): three in all.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.integration.test_serve import DOCS, QUERY, cli_env, group_gone, wait_until
from tests.integration.vllm_server import START_TIMEOUT_S
from vllm_ranker.local_servers import port_in_use
from vllm_ranker.local_vllm import VLLMInstall, is_healthy, server_process_alive
from vllm_ranker.testing import process_guard

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
READY = re.compile(r"ready at (http://127\.0\.0\.1:(\d+)) \(embeddings\) and (http://127\.0\.0\.1:(\d+)) \(rerank\)")


def serve(
    *args: str, state_dir: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllm_ranker.cli.main", "serve", *args],
        env={**cli_env(state_dir), "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Served:
    embeddings: str
    rerank: str
    port: int
    rerank_port: int
    pids: list[int]
    state_dir: Path
    stdout: str
    stderr: str


def start_detached(state: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    started = time.monotonic()
    wait = ["--timeout", str(START_TIMEOUT_S)]  # per server; a busy 2-core machine can need more than serve's 600 s
    done = serve(
        "--port", "0", "--rerank-port", "0", "--detach", *wait, *args,
        state_dir=state, env=env, timeout=2 * START_TIMEOUT_S + 120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"serve --detach became healthy in {time.monotonic() - started:.1f} s")
    found = READY.search(done.stdout)
    assert found, done.stdout
    port, rerank_port = int(found.group(2)), int(found.group(4))
    pids = [int((state / f"vllm-{p}.pid").read_text()) for p in (port, rerank_port)]
    for pid in pids:  # detached: nobody's children now, so an interrupted run must know them (see process_guard)
        process_guard.guard(pid, f"serve --detach ({state})")
    return Served(found.group(1), found.group(3), port, rerank_port, pids, state, done.stdout, done.stderr)


def stop_all(served: Served) -> None:
    serve("--stop", "--port", str(served.port), "--rerank-port", str(served.rerank_port), state_dir=served.state_dir)
    for pid in served.pids:
        if not group_gone(pid):
            os.killpg(pid, signal.SIGKILL)
        process_guard.release(pid)


@pytest.fixture(scope="module")
def served_pair(
    vllm_install: VLLMInstall, tiny_cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("serve-pair")
    served = start_detached(state, "--rerank-model", str(tiny_cross_encoder_dir), "--vllm-venv", str(vllm_install.venv))
    try:
        yield served
    finally:
        stop_all(served)


@pytest.mark.vllm
def test_serve_runs_an_embedder_and_a_cross_encoder(served_pair: Served, tiny_cross_encoder_dir: Path) -> None:
    served = served_pair
    assert served.port != served.rerank_port and all(server_process_alive(pid) for pid in served.pids)
    assert f"{served.embeddings}/v1/embeddings" in served.stdout and f"{served.rerank}/v1/rerank" in served.stdout
    assert "reranker:   cross-encoder" in served.stdout and "note:" not in served.stderr
    stop = f"vllm-ranker serve --stop --port {served.port} --rerank-port {served.rerank_port}"
    assert stop in served.stdout
    models = {
        url: httpx.get(url + "/v1/models", timeout=10).json()["data"] for url in (served.embeddings, served.rerank)
    }
    assert [m["id"] for m in models[served.embeddings]] == [MINILM]
    assert [m["root"] for m in models[served.rerank]] == [str(tiny_cross_encoder_dir.resolve())]
    vectors = httpx.post(served.embeddings + "/v1/embeddings", json={"model": MINILM, "input": ["x"]}, timeout=60)
    assert len(vectors.json()["data"][0]["embedding"]) == 384
    reply = httpx.post(served.rerank + "/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=60)
    assert reply.status_code == 200, reply.text
    scores = [r["relevance_score"] for r in reply.json()["results"]]
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)  # a sigmoid per pair: not a cosine


@pytest.mark.vllm
def test_serve_refuses_a_second_server_on_a_taken_port(served_pair: Served, vllm_install: VLLMInstall) -> None:
    done = serve(
        "--port", str(served_pair.rerank_port), "--vllm-venv", str(vllm_install.venv), state_dir=served_pair.state_dir
    )
    assert done.returncode == 1
    assert "error: a vllm-ranker server" in done.stderr and "already runs on port" in done.stderr


@pytest.mark.vllm
def test_demo_with_the_cross_encoder_reorders_the_dense_hits(served_pair: Served, tmp_path: Path) -> None:
    demo = ["demo", "--uri", str(tmp_path / "demo.db"), "--docs", "200", "--query", "parse a url"]
    demo += ["--endpoint", served_pair.embeddings, "--rerank-endpoint", served_pair.rerank]
    done = subprocess.run(
        [sys.executable, "-m", "vllm_ranker.cli.main", *demo],
        env={**cli_env(served_pair.state_dir), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "reranker: cross-encoder" in out
    dense = out[out.index("search on dense_vector") : out.index("hybrid_search")]
    # The dense call: a bi-encoder's rerank would keep the vector order; the cross-encoder's does not.
    assert "query 1: the rerank changed the order" in dense, dense


@pytest.mark.vllm
def test_serve_stop_stops_both(served_pair: Served) -> None:
    served = served_pair
    done = serve(
        "--stop", "--port", str(served.port), "--rerank-port", str(served.rerank_port), state_dir=served.state_dir
    )
    assert done.returncode == 0, done.stderr
    for pid, port in zip(served.pids, (served.port, served.rerank_port), strict=True):
        assert f"Stopped vLLM (pid {pid})" in done.stdout
        assert not (served.state_dir / f"vllm-{port}.pid").exists()
        assert wait_until(partial(group_gone, pid), 30), "vLLM processes survived --stop"
        assert not port_in_use("127.0.0.1", port)


@pytest.mark.vllm
def test_offline_serve_falls_back_to_the_embedder_and_says_so(vllm_install: VLLMInstall, tmp_path: Path) -> None:
    empty_home = tmp_path / "hf-home"
    empty_home.mkdir()
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(empty_home)}
    offline.update({k: "" for k in ("HF_HUB_CACHE", "TRANSFORMERS_CACHE") if k in os.environ})
    served = start_detached(tmp_path / "state", "--vllm-venv", str(vllm_install.venv), env=offline)
    try:
        notes = [line for line in served.stderr.splitlines() if line.startswith("note:")]
        assert len(notes) == 1, served.stderr
        assert "cross-encoder/ms-marco-MiniLM-L-6-v2 is not in the Hugging Face cache" in notes[0]
        assert (
            "reranking with a bi-encoder only re-sorts by the same cosine; give --rerank-model DIR|HUB_ID" in notes[0]
        )
        assert "reranker:   bi-encoder" in served.stdout
        # One vLLM: the rerank port is a forwarder to the embedder, answering both jobs.
        assert is_healthy(served.rerank)
        models = httpx.get(served.rerank + "/v1/models", timeout=10).json()["data"]
        assert [m["id"] for m in models] == [MINILM]
        reply = httpx.post(served.rerank + "/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=60)
        assert [r["index"] for r in reply.json()["results"]] == [1, 2, 0]  # cosine: Paris, Brasilia, horses
    finally:
        stop_all(served)
    assert all(wait_until(partial(group_gone, pid), 30) for pid in served.pids)
    assert not any((tmp_path / "state").glob("vllm-*.pid"))
