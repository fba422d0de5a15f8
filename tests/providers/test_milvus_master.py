"""What Milvus's master branch added to the model ranker, beyond the seven providers of 2.6:

- ``timeout_ms`` (``models.ResolveTimeoutMs``): the milliseconds one rerank request, its retries included, may
  take. Here it bounds each batch from its first try and never reaches past the call's ``timeout``.
- ``zilliz``: Zilliz Cloud's own model service, refused before any search or HTTP call, never handed to Milvus.

(``sglang``, the other new provider, is a row of the contract table in cases.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import AsyncAsSync
from tests.providers.cases import BY_NAME
from tests.providers.conftest import SearchSpy
from tests.providers.test_contract import QUERIES, assert_reranked, collection_info, dense_search, ranker
from vllm_ranker import (
    AsyncMilvusClient,
    Function,
    FunctionType,
    MilvusClient,
    RerankParamError,
    RerankServiceError,
    RerankTimeout,
)
from vllm_ranker.core.spec import foreign_provider, is_model_ranker, parse_ranker
from vllm_ranker.testing import Recorded, Reply, RerankServer
from vllm_ranker.testing import wire_formats as wf

SGLANG = BY_NAME["sglang"]


def spec_of(**params: Any) -> Any:
    return parse_ranker(ranker(SGLANG, None, endpoint="http://h:30000", **params), collection_info(), env={})


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, lite: MilvusClient) -> Iterator[Any]:
    """The sync client, or an AsyncMilvusClient on the same Milvus Lite file."""
    if request.param == "sync":
        yield lite
        return
    loop = asyncio.new_event_loop()
    other = AsyncMilvusClient(uri=lite._test_uri)
    yield AsyncAsSync(other, loop)
    loop.run_until_complete(other.close())
    loop.close()


def late(srv: RerankServer, seconds: float) -> Any:
    """Every request answered rightly (the server's own scores), ``seconds`` late."""

    def reply(recorded: Recorded) -> Reply:
        query, docs = recorded.body["query"], recorded.body["documents"]
        scores = [srv.score(query, d) for d in docs]
        return Reply(delay=seconds, json_body=wf.render("sglang", query, docs, scores))

    return reply


# -- timeout_ms: parsing --------------------------------------------------------------------------------------
def test_timeout_ms_is_milliseconds_per_request_and_absent_by_default() -> None:
    assert spec_of().request_timeout is None
    assert spec_of(timeout_ms=1500).request_timeout == 1.5
    assert spec_of(timeout_ms="250").request_timeout == 0.25  # pymilvus sends every value as a string
    assert spec_of(Timeout_MS="120").request_timeout == 0.12  # keys match in any case, as in Milvus


def test_timeout_ms_never_reaches_past_the_calls_timeout() -> None:
    assert spec_of(timeout_ms=60000, timeout=5).request_timeout == 5.0
    assert spec_of(timeout_ms=60000).request_timeout == 30.0  # the call's default deadline


@pytest.mark.parametrize(
    ("raw", "milvus"),
    [
        ("soon", "[timeout_ms param's value: soon] is not a valid number"),
        ("1.5", "[timeout_ms param's value: 1.5] is not a valid number"),
        (0, "[timeout_ms param's value: 0] must be greater than 0"),
        ("-20", "[timeout_ms param's value: -20] must be greater than 0"),
    ],
)
def test_a_bad_timeout_ms_is_refused_with_the_fix(raw: Any, milvus: str) -> None:
    with pytest.raises(RerankParamError) as caught:
        spec_of(timeout_ms=raw)
    assert milvus in str(caught.value)
    assert "milliseconds one rerank request" in str(caught.value)


# -- timeout_ms: in a search ---------------------------------------------------------------------------------
def test_an_answer_later_than_timeout_ms_fails_the_search_at_timeout_ms(
    client: Any, servers: dict[str, RerankServer]
) -> None:
    srv = servers["sglang"]
    srv.fault = late(srv, 5.0)
    started = time.monotonic()
    with pytest.raises(RerankTimeout) as caught:
        dense_search(client, ranker(SGLANG, srv, timeout_ms=200, max_concurrency=1))
    elapsed = time.monotonic() - started
    # At timeout_ms, not at the answer (5 s) nor at the call's 30 s; wide margins: CI's cores are slow some days.
    assert 0.2 <= elapsed < 3.0
    text = str(caught.value)
    assert text.startswith("call service failed: sglang did not answer one rerank request")
    assert "params['timeout_ms'] = 200 ms" in text and "raise params['timeout_ms']" in text
    assert len(srv.requests) == 1  # a request that ran out of its time is not tried again, as in Milvus


def test_timeout_ms_bounds_each_batch_not_the_whole_call(lite: MilvusClient, servers: dict[str, RerankServer]) -> None:
    srv = servers["sglang"]
    srv.fault = late(srv, 0.3)
    started = time.monotonic()
    result = dense_search(lite, ranker(SGLANG, srv, timeout_ms=600, max_concurrency=1))
    assert time.monotonic() - started >= 0.6  # two batches one after another: longer than one timeout_ms
    assert_reranked(result, dense_search(lite, None), srv, QUERIES)
    assert len(srv.requests) == 2


def test_a_retry_is_made_within_timeout_ms_and_not_past_it(
    lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers["sglang"]
    down, _ = wf.error_answer("sglang", 503, "warming up")
    srv.script = [Reply(status=503, raw=down, headers={"Retry-After": "0"})]
    result = dense_search(lite, ranker(SGLANG, srv, timeout_ms=5000, max_concurrency=1))
    assert_reranked(result, dense_search(lite, None), srv, QUERIES)
    assert len(srv.requests) == 3  # the 503, its retry, the second query

    srv.reset()
    srv.script = [Reply(status=503, raw=down, headers={"Retry-After": "3"})]
    started = time.monotonic()
    with pytest.raises(RerankServiceError) as caught:
        dense_search(lite, ranker(SGLANG, srv, timeout_ms=1000, max_concurrency=1))
    assert time.monotonic() - started < 2.5  # no waiting (3 s) for a retry that could not finish in time
    assert caught.value.status == 503
    assert "HTTP 503: warming up (the next try would pass params['timeout_ms'])" in str(caught.value)
    assert len(srv.requests) == 1


def test_the_calls_deadline_still_comes_first_when_sooner(client: Any, servers: dict[str, RerankServer]) -> None:
    srv = servers["sglang"]
    srv.fault = late(srv, 5.0)
    started = time.monotonic()
    with pytest.raises(RerankTimeout) as caught:
        dense_search(client, ranker(SGLANG, srv, timeout_ms=5000, timeout=0.3))
    assert time.monotonic() - started < 3.0  # at the call's 0.3 s, not at the answer (5 s)
    assert "within the call's deadline of 0.3 s" in str(caught.value)
    assert "timeout_ms" not in str(caught.value)


# -- zilliz -------------------------------------------------------------------------------------------------
def zilliz(provider: str = "zilliz") -> Function:
    params = {"reranker": "model", "provider": provider, "model_deployment_id": "in01-abc", "queries": QUERIES}
    return Function(name="z", input_field_names=["document"], function_type=FunctionType.RERANK, params=params)


@pytest.mark.parametrize("provider", ["zilliz", "Zilliz"])
def test_zilliz_is_ours_to_refuse_never_milvuss(provider: str) -> None:
    assert is_model_ranker(zilliz(provider)) and foreign_provider(zilliz(provider)) is None


def test_zilliz_is_refused_before_any_search_naming_what_to_use(
    client: Any, lite: MilvusClient, search_spy: SearchSpy
) -> None:
    with pytest.raises(RerankParamError) as caught:
        dense_search(client, zilliz())
    text = str(caught.value)
    assert text.startswith("rerank model provider zilliz is Zilliz Cloud's own model service")
    assert "not a public API: it cannot be reached from here" in text
    assert "Unknown rerank provider" not in text  # Milvus Lite's answer, had it been forwarded
    for name in ("vllm", "tei", "sglang", "cohere", "voyageai", "siliconflow", "ali", "huggingface"):
        assert name in text
    assert search_spy.calls == 0  # the sync client's Milvus search never ran


def test_the_unknown_provider_message_names_sglang() -> None:
    with pytest.raises(RerankParamError) as caught:
        parse_ranker(ranker(SGLANG, None, provider="acme"), collection_info(), env={})
    assert "unknown rerank model provider:acme: use one of " in str(caught.value)
    assert "sglang" in str(caught.value)


def test_sglang_without_an_endpoint_gets_milvus_message_and_the_fix() -> None:
    with pytest.raises(RerankParamError) as caught:
        parse_ranker(ranker(SGLANG, None), collection_info(), env={})
    assert str(caught.value).startswith("sglang rerank endpoint is required: rerank function lost params endpoint")
    assert "set params['endpoint']" in str(caught.value)
