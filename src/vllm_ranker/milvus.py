"""``vllm_ranker.MilvusClient``: a ``pymilvus.MilvusClient`` that runs model rankers itself.

Only a RERANK Function with ``reranker: model`` is handled here; every other ranker and every other method
goes to the server untouched. The flow's steps are carried out blocking.
"""

from __future__ import annotations

import threading
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
from vllm_ranker.core.driver import drive
from vllm_ranker.core.flow import Flow
from vllm_ranker.core.function_score import split_function_score
from vllm_ranker.core.score_cache import DEFAULT_CACHE_SIZE
from vllm_ranker.core.search_args import refuse_iterator_rerank
from vllm_ranker.core.spec import is_model_ranker
from vllm_ranker.provider_settings import ConfigSource, PolicySource
from vllm_ranker.transport import DEFAULT_CLIENT_LIMIT, SyncTransport

_TRANSPORT_LOCK = threading.Lock()


@forget_schema_on_change
class MilvusClient(RerankState, pymilvus.MilvusClient):  # type: ignore[misc]
    """Drop-in ``pymilvus.MilvusClient``; ``uri`` defaults to an embedded Milvus Lite file.

    ``rerank_client_limit`` caps HTTP requests in flight across every search sharing this client;
    ``rerank_cache_size`` bounds the score cache (entries) used by Functions with ``params["cache"]`` true.
    ``rerank_config`` is the providers' server configuration (keys, URLs, enable), milvus.yaml's shape: a file's
    path, a mapping or a ``ProviderConfig``; None reads the file named by ``VLLM_RANKER_CONFIG`` if set.
    ``endpoint_policy`` (opt-in) says where documents may go: an ``EndpointPolicy`` or its entries (URL prefixes,
    addresses, networks), added to the file's ``vllm_ranker.allowed_endpoints``; another endpoint is refused before
    any search, and a host name resolving to a link-local or metadata address is refused before connecting.
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
        rerank_config: ConfigSource = None,
        endpoint_policy: PolicySource = None,
        **kwargs: Any,
    ) -> None:
        self._init_rerank(rerank_client_limit, rerank_cache_size, rerank_config, endpoint_policy)
        self._transport: SyncTransport | None = None
        super().__init__(uri=uri, user=user, password=password, db_name=db_name, token=token, timeout=timeout, **kwargs)

    def _http(self) -> SyncTransport:
        # Created on first use: clients that never rerank open no HTTP pool and no threads. Under a lock: the
        # first searches of many threads at once must share ONE transport, or each would get its own client-wide
        # limit (seen: 48 requests in flight with a limit of 16).
        if self._transport is None:
            with _TRANSPORT_LOCK:
                if self._transport is None:
                    self._transport = SyncTransport(self._rerank_client_limit, policy=self._provider_config.policy)
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
        chains = served_chains(kwargs)  # Milvus 3.0 function chains calling one of our rerank models
        if chains is not None:
            call = search_kwargs(
                kwargs, data, filter, limit, output_fields, search_params, timeout, partition_names, anns_field
            )
            return self._run(self._chain_flow(collection_name, chains, call, ranker))
        ranker = with_boosts(ranker, kwargs)  # FunctionScore([boosts..., model]): the boosts join the first stage
        if not is_model_ranker(ranker):
            with unknown_to_both(ranker):
                return super().search(
                    collection_name, data, filter, limit, output_fields, search_params, timeout, partition_names,
                    anns_field, ranker, **kwargs,
                )  # fmt: skip
        call = search_kwargs(
            kwargs, data, filter, limit, output_fields, search_params, timeout, partition_names, anns_field
        )
        return self._run(self._search_flow(collection_name, ranker, call))

    def search_iterator(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        # pymilvus's iterators call the connection's search, not this class's: a model ranker (or a function chain
        # calling rerank_model) would reach Milvus as it is. Milvus refuses the pair; so do we, before any search.
        ranker = kwargs.get("ranker")
        model = is_model_ranker(ranker) or split_function_score(ranker) is not None  # FunctionScore([boosts, model])
        refuse_iterator_rerank(model, kwargs.get("function_chains"))
        return super().search_iterator(collection_name, *args, **kwargs)

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
        if kwargs.get("function_chains") is not None:  # else pymilvus would pass it on to each sub-search
            check_search(1, False, False, hybrid=True)
        if not is_model_ranker(ranker):
            with unknown_to_both(ranker):
                return super().hybrid_search(
                    collection_name, reqs, ranker, limit, output_fields, timeout, partition_names, **kwargs
                )
        common = dict(kwargs, output_fields=output_fields, timeout=timeout, partition_names=partition_names)
        return self._run(self._hybrid_flow(collection_name, reqs, ranker, limit, common))

    def _run(self, flow: Flow) -> Any:
        plain = super().search
        return drive(
            flow,
            super().describe_collection,
            lambda calls: [plain(**call) for call in calls],
            lambda step: self._http().rerank(step.spec, step.batches, step.stats, step.deadline),
            lambda step: self._http().tokenize(step.spec, step.texts, step.stats, step.deadline),
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        super().close()
