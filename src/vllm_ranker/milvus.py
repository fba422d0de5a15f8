"""``vllm_ranker.MilvusClient``: a ``pymilvus.MilvusClient`` that runs model rankers itself.

Only a RERANK Function with ``reranker: model`` is handled here; every other ranker and every other method
goes to the server untouched.
"""

from __future__ import annotations

import threading
from typing import Any

import pymilvus
from pymilvus import AnnSearchRequest

from .errors import RerankServiceError
from .flow import Describe, Flow, Rerank, SchemaCache, Searches, hybrid_flow, search_flow
from .score_cache import DEFAULT_CACHE_SIZE, ScoreCache
from .spec import is_model_ranker
from .transport import DEFAULT_CLIENT_LIMIT, SyncTransport

_TRANSPORT_LOCK = threading.Lock()


class MilvusClient(pymilvus.MilvusClient):  # type: ignore[misc]
    """Drop-in ``pymilvus.MilvusClient``; ``uri`` defaults to an embedded Milvus Lite file.

    ``rerank_client_limit`` caps HTTP requests in flight across every search sharing this client;
    ``rerank_cache_size`` bounds the score cache (entries) used by Functions with ``params["cache"]`` true.
    """

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
        self._transport: SyncTransport | None = None
        self._rerank_client_limit = rerank_client_limit
        super().__init__(
            uri=uri, user=user, password=password, db_name=db_name, token=token, timeout=timeout, **kwargs
        )

    def _http(self) -> SyncTransport:
        # Created on first use: clients that never rerank open no HTTP pool and no threads. Under a lock: the
        # first searches of many threads at once must share ONE transport, or each would get its own client-wide
        # limit (seen: 48 requests in flight with a limit of 16).
        if self._transport is None:
            with _TRANSPORT_LOCK:
                if self._transport is None:
                    self._transport = SyncTransport(self._rerank_client_limit)
        return self._transport

    def search(
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
            return super().search(
                collection_name,
                data,
                filter,
                limit,
                output_fields,
                search_params,
                timeout,
                partition_names,
                anns_field,
                ranker,
                **kwargs,
            )
        search_kwargs = dict(
            kwargs,
            data=data,
            filter=filter,
            limit=limit,
            output_fields=output_fields,
            search_params=search_params,
            timeout=timeout,
            partition_names=partition_names,
            anns_field=anns_field,
        )
        return self._run(search_flow(self._schemas, collection_name, ranker, search_kwargs, self._scores))

    def hybrid_search(
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
            return super().hybrid_search(
                collection_name, reqs, ranker, limit, output_fields, timeout, partition_names, **kwargs
            )
        common = dict(kwargs, output_fields=output_fields, timeout=timeout, partition_names=partition_names)
        return self._run(hybrid_flow(self._schemas, collection_name, reqs, ranker, limit, common, self._scores))

    def _run(self, flow: Flow) -> Any:
        reply: Any = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Describe):
                reply = super().describe_collection(step.collection_name)
            elif isinstance(step, Searches):
                reply = [super(MilvusClient, self).search(**call) for call in step.calls]
            elif isinstance(step, Rerank):
                try:
                    reply = self._http().rerank(step.spec, step.batches, step.stats)
                except RerankServiceError as failed:  # the flow raises it, or falls back (on_failure)
                    reply = failed
            else:  # pragma: no cover - the flow yields nothing else
                raise TypeError(step)

    # Schema changes made through this client invalidate the ranker's cached view of the collection.
    def create_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget(collection_name)
        return super().create_collection(collection_name, *args, **kwargs)

    def drop_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget(collection_name)
        return super().drop_collection(collection_name, *args, **kwargs)

    def rename_collection(self, old_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget()
        return super().rename_collection(old_name, *args, **kwargs)

    def add_collection_field(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        self._schemas.forget(collection_name)
        return super().add_collection_field(collection_name, *args, **kwargs)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        super().close()
