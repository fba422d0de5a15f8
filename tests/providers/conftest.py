"""Fixtures of the provider contract suite: one loopback server per wire format and one small Milvus Lite
collection (INT64 pk, analysed VARCHAR ``document``, 4-d FLOAT_VECTOR ``vec``, BM25 ``sparse``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymilvus
import pytest

from tests.providers.cases import ALL_KEY_ENV, CASES
from vllm_ranker import DataType, Function, FunctionType, MilvusClient
from vllm_ranker.testing import RerankServer, hashed_embedding

COLLECTION = "provider_docs"
DIM = 4
CORPUS = [
    "AI research progress is accelerating in many labs",
    "What is AI? Artificial intelligence explained for beginners",
    "Cats and dogs are popular pets",
    "Renewable energy developments in solar and wind",
    "Research on AI progress and benchmarks",
    "The history of the Python programming language",
    "Machine learning is a subfield of AI research",
    "Wind turbines convert kinetic energy into electricity",
    "Deep learning progress drives AI research forward",
    "Energy storage with batteries for renewable power",
    "Python is popular for AI and data science",
    "Solar panels and renewable energy progress",
    "Training large AI models requires energy",
    "Rerankers reorder search results by relevance",
]


def vector(text: str) -> list[float]:
    """A 4-d bag-of-words vector, never all-zero (COSINE needs a norm)."""
    return [v + 0.05 for v in hashed_embedding(text, DIM)]


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, RerankServer]]:
    started = {case.provider: RerankServer(wire=case.provider).start() for case in CASES}
    yield started
    for srv in started.values():
        srv.stop()


@pytest.fixture(autouse=True)
def _fresh_servers_and_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_KEY_ENV:  # a developer's real keys must not leak into (or change) the tests
        monkeypatch.delenv(name, raising=False)
    if "servers" in request.fixturenames:
        for srv in request.getfixturevalue("servers").values():
            srv.reset()


@pytest.fixture(scope="session")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    path: Path = tmp_path_factory.mktemp("providers") / "providers.db"
    client = MilvusClient(uri=str(path))
    client._test_uri = str(path)  # for a second client on the same file (test_milvus_master.py)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document", DataType.VARCHAR, max_length=1000, enable_analyzer=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["document"], output_field_names=["sparse"]
        )
    )
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    client.insert(COLLECTION, [{"id": i, "document": text, "vec": vector(text)} for i, text in enumerate(CORPUS)])
    client.flush(COLLECTION)
    yield client
    client.close()


class SearchSpy:
    """Counts the Milvus searches actually run (to prove a param error comes before any search)."""

    def __init__(self) -> None:
        self.calls = 0


@pytest.fixture
def search_spy(monkeypatch: pytest.MonkeyPatch) -> SearchSpy:
    spy = SearchSpy()
    original = pymilvus.MilvusClient.search

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        spy.calls += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymilvus.MilvusClient, "search", counting)
    return spy
