"""The remote path: a Milvus server URI (``milvus-lite server`` on loopback speaks a cluster's gRPC protocol)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CORPUS, create_docs_collection, rerank_function, rerank_requests
from vllm_ranker import AnnSearchRequest, MilvusClient
from vllm_ranker.testing import RerankServer, overlap_score


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``milvus-lite server`` process on loopback; yields its URI."""
    exe = Path(sys.executable).with_name("milvus-lite")
    command = [str(exe) if exe.exists() else shutil.which("milvus-lite") or "milvus-lite"]
    port = _free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [*command, "server", "--data-dir", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"milvus-lite server exited: {(data / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("milvus-lite server did not listen within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def remote(milvus_server: str, server: RerankServer) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=milvus_server)
    create_docs_collection(client, "docs", server.endpoint, CORPUS)
    client.load_collection("docs")
    yield client
    client.close()


def test_seed_snippets_on_a_server_uri(remote: MilvusClient, server: RerankServer) -> None:
    queries = ["AI Research Progress", "What is AI"]
    fn = rerank_function(server.endpoint, queries, maxBatch=3)
    res = remote.search(
        "docs", data=queries, anns_field="sparse_vector", limit=5, output_fields=["document"], ranker=fn
    )
    for q, query in enumerate(queries):
        got = [(h["id"], h["distance"]) for h in res[q]]
        scores = {pk: d for pk, d in got}
        assert [pk for pk, _ in got] == sorted(scores, key=lambda pk: (-scores[pk], pk))
        assert all(abs(d - overlap_score(query, CORPUS[pk])) < 1e-6 for pk, d in got)
    assert len(rerank_requests(server)) == 4  # 5 candidates per query in batches of 3
    reqs = [AnnSearchRequest(queries, "dense_vector", {}, 4), AnnSearchRequest(queries, "sparse_vector", {}, 4)]
    hybrid = remote.hybrid_search("docs", reqs, ranker=fn, limit=3)
    assert [len(h) for h in hybrid] == [3, 3]
