"""Many searches sharing ONE client, against ``milvus-lite server`` (a cluster's gRPC path) and the loopback
rerank server: every answer equals the sequential ground truth, nothing leaks, the client-wide cap holds.

- 200 concurrent ``await client.search/hybrid_search`` on one ``AsyncMilvusClient`` (asyncio.gather).
- 32 threads x 50 searches on one ``MilvusClient``, all released at once by a barrier (so the first rerank,
  which creates the client's HTTP pool, is raced by every thread).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.load.workload import Normalised, Search, leak_check, run_async, run_sync, sockets_to
from vllm_ranker import AsyncMilvusClient, MilvusClient
from vllm_ranker.testing import RerankServer

CLIENT_LIMIT = 6  # rerank_client_limit: below the demand of 32 threads / 200 tasks, so the cap really binds
THREADS = 32
PER_THREAD = 50
# Connections are checked exactly (sockets_to: none to the rerank server once the client is closed, as many to
# Milvus as before). The total fd count gets a little headroom: gRPC core opens and closes a few descriptors of
# its own on its own schedule (wake-up fds, resolver), which no client of ours owns. Process-wide one-time
# allocations (gRPC's asyncio poller thread and its 3 sockets) are made before counting, by ``grpc_warmed``.
FD_SLACK = 2


def _port(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1])


def _pool_connections(client: MilvusClient | AsyncMilvusClient) -> int:
    assert client._transport is not None, "the client has not reranked yet"
    return client._transport.connections()


def test_200_concurrent_async_searches_share_one_client(
    milvus_server: str,
    load_server: RerankServer,
    load_searches: list[Search],
    load_truth: list[Normalised],
    grpc_warmed: None,
) -> None:
    load_server.reset()
    to_milvus = sockets_to(_port(milvus_server))
    with leak_check(FD_SLACK) as leaks:

        async def main() -> tuple[list[Normalised], Any, int]:
            client = AsyncMilvusClient(uri=milvus_server, rerank_client_limit=CLIENT_LIMIT)
            try:
                got = await asyncio.gather(*(run_async(client, s) for s in load_searches))
                transport = client._transport
                assert 0 < _pool_connections(client) <= CLIENT_LIMIT
            finally:
                await client.close()
            assert sockets_to(load_server.port) == 0
            assert sockets_to(_port(milvus_server)) == to_milvus
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return list(got), transport, len(pending)

        got, transport, pending = asyncio.run(main())

    assert pending == 0, "tasks still pending on the event loop after the client closed"
    assert transport.is_closed
    assert got == load_truth
    assert 1 < load_server.max_in_flight <= CLIENT_LIMIT
    assert leaks.warnings == []
    assert leaks.fds_after <= leaks.fds_before + FD_SLACK, leaks
    assert leaks.threads_after <= leaks.threads_before, leaks


def test_32_threads_share_one_sync_client(
    milvus_server: str,
    load_server: RerankServer,
    load_searches: list[Search],
    load_truth: list[Normalised],
    grpc_warmed: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_server.reset()
    to_milvus = sockets_to(_port(milvus_server))
    loops: list[object] = []
    real_init = asyncio.BaseEventLoop.__init__

    def counting_init(self: asyncio.BaseEventLoop) -> None:  # every event loop, however made, runs this
        loops.append(self)
        real_init(self)

    monkeypatch.setattr(asyncio.BaseEventLoop, "__init__", counting_init)

    with leak_check(FD_SLACK) as leaks:
        client = MilvusClient(uri=milvus_server, rerank_client_limit=CLIENT_LIMIT)
        start = threading.Barrier(THREADS)
        answers: dict[tuple[int, int], tuple[int, Normalised]] = {}
        failures: list[BaseException] = []

        def worker(t: int) -> None:
            try:
                start.wait()
                for i in range(PER_THREAD):
                    k = (t * PER_THREAD + i * 7) % len(load_searches)  # threads run overlapping searches
                    answers[(t, i)] = (k, run_sync(client, load_searches[k]))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(t,), name=f"load-{t}") for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        transport = client._transport
        assert transport is not None
        assert 0 < _pool_connections(client) <= CLIENT_LIMIT
        client.close()
        # Closing the client closes its HTTP pool: no connection left, client closed, worker pool shut down.
        assert transport.is_closed
        assert transport.connections() == 0
        assert transport._pool._shutdown
        assert sockets_to(load_server.port) == 0
        assert sockets_to(_port(milvus_server)) == to_milvus

    assert failures == []
    assert len(answers) == THREADS * PER_THREAD
    wrong = [(key, k) for key, (k, got) in answers.items() if got != load_truth[k]]
    assert wrong == []
    assert loops == [], "the sync client created an event loop"
    assert 1 < load_server.max_in_flight <= CLIENT_LIMIT
    assert leaks.warnings == []
    assert leaks.fds_after <= leaks.fds_before + FD_SLACK, leaks
    assert leaks.threads_after <= leaks.threads_before, leaks
