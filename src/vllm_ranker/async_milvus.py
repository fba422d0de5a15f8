"""``vllm_ranker.AsyncMilvusClient``: ``pymilvus.AsyncMilvusClient`` with the model ranker.

Same flow, spec, providers, errors and result types as the sync client (flow.py); only the steps are awaited:
the sub-searches of a hybrid search run concurrently, and cancelling the search cancels its HTTP calls.
Note: on a Milvus Lite ``.db`` create collections and indexes with the sync client (the async one cannot).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pymilvus
from pymilvus import AnnSearchRequest

from .errors import RerankServiceError
from .flow import Describe, Flow, Rerank, SchemaCache, Searches, hybrid_flow, search_flow
from .score_cache import DEFAULT_CACHE_SIZE, ScoreCache
from .spec import is_model_ranker
from .transport import DEFAULT_CLIENT_LIMIT, AsyncTransport


class AsyncMilvusClient(pymilvus.AsyncMilvusClient):  # type: ignore[misc]
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
        **kwargs: Any,
    ) -> None:
        self._schemas = SchemaCache()
        self._scores = ScoreCache(rerank_cache_size)  # used by Functions with params['cache'] true
        self._transport: AsyncTransport | None = None
        self._rerank_client_limit = rerank_client_limit
        super().__init__(
            uri=uri, user=user, password=password, db_name=db_name, token=token, timeout=timeout, **kwargs
        )

    def _http(self) -> AsyncTransport:
        if self._transport is None:
            self._transport = AsyncTransport(self._rerank_client_limit)
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
        if not is_model_ranker(ranker):
            return await super().search(
                collection_name, data, filter, limit, output_fields, search_params, timeout, partition_names,
                anns_field, ranker, **kwargs,
            )
        search_kwargs = dict(
            kwargs, data=data, filter=filter, limit=limit, output_fields=output_fields, search_params=search_params,
            timeout=timeout, partition_names=partition_names, anns_field=anns_field,
        )
        return await self._run(search_flow(self._schemas, collection_name, ranker, search_kwargs, self._scores))

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
        if not is_model_ranker(ranker):
            return await super().hybrid_search(
                collection_name, reqs, ranker, limit, output_fields, timeout, partition_names, **kwargs
            )
        common = dict(kwargs, output_fields=output_fields, timeout=timeout, partition_names=partition_names)
        return await self._run(hybrid_flow(self._schemas, collection_name, reqs, ranker, limit, common, self._scores))

    async def _run(self, flow: Flow) -> Any:
        reply: Any = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Describe):
                reply = await super().describe_collection(step.collection_name)
            elif isinstance(step, Searches):
                plain = super().search
                reply = list(await asyncio.gather(*(plain(**call) for call in step.calls)))
            elif isinstance(step, Rerank):
                try:
                    reply = await self._http().rerank(step.spec, step.batches, step.stats)
                except RerankServiceError as failed:  # the flow raises it, or falls back (on_failure)
                    reply = failed
            else:  # pragma: no cover - the flow yields nothing else
                raise TypeError(step)

    async def drop_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget(collection_name)
        return await super().drop_collection(collection_name, *args, **kwargs)

    async def create_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget(collection_name)
        return await super().create_collection(collection_name, *args, **kwargs)

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        await super().close()
