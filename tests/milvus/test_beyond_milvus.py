"""The opt-in params beyond Milvus, end to end on Milvus Lite and the loopback vLLM server, on both clients.

Score cache, rerank_window, score_normalization/min_score, on_failure=passthrough, several endpoints, the
stats record and logging. Faults are injected through the loopback server (scripted replies, a closed port).
"""

from __future__ import annotations

import logging
import math
import socket
import uuid
from typing import Any

import numpy as np
import pymilvus
import pytest

from tests.conftest import CORPUS, rerank_function, rerank_requests
from vllm_ranker import AnnSearchRequest, MilvusClient, RerankParamError, RerankServiceError
from vllm_ranker.testing import Reply, RerankServer, overlap_score

DENSE = {"anns_field": "dense_vector", "output_fields": ["document"]}


def truth(query: str, pks: list[int]) -> list[tuple[int, float]]:
    scored = [(pk, float(np.float32(overlap_score(query, CORPUS[pk])))) for pk in pks]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def first_stage(milvus: MilvusClient, data: list[str], limit: int, **kwargs: Any) -> Any:
    return pymilvus.MilvusClient.search(milvus, "docs", data=data, anns_field="dense_vector", limit=limit, **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pairs(hits: Any) -> list[tuple[int, float]]:
    return [(h["id"], h["distance"]) for h in hits]


# -- score cache ----------------------------------------------------------------------------------------------


def test_cache_sends_only_misses_and_counts_hits(client: Any, server: RerankServer) -> None:
    query = f"AI research {uuid.uuid4().hex}"  # a query no other test (or run) has cached
    fn = rerank_function(server.endpoint, [query], cache=True, maxBatch=3)
    first = client.search("docs", data=["AI research progress"], limit=4, ranker=fn, **DENSE)
    sent_first = sorted(d for r in rerank_requests(server) for d in r.body["documents"])
    assert len(sent_first) == 4
    assert first.extra["rerank"].cache_misses == 4 and first.extra["rerank"].cache_hits == 0

    server.reset()
    second = client.search("docs", data=["AI research progress"], limit=6, ranker=fn, **DENSE)
    stats = second.extra["rerank"]
    sent_second = [d for r in rerank_requests(server) for d in r.body["documents"]]
    assert (stats.cache_hits, stats.cache_misses) == (4, 2)
    assert len(sent_second) == 2 and not set(sent_second) & set(sent_first)  # only the two new documents
    assert pairs(second[0]) == truth(query, [h["id"] for h in second[0]])  # cached scores are the same scores

    server.reset()
    again = client.search("docs", data=["AI research progress"], limit=6, ranker=fn, **DENSE)
    assert rerank_requests(server) == [] and again.extra["rerank"].cache_hits == 6
    assert pairs(again[0]) == pairs(second[0])


def test_cache_is_off_by_default_and_keyed_by_scoring_options(client: Any, server: RerankServer) -> None:
    query = f"energy {uuid.uuid4().hex}"
    plain = rerank_function(server.endpoint, [query])
    for _ in range(2):
        client.search("docs", data=["energy"], limit=3, ranker=plain, **DENSE)
    assert len(rerank_requests(server)) == 2  # no cache unless asked for

    server.reset()
    cached = rerank_function(server.endpoint, [query], cache="true")
    truncated = rerank_function(server.endpoint, [query], cache="true", truncate_prompt_tokens=8)
    named = rerank_function(server.endpoint, [query], cache="true", model_name="other-model")
    for fn in (cached, truncated, named, cached, truncated, named):
        client.search("docs", data=["energy"], limit=3, ranker=fn, **DENSE)
    # Each scoring configuration is its own cache entry: three misses, then three hits.
    assert len(rerank_requests(server)) == 3


def test_cache_ttl_expires_entries(client: Any, server: RerankServer) -> None:
    import time

    query = f"python {uuid.uuid4().hex}"
    fn = rerank_function(server.endpoint, [query], cache=True, cache_ttl=0.2)
    client.search("docs", data=["python"], limit=2, ranker=fn, **DENSE)
    client.search("docs", data=["python"], limit=2, ranker=fn, **DENSE)
    assert len(rerank_requests(server)) == 1
    time.sleep(0.3)
    res = client.search("docs", data=["python"], limit=2, ranker=fn, **DENSE)
    assert len(rerank_requests(server)) == 2 and res.extra["rerank"].cache_misses == 2


# -- rerank_window ----------------------------------------------------------------------------------------------


def test_rerank_window_reranks_n_and_pages_after(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    query = "AI research progress"
    fn = rerank_function(server.endpoint, [query], rerank_window=10, maxBatch=4)
    res = client.search("docs", data=[query], limit=3, offset=2, ranker=fn, **DENSE)
    window = [h["id"] for h in first_stage(milvus, [query], 10)[0]]
    sent = [d for r in rerank_requests(server) for d in r.body["documents"]]
    assert sorted(sent) == sorted(CORPUS[pk] for pk in window)  # the whole window, offset ignored at retrieval
    assert pairs(res[0]) == truth(query, window)[2:5]  # offset and limit applied after reranking


def test_rerank_window_smaller_than_the_page_is_refused(client: Any, server: RerankServer) -> None:
    fn = rerank_function(server.endpoint, ["AI"], rerank_window="4")
    with pytest.raises(RerankParamError, match=r"rerank_window: 4 must be >= offset \+ limit \(2 \+ 3 = 5\)"):
        client.search("docs", data=["AI"], limit=3, offset=2, ranker=fn, **DENSE)
    assert rerank_requests(server) == []


def test_rerank_window_caps_the_hybrid_union(client: Any, milvus: MilvusClient, server: RerankServer) -> None:
    query = "renewable energy progress"
    reqs = [
        AnnSearchRequest(data=[query], anns_field="dense_vector", param={}, limit=6),
        AnnSearchRequest(data=[query], anns_field="sparse_vector", param={}, limit=6),
    ]
    res = client.hybrid_search("docs", reqs, ranker=rerank_function(server.endpoint, rerank_window=5), limit=2)
    sent = [d for r in rerank_requests(server) for d in r.body["documents"]]
    assert len(sent) == 5
    assert len(res[0]) == 2
    with pytest.raises(RerankParamError, match="rerank_window: 5 must be >= offset"):
        client.hybrid_search("docs", reqs, ranker=rerank_function(server.endpoint, rerank_window=5), limit=6)


# -- scores -----------------------------------------------------------------------------------------------------


def test_normalizations_keep_the_model_order(client: Any, server: RerankServer) -> None:
    query = "AI research progress"
    raw = client.search("docs", data=[query], limit=6, ranker=rerank_function(server.endpoint), **DENSE)
    sig = client.search(
        "docs", data=[query], limit=6, ranker=rerank_function(server.endpoint, score_normalization="sigmoid"), **DENSE
    )
    mm = client.search(
        "docs", data=[query], limit=6, ranker=rerank_function(server.endpoint, score_normalization="MinMax"), **DENSE
    )
    assert raw[0].ids == sig[0].ids == mm[0].ids
    assert [h["distance"] for h in sig[0]] == pytest.approx(
        [1 / (1 + math.exp(-h["distance"])) for h in raw[0]], rel=1e-6
    )
    distances = [h["distance"] for h in mm[0]]
    assert distances[0] == 1.0 and distances[-1] == 0.0 and distances == sorted(distances, reverse=True)


def test_min_score_drops_hits_after_normalisation(client: Any, server: RerankServer) -> None:
    query = "AI research progress"
    raw = client.search("docs", data=[query], limit=8, ranker=rerank_function(server.endpoint), **DENSE)
    cut = raw[0][2]["distance"]  # keep the top 3 (scores are distinct: tie-breaker jitter)
    kept = client.search("docs", data=[query], limit=8, ranker=rerank_function(server.endpoint, min_score=cut), **DENSE)
    assert pairs(kept[0]) == pairs(raw[0])[:3]
    normalised = client.search(
        "docs",
        data=[query],
        limit=8,
        ranker=rerank_function(server.endpoint, score_normalization="minmax", min_score="1.0"),
        **DENSE,
    )
    assert normalised[0].ids == raw[0].ids[:1]


def test_min_score_is_applied_before_window_paging(client: Any, server: RerankServer) -> None:
    query = "AI research progress"
    full = client.search(
        "docs", data=[query], limit=8, ranker=rerank_function(server.endpoint, rerank_window=8), **DENSE
    )
    cut = full[0][3]["distance"]  # four hits pass the threshold
    page2 = client.search(
        "docs",
        data=[query],
        limit=3,
        offset=3,
        ranker=rerank_function(server.endpoint, rerank_window=8, min_score=cut),
        **DENSE,
    )
    assert pairs(page2[0]) == pairs(full[0])[3:4]  # the page is cut from the hits that passed


# -- on_failure -------------------------------------------------------------------------------------------------


def test_passthrough_returns_first_stage_order_flagged(
    client: Any, milvus: MilvusClient, server: RerankServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.fault = lambda r: Reply(500, {"error": {"message": "GPU fell off the bus"}}) if "rerank" in r.path else None
    fn = rerank_function(
        server.endpoint, ["AI research"], on_failure="passthrough", max_retries=1, credential="sk-passthrough-secret"
    )
    with caplog.at_level(logging.DEBUG, logger="vllm_ranker"):
        res = client.search("docs", data=["AI research"], limit=4, ranker=fn, **DENSE)
        again = client.search("docs", data=["AI research"], limit=4, ranker=fn, **DENSE)
    expected = first_stage(milvus, ["AI research"], 4)[0]
    assert res[0].ids == list(expected.ids) == again[0].ids
    assert [h["distance"] for h in res[0]] == pytest.approx(list(expected.distances))
    stats = res.extra["rerank"]
    assert stats.fallback is True and "HTTP 500 after 2 tries: GPU fell off the bus" in (stats.error or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "passthrough" in r.getMessage()]
    assert len(warnings) <= 1  # once per cause (the other client may have logged this cause first)
    assert all("sk-passthrough-secret" not in r.getMessage() for r in caplog.records)
    assert "sk-passthrough-secret" not in repr(stats.as_dict())


def test_passthrough_logs_a_new_cause_once(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    fn = rerank_function(f"http://127.0.0.1:{closed_port()}", ["AI"], on_failure="passthrough", max_retries=0)
    with caplog.at_level(logging.WARNING, logger="vllm_ranker"):
        for _ in range(3):
            res = client.search("docs", data=["AI"], limit=2, ranker=fn, **DENSE)
            assert res.extra["rerank"].fallback and "connect error" in res.extra["rerank"].error
    assert len([r for r in caplog.records if "passthrough" in r.getMessage()]) == 1


def test_passthrough_hybrid_keeps_union_order_and_pages(client: Any, milvus: MilvusClient) -> None:
    fn = rerank_function(f"http://127.0.0.1:{closed_port()}", ["AI"], on_failure="passthrough", max_retries=0)
    reqs = [
        AnnSearchRequest(data=["AI"], anns_field="dense_vector", param={}, limit=3),
        AnnSearchRequest(data=["AI"], anns_field="sparse_vector", param={}, limit=3),
    ]
    res = client.hybrid_search("docs", reqs, ranker=fn, limit=2, offset=1)
    dense = list(first_stage(milvus, ["AI"], 3)[0].ids)
    sparse = list(pymilvus.MilvusClient.search(milvus, "docs", data=["AI"], anns_field="sparse_vector", limit=3)[0].ids)
    union = list(dict.fromkeys(dense + sparse))
    assert res[0].ids == union[1:3] and res.extra["rerank"].fallback


def test_error_stays_the_default(client: Any) -> None:
    fn = rerank_function(f"http://127.0.0.1:{closed_port()}", ["AI"], max_retries=0)
    with pytest.raises(RerankServiceError, match="call service failed"):
        client.search("docs", data=["AI"], limit=2, ranker=fn, **DENSE)


# -- several endpoints ------------------------------------------------------------------------------------------


def test_several_endpoints_spread_and_fail_over(client: Any) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    with RerankServer() as a, RerankServer() as b:
        both = [a.endpoint, b.endpoint]
        fn = rerank_function(a.endpoint, ["AI research"], endpoints=",".join(both), maxBatch=1, max_concurrency=2)
        res = client.search("docs", data=["AI research"], limit=8, ranker=fn, **DENSE)
        assert len(a.requests) + len(b.requests) == 8 and a.requests and b.requests
        assert pairs(res[0]) == truth("AI research", [h["id"] for h in res[0]])

        a.reset()
        b.reset()
        # The portable form: `endpoint` is what Milvus reads, `endpoints` (ignored by Milvus) is the pool.
        fn = rerank_function(dead, ["AI research"], endpoints=[dead, b.endpoint], maxBatch=2, max_retries=0)
        res = client.search("docs", data=["AI research"], limit=6, ranker=fn, **DENSE)
        assert len(b.requests) == 3  # every batch answered by the live endpoint
        assert pairs(res[0]) == truth("AI research", [h["id"] for h in res[0]])


def test_endpoint_list_errors_name_the_key(client: Any) -> None:
    fn = rerank_function("http://127.0.0.1:1", ["AI"], endpoints="http://ok:8000, ftp://bad")
    with pytest.raises(RerankParamError, match=r"endpoints: \[ftp://bad\] is not a valid http/https link"):
        client.search("docs", data=["AI"], limit=2, ranker=fn, **DENSE)


# -- stats ------------------------------------------------------------------------------------------------------


def test_stats_record_is_complete(client: Any, server: RerankServer) -> None:
    busy = [Reply(503, {"error": {"message": "busy"}}, headers={"Retry-After": "0"})]
    server.fault = lambda r: busy.pop() if busy and r.path.endswith("rerank") else None  # the first rerank call
    fn = rerank_function(server.endpoint, ["AI research progress"], maxBatch=2)
    res = client.search("docs", data=["AI research progress"], limit=5, ranker=fn, **DENSE)
    stats = res.extra["rerank"]
    bodies = [r.body for r in rerank_requests(server)]
    assert (stats.candidates, stats.batches, stats.requests, stats.retries) == (5, 3, 4, 1)
    assert stats.prompt_tokens > 0 and stats.service_seconds > 0 and stats.rerank_seconds >= stats.service_seconds * 0
    assert stats.search_seconds > 0 and stats.fallback is False and stats.error is None
    record = stats.as_dict()
    assert set(record) >= {
        "candidates",
        "batches",
        "requests",
        "retries",
        "cache_hits",
        "cache_misses",
        "service_seconds",
        "rerank_seconds",
        "search_seconds",
        "overhead_seconds",
        "prompt_tokens",
        "fallback",
        "error",
        "failovers",
    }
    assert len(bodies) == 4


# -- logging and metrics ----------------------------------------------------------------------------------------


def test_logging_tells_what_happened_without_secrets(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-log-secret-123"
    with RerankServer() as a, RerankServer() as b:
        a.fault = lambda r: Reply(503, {"error": {"message": "overloaded"}})
        fn = rerank_function(
            b.endpoint,
            ["AI"],
            endpoints=[a.endpoint, b.endpoint],
            credential=secret,
            maxBatch=1,
            eject_after=1,
        )
        with caplog.at_level(logging.DEBUG, logger="vllm_ranker"):
            client.search("docs", data=["AI"], limit=3, ranker=fn, **DENSE)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ejected for 30 s after 1 consecutive failures" in text
    assert "HTTP 503" in text and "failing over to another endpoint" in text
    assert "reranked with vllm: 3 candidates" in text
    assert secret not in text
    assert all(r.name.startswith("vllm_ranker") for r in caplog.records)


def test_prometheus_metrics_count_calls(client: Any, server: RerankServer) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")

    def value(name: str, **labels: str) -> float:
        return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("vllm_ranker_calls_total", provider="vllm", outcome="ok"),
        value("vllm_ranker_candidates_total", provider="vllm"),
        value("vllm_ranker_calls_total", provider="vllm", outcome="fallback"),
    )
    client.search("docs", data=["AI"], limit=4, ranker=rerank_function(server.endpoint, ["AI"]), **DENSE)
    dead = rerank_function(f"http://127.0.0.1:{closed_port()}", ["AI"], on_failure="passthrough", max_retries=0)
    client.search("docs", data=["AI"], limit=4, ranker=dead, **DENSE)
    assert value("vllm_ranker_calls_total", provider="vllm", outcome="ok") == before[0] + 1
    assert value("vllm_ranker_candidates_total", provider="vllm") == before[1] + 8
    assert value("vllm_ranker_calls_total", provider="vllm", outcome="fallback") == before[2] + 1
    assert value("vllm_ranker_rerank_seconds_count", provider="vllm") > 0
    exposed = prometheus_client.generate_latest().decode()
    assert "vllm_ranker_requests_total" in exposed and "127.0.0.1" not in exposed


# -- client-wide limit under many concurrent searches -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_many_concurrent_searches_share_one_client_limit(milvus: MilvusClient, kind: str) -> None:
    """16 searches at once on a fresh client (its transport is created by the first of them): the service never
    sees more than the client-wide limit in flight."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vllm_ranker import AsyncMilvusClient

    uri = milvus._test_uri
    with RerankServer(request_latency=0.05) as slow:
        fn = rerank_function(slow.endpoint, ["AI"], maxBatch=2)
        search: dict[str, Any] = {"data": [[0.1] * 16], "anns_field": "dense_vector", "limit": 6, "ranker": fn}
        if kind == "sync":
            fresh = MilvusClient(uri=uri, rerank_client_limit=4)
            try:
                with ThreadPoolExecutor(32) as pool:
                    results = list(pool.map(lambda _: fresh.search("docs", **search), range(16)))
            finally:
                fresh.close()
        else:

            async def run() -> list[Any]:
                fresh = AsyncMilvusClient(uri=uri, rerank_client_limit=4)
                try:
                    return list(await asyncio.gather(*(fresh.search("docs", **search) for _ in range(16))))
                finally:
                    await fresh.close()

            results = asyncio.run(run())
        assert all(len(r[0]) == 6 for r in results)
        assert len(slow.requests) == 16 * 3
        assert 2 <= slow.max_in_flight <= 4
