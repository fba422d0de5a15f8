"""The clients' opt-in ``endpoint_policy=`` (issue 26): an ``EndpointPolicy`` or its entries, added to the config
file's; a forbidden endpoint is refused before the first-stage search (the flow's steps recorded: no search, no
rerank request), on both clients. tests/milvus/test_endpoint_policy.py has the policy's own rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pymilvus
import pytest

from tests.conftest import rerank_function, rerank_requests
from vllm_ranker import AsyncMilvusClient, EndpointPolicy, MilvusClient, RerankParamError
from vllm_ranker.core.driver import drive
from vllm_ranker.core.provider_config import ProviderConfigError
from vllm_ranker.testing import RerankServer

Q = "AI research progress"
KW: dict[str, Any] = dict(data=[Q], anns_field="dense_vector", limit=4, output_fields=["document"])


def test_a_forbidden_endpoint_is_refused_before_any_search(milvus: MilvusClient, server: RerankServer) -> None:
    client = MilvusClient(uri=milvus._test_uri, endpoint_policy=["http://10.0.0.1:8000"])
    searched: list[Any] = []

    def searches(calls: list[dict[str, Any]]) -> list[Any]:  # the real search, recorded
        searched.append(calls)
        return [pymilvus.MilvusClient.search(client, **call) for call in calls]

    try:
        flow = client._search_flow("docs", rerank_function(server.endpoint, [Q]), dict(KW))
        with pytest.raises(RerankParamError) as err:
            drive(
                flow, client.describe_collection, searches, lambda s: client._http().rerank(s.spec, s.batches, s.stats)
            )
        port = server.endpoint.rsplit(":", 1)[1]
        assert f"ask the operator to allow it (endpoint_policy= http://127.0.0.1:{port})" in str(err.value)
        assert searched == [] and rerank_requests(server) == []
    finally:
        client.close()


def test_the_argument_adds_to_the_file_and_a_policy_object_works_async(
    milvus: MilvusClient, server: RerankServer
) -> None:
    file_section = {"vllm_ranker": {"allowed_endpoints": ["http://10.0.0.1:8000"]}}
    policy = EndpointPolicy.parse([server.endpoint])

    async def both() -> tuple[int, str]:
        allowed = AsyncMilvusClient(uri=milvus._test_uri, rerank_config=file_section, endpoint_policy=policy)
        refused = AsyncMilvusClient(uri=milvus._test_uri, endpoint_policy=EndpointPolicy.parse(["http://10.0.0.1"]))
        try:
            hits = await allowed.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q]))
            try:
                await refused.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q]))
            except RerankParamError as exc:
                return len(hits[0]), str(exc)
            return len(hits[0]), ""
        finally:
            await allowed.close()
            await refused.close()

    count, message = asyncio.run(both())
    assert count == 4 and len(rerank_requests(server)) == 1  # only the allowed client's rerank went out
    assert "is not allowed by this server's endpoint policy" in message


def test_a_bad_entry_is_refused_naming_it(milvus: MilvusClient) -> None:
    with pytest.raises(ProviderConfigError, match=r"endpoint_policy= 'ftp://x': give an http or https URL prefix"):
        MilvusClient(uri=milvus._test_uri, endpoint_policy=["ftp://x"])
