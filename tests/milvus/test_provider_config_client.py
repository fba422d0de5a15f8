"""``rerank_config=`` on both clients, on Milvus Lite: a Function with no key (and no endpoint) reranks with the
configured ones, a configured credential outranks the environment, the request's own values win, and a provider
the configuration disables is refused before any search."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AsyncAsSync, rerank_requests
from vllm_ranker import AsyncMilvusClient, Function, FunctionType, MilvusClient, RerankParamError
from vllm_ranker.testing import RerankServer

KEY = "sk-configured-0123456789"
QUERIES = ["AI research progress", "renewable energy"]


def config(**providers: Any) -> dict[str, Any]:
    return {
        "credential": {"apikey1": {"apikey": KEY}},
        "function": {"rerank": {"model": {"providers": providers}}},
    }


def ranker(**params: Any) -> Function:
    return Function(
        "model_ranker",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "queries": QUERIES, **params},
    )


def search(client: Any, function: Function) -> Any:
    return client.search("docs", data=QUERIES, anns_field="dense_vector", limit=3, ranker=function)


@pytest.fixture(params=["sync", "async"])
def configured(request: pytest.FixtureRequest, milvus: MilvusClient, server: RerankServer) -> Iterator[Any]:
    """A factory of clients with a ``rerank_config``, on the session's Milvus Lite file."""
    made: list[Any] = []
    loop = asyncio.new_event_loop()

    def make(rerank_config: Any) -> Any:
        if request.param == "sync":
            client = MilvusClient(uri=milvus._test_uri, rerank_config=rerank_config)
            made.append(client)
            return client
        async_client = AsyncMilvusClient(uri=milvus._test_uri, rerank_config=rerank_config)
        made.append(async_client)
        return AsyncAsSync(async_client, loop)

    yield make
    for client in made:
        if isinstance(client, AsyncMilvusClient):
            loop.run_until_complete(client.close())
        else:
            client.close()
    loop.close()


def test_the_configured_key_and_url_serve_a_function_without_them(configured: Any, server: RerankServer) -> None:
    client = configured(config(vllm={"credential": "apikey1", "url": server.endpoint}))
    results = search(client, ranker(provider="vllm"))
    assert len(results) == 2 and all(len(hits) == 3 for hits in results)
    sent = rerank_requests(server)
    assert sent and {r.headers.get("authorization") for r in sent} == {f"Bearer {KEY}"}


def test_a_configured_credential_outranks_the_environment(
    configured: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MILVUS_COHERE_API_KEY", "sk-from-the-environment")
    with RerankServer(wire="cohere") as cohere:
        path = tmp_path / "milvus.yaml"
        path.write_text(
            f"credential:\n  apikey1:\n    apikey: {KEY}\nfunction:\n  rerank:\n    model:\n      providers:\n"
            f"        cohere:\n          credential: apikey1\n          url: {cohere.endpoint}\n"
        )
        monkeypatch.setenv("VLLM_RANKER_CONFIG", str(path))
        search(configured(None), ranker(provider="cohere", model_name="rerank-v3.5"))
        assert cohere.requests and {r.headers["authorization"] for r in cohere.requests} == {f"Bearer {KEY}"}


def test_the_request_own_endpoint_and_key_win(configured: Any, server: RerankServer) -> None:
    client = configured(config(vllm={"credential": "apikey1", "url": "http://127.0.0.1:9"}))
    search(client, ranker(provider="vllm", endpoint=server.endpoint, credential="sk-own"))
    assert {r.headers["authorization"] for r in rerank_requests(server)} == {"Bearer sk-own"}


def test_a_disabled_provider_is_refused(configured: Any, server: RerankServer) -> None:
    client = configured(config(vllm={"enable": False}))
    with pytest.raises(RerankParamError, match=r"rerank provider: \[vllm\] is disabled"):
        search(client, ranker(provider="vllm", endpoint=server.endpoint))
    assert not server.requests


def test_a_bad_configuration_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"providers.vllm.credential: nowhere is not a apikey crediential"):
        MilvusClient(uri=str(tmp_path / "never.db"), rerank_config=config(vllm={"credential": "nowhere"}))
    assert not (tmp_path / "never.db").exists()  # refused before connecting
