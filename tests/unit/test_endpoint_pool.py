"""Several endpoints: least-outstanding choice, failover, ejection and return after the cool-down.

Real loopback servers (one per endpoint) and both transports; faults are injected by the servers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import RerankServiceError
from vllm_ranker.core.ordering import Candidate, plan_batches, scatter
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import RerankSpec, parse_ranker
from vllm_ranker.providers import Target
from vllm_ranker.stats import RerankStats
from vllm_ranker.testing import Reply, RerankServer, overlap_score
from vllm_ranker.transport import AsyncTransport, SyncTransport
from vllm_ranker.transport.balancer import FAILED, OK, EndpointPool

COLLECTION = CollectionInfo(
    "docs", "id", {"id": FieldInfo("id", DataType.INT64), "document": FieldInfo("document", DataType.VARCHAR)}
)
DOCS = [f"document {i} about topic {i % 4}" for i in range(12)]


def make_spec(endpoints: list[str], **params: Any) -> RerankSpec:
    merged = {"reranker": "model", "provider": "vllm", "endpoints": endpoints, "queries": ["q"], **params}
    return parse_ranker(
        Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged),
        COLLECTION,
        env={},
    )


def closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Runner:
    """rerank(spec, docs) on one transport kept for the whole test (endpoint health lives in it)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "sync":
            self.sync = SyncTransport(client_limit=16)
            self.pool = self.sync.pool
        else:
            self.loop = asyncio.new_event_loop()
            self.atransport = AsyncTransport(client_limit=16)
            self.pool = self.atransport.pool

    def __call__(self, spec: RerankSpec, docs: list[str], query: str = "topic 1") -> tuple[list[float], RerankStats]:
        batches = plan_batches([query], [[Candidate(i, d, {}) for i, d in enumerate(docs)]], spec.batch_size)
        stats = RerankStats()
        if self.kind == "sync":
            scores = self.sync.rerank(spec, batches, stats)
        else:
            scores = self.loop.run_until_complete(self.atransport.rerank(spec, batches, stats))
        return scatter(batches, scores, [len(docs)])[0], stats

    def close(self) -> None:
        if self.kind == "sync":
            self.sync.close()
        else:
            self.loop.run_until_complete(self.atransport.aclose())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    runner = Runner(request.param)
    yield runner
    runner.close()


def test_least_outstanding_spreads_the_load(run: Runner) -> None:
    with RerankServer(request_latency=0.03) as a, RerankServer(request_latency=0.03) as b:
        spec = make_spec([a.endpoint, b.endpoint], maxBatch=1, max_concurrency=4)
        scores, _ = run(spec, DOCS)
        assert scores == [overlap_score("topic 1", d) for d in DOCS]
        # 4 in flight over 2 endpoints: the least loaded one gets each request, so both carry about half (a
        # first-healthy choice would give b nothing). Not exactly 6/6: on a loaded machine completions interleave.
        assert len(a.requests) + len(b.requests) == 12
        assert min(len(a.requests), len(b.requests)) >= 4
        assert a.max_in_flight <= 2 and b.max_in_flight <= 2


def test_a_slow_endpoint_gets_fewer_requests(run: Runner) -> None:
    with RerankServer(request_latency=0.15) as slow, RerankServer(request_latency=0.01) as fast:
        spec = make_spec([slow.endpoint, fast.endpoint], maxBatch=1, max_concurrency=2)
        run(spec, DOCS)
        assert len(fast.requests) > 2 * len(slow.requests)


def test_failover_to_a_live_endpoint_needs_no_retry_budget(run: Runner) -> None:
    dead = closed_endpoint()
    with RerankServer() as live:
        spec = make_spec([dead, live.endpoint], maxBatch=3, max_retries=0)
        scores, stats = run(spec, DOCS)
        assert scores == [overlap_score("topic 1", d) for d in DOCS]
        assert len(live.requests) == 4
        assert stats.failovers == stats.retries and stats.requests == 4 + stats.failovers


def test_5xx_fails_over_and_all_down_is_one_clear_error(run: Runner) -> None:
    with RerankServer() as a, RerankServer() as b:
        a.fault = lambda r: Reply(503, {"error": {"message": "overloaded"}})
        spec = make_spec([a.endpoint, b.endpoint], maxBatch=4, eject_after=100)
        scores, _ = run(spec, DOCS)
        assert scores == [overlap_score("topic 1", d) for d in DOCS]
        assert len(b.requests) == 3
        b.fault = a.fault
        with pytest.raises(RerankServiceError, match="HTTP 503 after 3 tries: overloaded"):
            run(make_spec([a.endpoint, b.endpoint], maxBatch=12, max_retries=2, eject_after=100), DOCS)


def test_ejection_after_consecutive_failures_then_back_after_cool_down(run: Runner) -> None:
    with RerankServer() as a, RerankServer() as b:
        a.fault = lambda r: Reply(500, {"error": {"message": "boom"}})
        spec = make_spec([a.endpoint, b.endpoint], maxBatch=1, max_concurrency=1, eject_after=2, eject_seconds=30)
        run(spec, DOCS)
        assert len(a.requests) == 2  # two consecutive failures, then it is left out
        assert run.pool.is_ejected(a.endpoint + "/rerank")
        a.reset()
        run(spec, DOCS)  # the next call of the same client also leaves it out
        assert a.requests == [] and len(b.requests) == 24

    with RerankServer() as a, RerankServer() as b:
        a.fault = lambda r: Reply(500, {"error": {"message": "boom"}})
        spec = make_spec([a.endpoint, b.endpoint], maxBatch=1, max_concurrency=1, eject_after=1, eject_seconds=0.05)
        run(spec, DOCS[:1])
        assert len(a.requests) <= 1
        threading.Event().wait(0.1)  # past the cool-down
        a.fault = None
        a.reset()
        run(spec, DOCS)
        assert a.requests  # back in rotation


def test_all_ejected_still_tries_the_first_to_recover() -> None:
    clock = [0.0]
    pool = EndpointPool(clock=lambda: clock[0])
    targets = [Target("http://a/rerank", None), Target("http://b/rerank", None)]
    for url, at in (("http://a/rerank", 0.0), ("http://b/rerank", 1.0)):
        clock[0] = at
        chosen = pool.acquire(targets, avoid={t.url for t in targets if t.url != url})
        assert chosen.url == url
        pool.release(targets, url, FAILED, eject_after=1, cooldown=10)
    assert pool.is_ejected("http://a/rerank") and pool.is_ejected("http://b/rerank")
    assert pool.acquire(targets).url == "http://a/rerank"  # its cool-down ends first
    pool.release(targets, "http://a/rerank", OK, eject_after=1, cooldown=10)
    assert pool.outstanding("http://a/rerank") == 0


def test_pool_is_consistent_under_threads() -> None:
    pool = EndpointPool()
    targets = [Target(f"http://e{i}/rerank", None) for i in range(3)]

    def work() -> None:
        for _ in range(500):
            target = pool.acquire(targets)
            pool.release(targets, target.url, OK, eject_after=3, cooldown=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(pool.outstanding(t.url) == 0 for t in targets)


def test_cancelled_async_call_gives_its_endpoint_slot_back() -> None:
    async def scenario() -> None:
        transport = AsyncTransport(client_limit=8)
        try:
            with RerankServer(request_latency=5) as a, RerankServer(request_latency=5) as b:
                spec = make_spec([a.endpoint, b.endpoint], maxBatch=1)
                batches = plan_batches(["q"], [[Candidate(i, d, {}) for i, d in enumerate(DOCS)]], 1)
                task = asyncio.create_task(transport.rerank(spec, batches, RerankStats()))
                await asyncio.sleep(0.3)
                assert transport.pool.outstanding(a.endpoint + "/rerank") > 0
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert transport.pool.outstanding(a.endpoint + "/rerank") == 0
                assert transport.pool.outstanding(b.endpoint + "/rerank") == 0
        finally:
            await transport.aclose()

    asyncio.run(scenario())
