"""The UI's fixtures: the loopback rerank/embeddings server, Milvus Lite files holding the collections of
collections.py, and the app under test.

``ui_db`` is built in this process (its collections stay loaded); ``reopened_db`` is built by another process that
has exited, so that here, as for every file a user opens, each of its collections is released.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.collections import DIM, build_collections, build_elsewhere
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer, milvus_lite_server


@pytest.fixture(scope="session")
def rerank() -> Iterator[RerankServer]:
    with RerankServer(embedding_dim=DIM) as srv:
        yield srv


@pytest.fixture(scope="session")
def ui_db(tmp_path_factory: pytest.TempPathFactory, rerank: RerankServer) -> str:
    path: Path = tmp_path_factory.mktemp("ui-milvus") / "ui.db"
    client = MilvusClient(uri=str(path))
    try:
        build_collections(client, rerank.endpoint)
    finally:
        client.close()
    return str(path)


@pytest.fixture
def reopened_db(tmp_path: Path, rerank: RerankServer) -> str:
    return build_elsewhere(tmp_path / "reopened.db", rerank.endpoint)


@pytest.fixture(scope="session")
def released_server(tmp_path_factory: pytest.TempPathFactory, rerank: RerankServer) -> Iterator[str]:
    """``milvus-lite server`` (a Milvus server's protocol) whose collections are all released at the start. Shared:
    each test that loads one loads a collection of its own (test_browser python_docs, test_milvus_states ingested)."""
    folder = tmp_path_factory.mktemp("ui-server")
    Path(build_elsewhere(folder / "made.db", rerank.endpoint)).rename(folder / "db")  # the folder it serves
    with milvus_lite_server(folder) as uri:
        yield uri


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port (a real HTTP server, as ``vllm-ranker ui`` runs it); yields
    its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="session")
def ui_url(ui_db: str, rerank: RerankServer) -> Iterator[str]:
    """The page over the test collections, shared by the HTTP and the browser tests."""
    from vllm_ranker.ui.app import create_app

    with serve(create_app(ui_db, rerank.endpoint)) as url:
        yield url


@pytest.fixture(scope="session")
def http(ui_url: str) -> Iterator[httpx.Client]:
    # POSTs carry JSON's content type, as the page's own fetch() does (the server refuses others: guard.py).
    with httpx.Client(base_url=ui_url, timeout=60, headers={"Content-Type": "application/json"}) as client:
        yield client


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "rerank" in request.fixturenames:
        request.getfixturevalue("rerank").reset()
