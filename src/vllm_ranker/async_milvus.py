"""``vllm_ranker.AsyncMilvusClient``: ``pymilvus.AsyncMilvusClient`` with the model ranker.

Same flow, spec, providers, errors and result types as the sync client (core/flow.py); only the steps are
awaited: the sub-searches of a hybrid search run concurrently, and cancelling the search cancels its HTTP calls.
Note: on a Milvus Lite ``.db`` create collections and indexes with the sync client (the async one cannot).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pymilvus
from pymilvus import AnnSearchRequest

from vllm_ranker._client_base import (
    RerankState,
    forget_schema_on_change,
    search_kwargs,
    served_chains,
    unknown_to_both,
    with_boosts,
)
from vllm_ranker.core.chain.validate import check_search
from vllm_ranker.core.driver import drive_async
from vllm_ranker.core.flow import Flow, Rerank
from vllm_ranker.core.score_cache import DEFAULT_CACHE_SIZE
from vllm_ranker.core.spec import is_model_ranker
from vllm_ranker.core.token_chunks import Tokenize
from vllm_ranker.provider_settings import ConfigSource, PolicySource
from vllm_ranker.transport import DEFAULT_CLIENT_LIMIT, AsyncTransport


@forget_schema_on_change
class AsyncMilvusClient(RerankState, pymilvus.AsyncMilvusClient):  # type: ignore[misc]
    """Drop-in ``pymilvus.AsyncMilvusClient``; the same extra keyword arguments as ``MilvusClient``."""

    def __init__(
        self,
        uri: str = "./milvus.db",
        user: str = "",
        password: str = "",
        db_name: str = "",
        token: str = "",
        timeout: float | None = None,
        *,
        rerank_client_limit: int = DEFAULT_CLIENT_LIMIT,
        rerank_cache_size: int = DEFAULT_CACHE_SIZE,
        rerank_config: ConfigSource = None,
        endpoint_policy: PolicySource = None,
        **kwargs: Any,
    ) -> None:
        self._init_rerank(rerank_client_limit, rerank_cache_size, rerank_config, endpoint_policy)
        self._transport: AsyncTransport | None = None
        super().__init__(uri=uri, user=user, password=password, db_name=db_name, token=token, timeout=timeout, **kwargs)

    def _http(self) -> AsyncTransport:
        if self._transport is None:
            self._transport = AsyncTransport(self._rerank_client_limit, policy=self._provider_config.policy)
        return self._transport

    async def search(
        self,
        collection_name: str,
        data: Any = None,
        filter: str = "",
        limit: int = 10,
        output_fields: list[str] | None = None,
        search_params: dict[str, Any] | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        anns_field: str | None = None,
        ranker: Any = None,
        **kwargs: Any,
    ) -> Any:
        chains = served_chains(kwargs)  # Milvus 3.0 function chains calling one of our rerank models
        if chains is not None:
            call = search_kwargs(
                kwargs, data, filter, limit, output_fields, search_params, timeout, partition_names, anns_field
            )
            return await self._run(self._chain_flow(collection_name, chains, call, ranker))
        ranker = with_boosts(ranker, kwargs)  # FunctionScore([boosts..., model]): the boosts join the first stage
        if not is_model_ranker(ranker):
            with unknown_to_both(ranker):
                return await super().search(
                    collection_name, data, filter, limit, output_fields, search_params, timeout, partition_names,
                    anns_field, ranker, **kwargs,
                )  # fmt: skip
        call = search_kwargs(
            kwargs, data, filter, limit, output_fields, search_params, timeout, partition_names, anns_field
        )
        return await self._run(self._search_flow(collection_name, ranker, call))

    async def hybrid_search(
        self,
        collection_name: str,
        reqs: list[AnnSearchRequest],
        ranker: Any,
        limit: int = 10,
        output_fields: list[str] | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        if kwargs.get("function_chains") is not None:  # else pymilvus would pass it on to each sub-search
            check_search(1, False, False, hybrid=True)
        if not is_model_ranker(ranker):
            with unknown_to_both(ranker):
                return await super().hybrid_search(
                    collection_name, reqs, ranker, limit, output_fields, timeout, partition_names, **kwargs
                )
        common = dict(kwargs, output_fields=output_fields, timeout=timeout, partition_names=partition_names)
        return await self._run(self._hybrid_flow(collection_name, reqs, ranker, limit, common))

    async def _run(self, flow: Flow) -> Any:
        plain = super().search

        async def searches(calls: list[dict[str, Any]]) -> list[Any]:
            return list(await asyncio.gather(*(plain(**call) for call in calls)))  # sub-searches concurrently

        async def rerank(step: Rerank) -> list[list[float]]:
            return await self._http().rerank(step.spec, step.batches, step.stats, step.deadline)

        async def tokenize(step: Tokenize) -> list[list[str]]:
            return await self._http().tokenize(step.spec, step.texts, step.stats, step.deadline)

        return await drive_async(flow, super().describe_collection, searches, rerank, tokenize)

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        await super().close()
