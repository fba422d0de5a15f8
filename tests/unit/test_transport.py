"""The transport against the loopback vLLM server: exact requests, batching, mapping, errors, retries.

Every test runs on both transports (sync and async) through the same assertions.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import RerankServiceError, RerankTimeout
from vllm_ranker.core.ordering import Candidate, plan_batches, scatter
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import RerankSpec, parse_ranker
from vllm_ranker.stats import RerankStats
from vllm_ranker.testing import Reply, RerankServer, overlap_score
from vllm_ranker.transport import AsyncTransport, SyncTransport

COLLECTION = CollectionInfo(
    "docs", "id", {"id": FieldInfo("id", DataType.INT64), "document": FieldInfo("document", DataType.VARCHAR)}
)


def make_spec(endpoint: str, **params: Any) -> RerankSpec:
    merged = {"reranker": "model", "provider": "vllm", "endpoint": endpoint, "queries": ["q"]}
    merged.update(params)
    return parse_ranker(
        Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged),
        COLLECTION,
        env={},
    )


@pytest.fixture(params=["sync", "async"])
def rerank(request: pytest.FixtureRequest) -> Iterator[Any]:
    """rerank(spec, queries, docs_per_query) -> (scores per query, stats), on the transport under test."""
    if request.param == "sync":
        transport = SyncTransport(client_limit=16)

        def run(spec: RerankSpec, queries: list[str], docs: list[list[str]]) -> tuple[list[list[float]], RerankStats]:
            cands = [[Candidate(i, d, {}) for i, d in enumerate(ds)] for ds in docs]
            batches = plan_batches(queries, cands, spec.batch_size)
            stats = RerankStats()
            return scatter(batches, transport.rerank(spec, batches, stats), [len(d) for d in docs]), stats

        yield run
        transport.close()
    else:
        loop = asyncio.new_event_loop()
        atransport = AsyncTransport(client_limit=16)

        def run(spec: RerankSpec, queries: list[str], docs: list[list[str]]) -> tuple[list[list[float]], RerankStats]:
            cands = [[Candidate(i, d, {}) for i, d in enumerate(ds)] for ds in docs]
            batches = plan_batches(queries, cands, spec.batch_size)
            stats = RerankStats()
            scores = loop.run_until_complete(atransport.rerank(spec, batches, stats))
            return scatter(batches, scores, [len(d) for d in docs]), stats

        yield run
        loop.run_until_complete(atransport.aclose())
        loop.close()


DOCS = [f"document number {i} about topic {i % 3}" for i in range(10)]


def test_exact_request(server: RerankServer, rerank: Any) -> None:
    spec = make_spec(server.endpoint + "/v1/rerank", truncate_prompt_tokens="256", model_name="BAAI/bge-reranker-base")
    scores, _ = rerank(spec, ["topic 1"], [DOCS[:3]])
    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/v1/rerank")
    assert req.body == {
        "query": "topic 1",
        "documents": DOCS[:3],
        "model": "BAAI/bge-reranker-base",
        "truncate_prompt_tokens": 256,
    }
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    assert scores == [[overlap_score("topic 1", d) for d in DOCS[:3]]]


def test_bearer_only_with_a_key(server: RerankServer, rerank: Any) -> None:
    rerank(make_spec(server.endpoint, credential="sk-test-abc"), ["q"], [["x"]])
    assert server.requests[0].headers["authorization"] == "Bearer sk-test-abc"


def test_batches_by_max_batch_and_maps_out_of_order_answers(server: RerankServer, rerank: Any) -> None:
    spec = make_spec(server.endpoint, maxBatch=4)
    scores, stats = rerank(spec, ["topic 1", "topic 2"], [DOCS, DOCS[:5]])
    sizes = sorted(len(r.body["documents"]) for r in server.requests)
    assert sizes == [1, 2, 4, 4, 4]
    assert stats.requests == 5
    # The server answers best first (out of input order); scores land on the right documents.
    assert scores == [
        [overlap_score("topic 1", d) for d in DOCS],
        [overlap_score("topic 2", d) for d in DOCS[:5]],
    ]


def test_concurrency_is_bounded(rerank: Any) -> None:
    with RerankServer(request_latency=0.05) as slow:
        spec = make_spec(slow.endpoint, maxBatch=1, max_concurrency=3)
        rerank(spec, ["q"], [DOCS])
        assert len(slow.requests) == 10
        assert 2 <= slow.max_in_flight <= 3


@pytest.mark.parametrize(
    ("reply", "pieces"),
    [
        (
            Reply(json_body={"results": [{"index": 0, "relevance_score": 0.5}]}),
            ["call service failed", "sent 2 documents, got 1 results", "missing index [1]"],
        ),
        (
            Reply(json_body={"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}]}),
            ["duplicate index [0]"],
        ),
        (
            Reply(json_body={"results": [{"index": 0, "relevance_score": 0.5}, {"index": 7, "relevance_score": 0.4}]}),
            ["index out of range [7]", "missing index [1]"],
        ),
        (
            Reply(json_body={"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 1}]}),
            ["not a number"],
        ),
        (
            Reply(raw="<html><title>Bad Gateway</title></html>", headers={"Content-Type": "text/html"}),
            ["not JSON", "Bad Gateway"],
        ),
        (
            Reply(400, {"error": {"message": "maximum context length is 512 tokens", "type": "BadRequestError"}}),
            ["call service failed", "HTTP 400", "maximum context length is 512 tokens"],
        ),
        (
            Reply(404, {"error": {"message": "The model `x` does not exist.", "code": 404}}),
            ["HTTP 404", "The model `x` does not exist.", "params['endpoint']"],
        ),
    ],
)
def test_bad_answers_are_clear_errors(server: RerankServer, rerank: Any, reply: Reply, pieces: list[str]) -> None:
    server.script.append(reply)
    with pytest.raises(RerankServiceError) as caught:
        rerank(make_spec(server.endpoint), ["q"], [["a", "b"]])
    for piece in pieces:
        assert piece in str(caught.value)
    assert len(server.requests) == 1  # 4xx and malformed answers are never retried


def test_5xx_is_retried_then_reported(server: RerankServer, rerank: Any) -> None:
    server.script.extend([Reply(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(RerankServiceError) as caught:
        rerank(make_spec(server.endpoint, max_retries=2), ["q"], [["a"]])
    assert "HTTP 500 after 3 tries: boom" in str(caught.value)
    assert caught.value.status == 500
    assert len(server.requests) == 3


def test_503_then_success(server: RerankServer, rerank: Any) -> None:
    server.script.extend([Reply(503, {"error": {"message": "busy"}}), Reply(429, {}, headers={"Retry-After": "0"})])
    scores, stats = rerank(make_spec(server.endpoint), ["q"], [["a q"]])
    assert scores == [[overlap_score("q", "a q")]]
    assert stats.retries == 2 and stats.requests == 3


def test_connection_refused(rerank: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RerankServiceError) as caught:
        rerank(make_spec(f"http://127.0.0.1:{port}", max_retries=1), ["q"], [["a"]])
    assert "call service failed" in str(caught.value)
    assert "connect error after 2 tries" in str(caught.value)
    assert "reachable" in str(caught.value)


def test_deadline_covers_the_whole_call(server: RerankServer, rerank: Any) -> None:
    server.script.append(Reply(200, {"results": []}, action="hang"))
    with pytest.raises(RerankTimeout, match=r"deadline of 0\.3 s"):
        rerank(make_spec(server.endpoint, timeout=0.3), ["q"], [["a"]])


def test_cancelling_an_async_call_cancels_its_requests() -> None:
    """Cancelling the search (here: asyncio.wait_for) stops the rerank: requests out are dropped, no further batch
    is sent, and the client's request slots and HTTP pools are free again."""
    with RerankServer(request_latency=1.0) as slow:
        spec = make_spec(slow.endpoint, maxBatch=1, max_concurrency=2)
        docs = [[f"doc {i}" for i in range(8)]]
        batches = plan_batches(["q"], [[Candidate(i, d, {}) for i, d in enumerate(docs[0])]], spec.batch_size)

        async def main() -> tuple[int, int, list[int]]:
            transport = AsyncTransport(client_limit=4)
            try:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(transport.rerank(spec, batches, RerankStats()), timeout=0.3)
                await asyncio.sleep(1.5)  # long enough for more batches to go out, were any still sent
                return transport.connections(), transport._gate._value, transport._http.busy
            finally:
                await transport.aclose()

        connections, free_slots, busy = asyncio.run(main())
    assert len(rerank_requests_of(slow)) == 2  # the two in flight at the cancel; the other six never sent
    assert connections == 0  # the cancelled requests' connections were closed, not left half-read in the pool
    assert free_slots == 4 and busy == [0]


def test_async_pool_spreads_over_small_shards() -> None:
    """rerank_client_limit=20 -> pools of 8, 8 and 4 connections; 20 requests at once use all of them."""
    with RerankServer(request_latency=0.3) as slow:
        spec = make_spec(slow.endpoint, maxBatch=1, max_concurrency=20)
        cands = [[Candidate(i, f"doc {i}", {}) for i in range(20)]]
        batches = plan_batches(["q"], cands, spec.batch_size)

        async def main() -> tuple[list[int], int]:
            transport = AsyncTransport(client_limit=20)
            try:
                await transport.rerank(spec, batches, RerankStats())
                per_shard = [len(c._transport._pool.connections) for c in transport._http.clients]  # type: ignore[attr-defined]
                return per_shard, transport.connections()
            finally:
                await transport.aclose()

        per_shard, total = asyncio.run(main())
    assert per_shard == [8, 8, 4] and total == 20
    assert slow.max_in_flight == 20


def rerank_requests_of(srv: RerankServer) -> list[Any]:
    return [r for r in srv.requests if r.path.endswith("rerank")]
