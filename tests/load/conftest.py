"""Load-test fixtures: the loopback rerank server with a small latency, and a collection on the
``milvus-lite server`` process (``milvus_server``, tests/conftest.py) with its sequential ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.load.workload import Normalised, Search, check_scores, corpus, create_collection, make_searches, run_sync
from vllm_ranker import AsyncMilvusClient, MilvusClient
from vllm_ranker.testing import RerankServer

# A few ms per request: requests overlap (so the in-flight cap is really exercised) while 2,000 searches still
# finish in seconds on 2 cores.
LATENCY_S = 0.003


@pytest.fixture(scope="module")
def load_server() -> Iterator[RerankServer]:
    with RerankServer(request_latency=LATENCY_S) as srv:
        yield srv


@pytest.fixture(scope="module")
def load_searches(milvus_server: str, load_server: RerankServer) -> list[Search]:
    admin = MilvusClient(uri=milvus_server)
    try:
        create_collection(admin, corpus())
    finally:
        admin.close()
    return make_searches(load_server.endpoint)


@pytest.fixture(scope="module")
def load_truth(milvus_server: str, load_searches: list[Search]) -> list[Normalised]:
    """The same searches run one by one (one sync client, no concurrency between searches) first."""
    client = MilvusClient(uri=milvus_server)
    try:
        truth = [run_sync(client, search) for search in load_searches]
    finally:
        client.close()
    for search, got in zip(load_searches, truth, strict=True):
        check_scores(search, got)
    return truth


@pytest.fixture(scope="module")
def grpc_warmed(milvus_server: str) -> None:
    """One sync and one async round trip before any fd/thread count: gRPC allocates process-wide resources on
    first use (the asyncio poller thread and its 3 sockets, kept for the life of the process), which are not
    a client's leak and would otherwise show up in whichever test runs first."""
    client = MilvusClient(uri=milvus_server)
    try:
        client.list_collections()
    finally:
        client.close()

    async def touch() -> None:
        client = AsyncMilvusClient(uri=milvus_server)
        try:
            await client.list_collections()
        finally:
            await client.close()

    asyncio.run(touch())
