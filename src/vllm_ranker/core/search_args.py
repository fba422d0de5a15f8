"""pymilvus 3's search arguments beside a model ranker: which ones keep their meaning through the rerank and which
ones are refused before any search (docs/semantics.md, "search_iterator and pymilvus 3's new search arguments").

Pure: it reads keyword arguments (the clients' ``search``/``search_iterator``, or what the gateway read from a
SearchRequest) and function-chain protos; the clients, the flow and the gateway share it. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vllm_ranker.errors import RerankParamError

# The keys pymilvus's search iterators put in a search's params (client/constants.py: ITERATOR_FIELD,
# ITER_SEARCH_V2_KEY); Milvus's proxy treats "True"/"true" under ``iterator`` as an iterator page.
ITERATOR_KEYS = ("iterator", "search_iter_v2")

# Milvus 3's proxy (PR 51347, internal/proxy/task_search.go) refuses a search-iterator-v2 page with a function
# rerank (function_score or a rerank function chain): the iterator's next page starts below the last page's
# score, which a rerank has replaced by a model score.
ITERATOR_REFUSAL = (
    "function rerank is not supported with search iterator v2: a search iterator continues below the last "
    "first-stage distance of each page, which a model ranker replaces, so pages would repeat or skip hits; "
    "page with search(limit=..., offset=...) instead (the model reorders each page), or set rerank_window in "
    "the ranker's params to rerank the top N once and page through them with offset"
)
# Milvus 3's proxy (initSearchRequest): order_by_fields beside a function_score.
ORDER_BY_REFUSAL = (
    "order_by and function_score cannot be used together: they specify conflicting sort criteria; "
    "drop order_by_fields to get the model's order, or drop the ranker to sort by the fields"
)
# Ours (Milvus has no check): an aggregation answers buckets, not the ranked list the model reorders.
AGGREGATION_REFUSAL = (
    "a model ranker cannot be combined with search_aggregation: the aggregation answers buckets of hits, not "
    "the ranked list the model reorders (Milvus documents the same limit for group_by_field); drop "
    "search_aggregation, or rerank without it and group the reranked hits yourself"
)
# Ours: Milvus runs a highlighter beside a rerank, but the reranked hits here do not carry its results yet.
HIGHLIGHTER_REFUSAL = (
    "a model ranker cannot be combined with highlighter yet: the reranked hits would come back without the "
    "highlights; drop highlighter, or search the reranked ids again without the ranker to highlight them"
)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def is_iterator_search(values: Mapping[str, Any]) -> bool:
    """Whether a search's keyword arguments (or the search_params of its request) mark a search-iterator page."""
    return any(_truthy(values.get(key)) for key in ITERATOR_KEYS)


def has_rerank_model(chains: Any) -> bool:
    """Whether function chains (pymilvus ``FunctionChain``s, their protos, or a request's repeated field) call a
    rerank model (core/chain/decode.py reads them); a value that is no chain is pymilvus's to refuse."""
    # Imported here: core/chain's flow imports this module (its checks), so a top-level import would be a cycle.
    from vllm_ranker.core.chain.decode import chain_protos, has_model_rerank

    try:
        return has_model_rerank(chain_protos(chains))
    except RerankParamError:
        return False


def refuse_iterator_rerank(model_ranker: bool, function_chains: Any) -> None:
    """``search_iterator`` with a model ranker, or with a function chain calling a rerank model: refused before
    any search, with Milvus's message and what to do instead."""
    if model_ranker or has_rerank_model(function_chains):
        raise RerankParamError(ITERATOR_REFUSAL)


def refuse_beside_model_ranker(kwargs: Mapping[str, Any]) -> None:
    """The search arguments a model-reranked search refuses before any search (the flow's first check)."""
    params = kwargs.get("search_params")
    if is_iterator_search(kwargs) or (isinstance(params, Mapping) and is_iterator_search(params)):
        raise RerankParamError(ITERATOR_REFUSAL)
    if kwargs.get("order_by_fields"):
        raise RerankParamError(ORDER_BY_REFUSAL)
    if kwargs.get("search_aggregation") is not None and kwargs.get("search_aggregation") is not False:
        raise RerankParamError(AGGREGATION_REFUSAL)
    if kwargs.get("highlighter") is not None and kwargs.get("highlighter") is not False:
        raise RerankParamError(HIGHLIGHTER_REFUSAL)


def ids_count(data: Any, ids: Any) -> int | None:
    """nq of a search by primary keys (``ids=``: one query per id, as pymilvus sends ``nq=len(ids)``); None when
    the search has data (the flow counts those)."""
    if data is not None or ids is None:
        return None
    if isinstance(ids, (int, str)):
        return 1
    return len(list(ids))
