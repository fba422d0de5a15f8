"""What `serve` decides before any vLLM starts, without a vLLM: which reranker (a directory, the Hugging Face cache,
the fallback to the embedder), what kind of model it is, and the rerank port's forwarder when one model does both."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from vllm_ranker.local_servers import free_port
from vllm_ranker.local_vllm import (
    BI_ENCODER,
    CROSS_ENCODER,
    DEFAULT_RERANK_MODEL,
    FALLBACK_NOTE,
    UNKNOWN,
    model_kind,
    plan_reranker,
    served_model_kind,
)
from vllm_ranker.local_vllm import pair as pair_module
from vllm_ranker.testing import RerankServer


def model_dir(root: Path, architecture: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    return root


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def test_offline_without_cache_falls_back_with_one_line(hf_home: Path) -> None:
    plan = plan_reranker(None)
    assert plan.model is None and plan.kind == BI_ENCODER
    assert plan.note is not None and "\n" not in plan.note
    assert plan.note.startswith(f"{DEFAULT_RERANK_MODEL} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    assert plan.note.endswith(FALLBACK_NOTE)


def test_a_cached_hub_model_is_served_from_its_snapshot(hf_home: Path) -> None:
    repo = hf_home / "hub" / "models--cross-encoder--ms-marco-MiniLM-L-6-v2"
    snapshot = model_dir(repo / "snapshots" / "abc123", "BertForSequenceClassification")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    plan = plan_reranker(None)
    assert (plan.model, plan.served_name, plan.kind, plan.note) == (
        str(snapshot),
        DEFAULT_RERANK_MODEL,
        CROSS_ENCODER,
        None,
    )
    assert model_kind(DEFAULT_RERANK_MODEL) == CROSS_ENCODER


def test_a_directory_and_same(tmp_path: Path, hf_home: Path) -> None:
    cross = model_dir(tmp_path / "ce", "BertForSequenceClassification")
    plan = plan_reranker(str(cross))
    assert (plan.model, plan.kind, plan.note) == (str(cross.resolve()), CROSS_ENCODER, None)
    embedder = model_dir(tmp_path / "emb", "BertModel")
    assert model_kind(embedder) == BI_ENCODER and model_kind(tmp_path / "nothing") == UNKNOWN
    same = plan_reranker("same")
    assert same.model is None and same.note is not None and same.note.endswith(FALLBACK_NOTE)


class _Models(BaseHTTPRequestHandler):
    root = ""

    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "m", "root": self.root}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_server() -> Iterator[tuple[str, type[_Models]]]:
    handler = type("Handler", (_Models,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_served_model_kind_reads_the_root_vllm_lists(
    tmp_path: Path, models_server: tuple[str, type[_Models]], hf_home: Path
) -> None:
    url, handler = models_server
    handler.root = str(model_dir(tmp_path / "ce", "XLMRobertaForSequenceClassification"))
    assert served_model_kind(url) == ("m", CROSS_ENCODER)
    handler.root = "/somewhere/on/another/machine"
    assert served_model_kind(url) == ("m", UNKNOWN)
    assert served_model_kind("http://127.0.0.1:9")[1] == UNKNOWN  # nothing there


def test_the_forwarder_answers_the_rerank_port_and_ends_with_its_server() -> None:
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    port = free_port()
    with RerankServer(embedding_dim=8) as target:
        host_port = target.endpoint.rsplit("/", 1)[-1]
        argv = [sys.executable, str(pair_module._FORWARDER), "--listen", f"127.0.0.1:{port}", "--target", host_port]
        forwarder = subprocess.Popen([*argv, "--watch-pid", str(watched.pid)])
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    reply = httpx.post(url + "/v1/rerank", json={"query": "a", "documents": ["a", "b c"]}, timeout=5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the forwarder never answered"
                    time.sleep(0.1)
            assert reply.status_code == 200 and len(reply.json()["results"]) == 2
            assert [r.path for r in target.requests][-1] == "/v1/rerank"
            watched.kill()
            watched.wait()
            assert forwarder.wait(timeout=10) == 0  # its embedder is gone: so is it
        finally:
            watched.kill()
            forwarder.kill()
            forwarder.wait()
