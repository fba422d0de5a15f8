"""Memory stays flat: a rerank holds the batches in flight plus the result, not every request body.

tracemalloc's peak while reranking 1,000 and then 10,000 candidates of 2 KB each. Bodies built all at once
would cost >= 2 KB per candidate (18 MB more for the larger call); the bound allows 400 bytes per extra
candidate, which the scores (the result) and the batch plan fit in with room to spare. The service runs in
its own process so that its own allocations (it records every request) are not counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker.core.ordering import Candidate, plan_batches, scatter
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.stats import RerankStats
from vllm_ranker.transport import AsyncTransport, SyncTransport

SERVE = (
    "import sys\n"
    "from vllm_ranker.testing import RerankServer\n"
    "srv = RerankServer(score=lambda q, d: float(len(d) % 7))\n"
    "srv.requests = type('NoLog', (list,), {'append': lambda self, item: None})()\n"
    "with srv:\n"
    "    print(srv.endpoint, flush=True)\n"
    "    sys.stdin.read()\n"
)
DOCUMENT = "rerank " * 300  # ~2 KB, one shared object: the input costs nothing per candidate


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.stdout.close()
        process.wait(timeout=10)


def peak_bytes(kind: str, endpoint: str, n: int) -> int:
    function = Function(
        name="r",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "endpoint": endpoint, "queries": ["q"], "maxBatch": 32},
    )
    info = CollectionInfo(
        "c", "id", {"id": FieldInfo("id", DataType.INT64), "document": FieldInfo("document", DataType.VARCHAR)}
    )
    spec = parse_ranker(function, info, env={})
    candidates = [[Candidate(i, DOCUMENT, {}) for i in range(n)]]

    def work(transport: Any, candidates: list[list[Candidate]] = candidates) -> Any:
        batches = plan_batches(["q"], candidates, spec.batch_size)
        stats = RerankStats()
        if kind == "sync":
            return scatter(batches, transport.rerank(spec, batches, stats), [len(candidates[0])])
        return scatter(batches, loop.run_until_complete(transport.rerank(spec, batches, stats)), [len(candidates[0])])

    loop = asyncio.new_event_loop()
    transport: Any = SyncTransport(client_limit=8) if kind == "sync" else AsyncTransport(client_limit=8)
    try:
        work(transport, [candidates[0][:256]])  # warm: connections, threads, lazy imports
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        scores = work(transport)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert len(scores[0]) == n
        return peak
    finally:
        if kind == "sync":
            transport.close()
        else:
            loop.run_until_complete(transport.aclose())
        loop.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_peak_memory_grows_with_the_result_not_the_bodies(service: str, kind: str) -> None:
    small = peak_bytes(kind, service, 1_000)
    large = peak_bytes(kind, service, 10_000)
    extra = large - small
    assert extra < 9_000 * 400, f"peak {small / 1e6:.1f} MB -> {large / 1e6:.1f} MB for 9,000 more candidates"
