"""Shared fixtures: one loopback rerank/embeddings server and one embedded Milvus Lite per test session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from vllm_ranker import AsyncMilvusClient, DataType, Function, FunctionType, MilvusClient
from vllm_ranker.testing import RerankServer, milvus_lite_server, process_guard
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

DIM = 16


# Under CI the property tests (the front fuzz, the chain differential) draw the same examples every run: a red CI
# then means a change broke something, never that this run happened to draw a rare case. Locally they draw new
# examples each run (and replay past failures from .hypothesis/), which is where new bugs are found.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    # An interrupted run (Ctrl-C, a SIGTERM to pytest) stops the servers it started instead of leaving them behind.
    process_guard.install()


CORPUS = [
    "AI research progress is accelerating in many labs",
    "What is AI? Artificial intelligence explained for beginners",
    "Cats and dogs are popular pets",
    "Renewable energy developments in solar and wind",
    "AI AI AI",
    "Research on AI progress and benchmarks",
    "The history of the Python programming language",
    "Machine learning is a subfield of AI research",
    "Wind turbines convert kinetic energy into electricity",
    "Dogs need daily walks and exercise",
    "Deep learning progress drives AI research forward",
    "Energy storage with batteries for renewable power",
    "Python is popular for AI and data science",
    "Solar panels and renewable energy progress",
    "Training large AI models requires energy",
    "",  # an empty document is sent as it is
]


def rerank_function(endpoint: str, queries: list[str] | None = None, **params: Any) -> Function:
    merged: dict[str, Any] = {"reranker": "model", "provider": "vllm", "endpoint": endpoint}
    if queries is not None:
        merged["queries"] = queries
    merged.update(params)
    return Function(
        name="vllm_semantic_ranker",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params=merged,
    )


def create_docs_collection(client: MilvusClient, name: str, endpoint: str, rows: list[str]) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("category", DataType.VARCHAR, max_length=32)
    schema.add_field("note", DataType.VARCHAR, max_length=32, nullable=True)
    schema.add_field("year", DataType.INT64)
    # Milvus Lite's TEXTEMBEDDING pointed at the loopback /v1/embeddings, so that text queries work on the dense
    # field exactly as in the seed document.
    add_text_fields(
        schema, embeddings_url=endpoint + "/v1", model="loopback", dim=DIM, max_length=4000, send_dimensions=True
    )
    index = text_index_params(client, dense_index="FLAT")
    client.create_collection(name, schema=schema, index_params=index)
    if rows:
        client.insert(
            name,
            [
                {
                    "id": i,
                    "document": text,
                    "category": "ai" if "AI" in text else "other",
                    "note": None,
                    "year": 2000 + i,
                }
                for i, text in enumerate(rows)
            ],
        )
        client.flush(name)


@pytest.fixture(scope="session")
def server() -> Iterator[RerankServer]:
    with RerankServer(embedding_dim=DIM) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_server(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory, server: RerankServer) -> Iterator[MilvusClient]:
    path: Path = tmp_path_factory.mktemp("milvus") / "test.db"
    client = MilvusClient(uri=str(path))
    client._test_uri = str(path)
    create_docs_collection(client, "docs", server.endpoint, CORPUS)
    create_docs_collection(client, "empty", server.endpoint, [])
    yield client
    client.close()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``milvus-lite server`` process on loopback (a cluster's gRPC protocol); yields its URI.
    Shared by the remote-path tests (tests/milvus) and the load tests (tests/load)."""
    with milvus_lite_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


def rerank_requests(srv: RerankServer) -> list[Any]:
    return [r for r in srv.requests if r.path.endswith("rerank")]


class AsyncAsSync:
    """Drives ``vllm_ranker.AsyncMilvusClient`` from sync tests, so one test body checks both clients."""

    def __init__(self, client: AsyncMilvusClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run_until_complete(self._client.search(*args, **kwargs))

    def hybrid_search(self, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run_until_complete(self._client.hybrid_search(*args, **kwargs))


@pytest.fixture(scope="session")
def async_milvus(milvus: MilvusClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsyncAsSync]:
    loop = asyncio.new_event_loop()
    client = AsyncMilvusClient(uri=milvus._test_uri)
    yield AsyncAsSync(client, loop)
    loop.run_until_complete(client.close())
    loop.close()


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, milvus: MilvusClient) -> Any:
    """The client under test: the sync MilvusClient or the AsyncMilvusClient (same tests, both clients)."""
    if request.param == "sync":
        return milvus
    return request.getfixturevalue("async_milvus")
