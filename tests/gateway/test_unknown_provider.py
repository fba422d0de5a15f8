"""A model ranker whose provider the gateway and the Python client do not serve goes to Milvus untouched.

The backend here is a Milvus Lite that serves one provider more, ``acme`` (tests/acme_milvus_lite.py): a search
with it, through the gateway or ``vllm_ranker.MilvusClient``/``AsyncMilvusClient``, is the backend's own answer.
A provider nobody serves gets Milvus's message naming what both sides serve, not Milvus Lite's own list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus import AnnSearchRequest, Function, FunctionType
from pymilvus.client.prepare import Prepare

from tests.acme_milvus_lite import acme_score
from tests.conftest import AsyncAsSync
from tests.gateway.test_faults import small_collection
from vllm_ranker import AsyncMilvusClient, MilvusClient, RerankParamError
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.backend import Backend, LiteServer
from vllm_ranker.gateway.local_call import LocalCall
from vllm_ranker.gateway.proxy import GatewayHandler
from vllm_ranker.gateway.rerank import SEARCH, Reranker
from vllm_ranker.providers import PROVIDERS

QUERY = "AI research"
OURS = "vllm_ranker serves " + ", ".join(sorted(PROVIDERS))


def ranker(provider: str) -> Function:
    params = {"reranker": "model", "provider": provider, "queries": [QUERY]}
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params)


@pytest.fixture(scope="module")
def acme_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lite = LiteServer(str(tmp_path_factory.mktemp("acme") / "acme.db"), launcher="tests.acme_milvus_lite").start()
    try:
        direct = pymilvus.MilvusClient(uri=lite.uri)
        small_collection(direct)
        direct.close()
        yield lite.uri
    finally:
        lite.stop()


@pytest.fixture(scope="module")
def acme_gateway(acme_backend: str) -> Iterator[Gateway]:
    with Gateway(acme_backend, port=0, grace=2.0) as gw:
        yield gw


def run(client: Any, method: str, provider: str) -> Any:
    kwargs: dict[str, Any] = dict(limit=5, output_fields=["document"], ranker=ranker(provider))
    if method == "search":
        return client.search("small", data=[[1.0, 1.0]], anns_field="v", **kwargs)
    return client.hybrid_search("small", [AnnSearchRequest([[1.0, 1.0]], "v", {}, 8)], **kwargs)


def hits(result: Any) -> list[list[tuple[Any, float, str]]]:
    return [[(h["id"], h["distance"], h["entity"]["document"]) for h in q] for q in result]


def with_each_client(uri: str, use: Any) -> list[Any]:
    """``use(client)`` by plain pymilvus, ``vllm_ranker.MilvusClient`` and ``AsyncMilvusClient`` on ``uri``."""
    out = []
    for make in (pymilvus.MilvusClient, MilvusClient):
        client = make(uri=uri)
        try:
            out.append(use(client))
        finally:
            client.close()
    loop = asyncio.new_event_loop()
    async_client = AsyncMilvusClient(uri=uri)
    try:
        out.append(use(AsyncAsSync(async_client, loop)))
    finally:
        loop.run_until_complete(async_client.close())
        loop.close()
    return out


@pytest.mark.parametrize("method", ["search", "hybrid_search"])
def test_a_provider_only_the_backend_serves_is_the_backends_answer(
    acme_backend: str, acme_gateway: Gateway, method: str
) -> None:
    want = hits(run(pymilvus.MilvusClient(uri=acme_backend), method, "acme"))  # the backend's own answer
    assert want[0] and all(abs(d - acme_score(QUERY, doc)) < 1e-6 for _, d, doc in want[0])
    answers = with_each_client(acme_backend, lambda c: hits(run(c, method, "ACME")))  # the clients, direct
    # Through the gateway twice: the splicing front releases a provider the backend served once.
    answers += with_each_client(acme_gateway.uri, lambda c: [hits(run(c, method, "acme")) for _ in range(2)])
    assert answers[:3] == [want] * 3
    assert answers[3:] == [[want, want]] * 3


def refusal(call: Any) -> pymilvus.MilvusException:
    with pytest.raises(pymilvus.MilvusException) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("method", ["search", "hybrid_search"])
def test_a_provider_nobody_serves_gets_milvus_message_naming_both(
    acme_backend: str, acme_gateway: Gateway, method: str
) -> None:
    refused = [
        got
        for uri in (acme_backend, acme_gateway.uri)
        for got in with_each_client(uri, lambda c: refusal(lambda: run(c, method, "nowhere")))
    ]
    # Plain pymilvus on the backend itself gets Milvus Lite's own text; everything of ours, Milvus's.
    lite, ours = refused[0].message, [(got.message, got.code) for got in refused[1:]]
    assert lite == "Unknown rerank provider: 'nowhere'. Supported: 'cohere', 'acme'"
    assert ours == [ours[0]] * 5
    assert isinstance(refused[1], RerankParamError) and isinstance(refused[-1], RerankParamError)
    assert ours[0][0] == f"unknown rerank model provider:nowhere: {OURS}; the Milvus backend serves acme, cohere"


def test_claims_releases_a_provider_once_the_backend_served_it(acme_backend: str) -> None:
    backend = Backend(acme_backend)
    reranker = Reranker(backend)
    handler = GatewayHandler(backend, reranker)
    try:
        payloads = {
            provider: Prepare.search_requests_with_expr(
                "small", "v", {"metric_type": "L2", "params": {}}, 5, data=[[1.0, 1.0]], ranker=ranker(provider)
            ).SerializeToString()
            for provider in ("acme", "nowhere", "vllm")
        }
        assert handler.claims(SEARCH, payloads["acme"])  # not known yet: asked through the handler
        assert handler.claims(SEARCH, payloads["vllm"])  # ours
        handler.unary_call(SEARCH, payloads["acme"], LocalCall([]))
        handler.unary_call(SEARCH, payloads["nowhere"], LocalCall([]))
        assert not handler.claims(SEARCH, payloads["acme"])  # the backend serves it: the front releases it
        assert handler.claims(SEARCH, payloads["nowhere"])  # refused: its message is still made here
    finally:
        reranker.close()
        backend.close()
