"""What ``MilvusClient`` and ``AsyncMilvusClient`` share: the ranker's state, the dispatch to the flow, the
keyword arguments of a search, and ONE list of the pymilvus methods that change a collection's schema.

The two clients differ only in how they carry the flow's steps out (blocking or awaited); see core/flow.py.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from pymilvus import MilvusException

from vllm_ranker.core.chain import chain_flow, chain_protos, serves_chain
from vllm_ranker.core.flow import hybrid_flow, search_flow
from vllm_ranker.core.function_score import split_function_score
from vllm_ranker.core.provider_config import ProviderConfig
from vllm_ranker.core.schema import SCHEMA_CHANGES, SchemaCache
from vllm_ranker.core.score_cache import ScoreCache
from vllm_ranker.core.spec import foreign_provider, unknown_everywhere
from vllm_ranker.errors import RerankParamError
from vllm_ranker.provider_settings import ConfigSource, PolicySource, load_provider_config, with_endpoint_policy

# pymilvus methods after which the ranker's cached view of a collection's schema may be wrong (core/schema.py has
# the one list, shared with the gateway). Both clients override exactly these (a test checks it).
SCHEMA_CHANGING: tuple[str, ...] = tuple(method for change in SCHEMA_CHANGES for method in change.methods)
# These may concern other names than their first argument (a rename's new name, a dropped database's collections):
# the cache is cleared whole.
_FORGET_ALL = frozenset(method for change in SCHEMA_CHANGES if change.whole for method in change.methods)


class RerankState:
    """The ranker's per-client state: the schema cache, the score cache and the providers' configuration (keys and
    URLs a Function does not carry: provider_settings.py). The transport is the driver's own."""

    _schemas: SchemaCache
    _scores: ScoreCache
    _rerank_client_limit: int
    _provider_config: ProviderConfig

    def _init_rerank(
        self,
        client_limit: int,
        cache_size: int,
        rerank_config: ConfigSource = None,
        endpoint_policy: PolicySource = None,
    ) -> None:
        config = load_provider_config(rerank_config)  # first: a bad file fails before connecting
        # Where documents may go (core/endpoint_policy.py): the flows refuse other endpoints before any search, the
        # transport checks the addresses it connects to.
        self._provider_config = with_endpoint_policy(config, endpoint_policy, "endpoint_policy=")
        self._schemas = SchemaCache()
        self._scores = ScoreCache(cache_size)  # used by Functions with params['cache'] true
        self._rerank_client_limit = client_limit

    def _search_flow(self, collection_name: str, ranker: Any, search_kwargs: dict[str, Any]) -> Any:
        return search_flow(
            self._schemas, collection_name, ranker, search_kwargs, self._scores, config=self._provider_config
        )

    def _hybrid_flow(
        self, collection_name: str, reqs: list[Any], ranker: Any, limit: int, common: dict[str, Any]
    ) -> Any:
        return hybrid_flow(
            self._schemas, collection_name, reqs, ranker, limit, common, self._scores, config=self._provider_config
        )

    def _chain_flow(self, collection_name: str, chains: list[Any], call: dict[str, Any], ranker: Any) -> Any:
        return chain_flow(
            self._schemas,
            collection_name,
            chains,
            call,
            self._scores,
            config=self._provider_config,
            has_ranker=ranker is not None,
        )

    def _forget_schema(self, method: str, collection_name: str | None) -> None:
        self._schemas.forget(None if method in _FORGET_ALL else collection_name)


def forget_schema_on_change(cls: type[Any]) -> type[Any]:
    """Class decorator: every method of SCHEMA_CHANGING that the pymilvus base class has is overridden to forget
    the cached schema first (a coroutine function stays one, so it serves the async client too)."""
    for name in SCHEMA_CHANGING:
        base_method = getattr(super(cls, cls), name, None)
        if base_method is None:  # an older pymilvus without this method
            continue
        setattr(cls, name, _forgetting(cls, name, base_method))
    return cls


def _forgetting(cls: type[Any], name: str, base_method: Callable[..., Any]) -> Callable[..., Any]:
    def collection_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return args[0] if args else kwargs.get("collection_name", kwargs.get("old_name"))

    if inspect.iscoroutinefunction(base_method):

        @functools.wraps(base_method)
        async def forget_then_await(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._forget_schema(name, collection_of(args, kwargs))
            return await getattr(super(cls, self), name)(*args, **kwargs)

        return forget_then_await

    @functools.wraps(base_method)
    def forget_then_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._forget_schema(name, collection_of(args, kwargs))
        return getattr(super(cls, self), name)(*args, **kwargs)

    return forget_then_call


def search_kwargs(
    kwargs: dict[str, Any],
    data: Any,
    filter: str,
    limit: int,
    output_fields: list[str] | None,
    search_params: dict[str, Any] | None,
    timeout: float | None,
    partition_names: list[str] | None,
    anns_field: str | None,
) -> dict[str, Any]:
    """The keyword arguments of ``MilvusClient.search`` that the flow works from (and hands back in its steps)."""
    return dict(
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


@contextlib.contextmanager
def unknown_to_both(ranker: Any) -> Iterator[None]:
    """Around a search sent to Milvus as it is: when its ranker names a provider we do not serve and Milvus refuses
    it as unknown too, the error is Milvus's own message naming what we and the server serve (Milvus Lite's
    names only its own table, which would hide that the provider works here)."""
    provider = foreign_provider(ranker)
    try:
        yield
    except MilvusException as exc:
        message = None if provider is None else unknown_everywhere(provider, str(exc.message))
        if message is None:
            raise
        raise RerankParamError(message) from None


def with_boosts(ranker: Any, kwargs: dict[str, Any]) -> Any:
    """The ranker a search's flow runs: for a ``FunctionScore`` of boost functions and a model ranker we serve
    (core/function_score.py), the model ranker, with the boosts put in ``kwargs`` as the first stage's own ranker
    (Milvus applies them in the first stage's plan); any other ranker as it is."""
    split = split_function_score(ranker)
    if split is None:
        return ranker
    if split.first_stage is not None:
        kwargs["ranker"] = split.first_stage
    return split.model


def served_chains(kwargs: dict[str, Any]) -> list[Any] | None:
    """The protos of a search's ``function_chains`` when we run them (a ``rerank_model`` with a provider we serve:
    core/chain/), taken out of ``kwargs``; else None and ``kwargs`` is left for pymilvus (which also gives its own
    message for a value that is not a chain)."""
    raw = kwargs.get("function_chains")
    if raw is None:
        return None
    try:
        protos = chain_protos(raw)
    except RerankParamError:
        return None
    if not serves_chain(protos):
        return None
    del kwargs["function_chains"]
    return protos
