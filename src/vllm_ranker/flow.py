"""A model-reranked search, written once for both clients.

The flow is a generator that yields the I/O it needs (describe a collection, run Milvus searches, rerank
batches) and receives the answers; ``MilvusClient`` and ``AsyncMilvusClient`` only carry those steps out,
blocking or awaiting. Everything else (validation, candidates, ordering, pagination) happens here, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymilvus import AnnSearchRequest, Function

from .engine import (
    Batch,
    Candidate,
    ScoredHit,
    order_hits,
    page,
    plan_batches,
    round_distances,
    scatter,
    union_by_pk,
)
from .errors import RerankParamError
from .results import make_result
from .spec import CollectionInfo, RerankSpec, parse_ranker
from .stats import RerankStats


@dataclass(frozen=True, slots=True)
class Describe:
    collection_name: str


@dataclass(frozen=True, slots=True)
class Searches:
    """Plain Milvus searches (keyword arguments of ``MilvusClient.search``), answered in the same order."""

    calls: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Rerank:
    spec: RerankSpec
    batches: Sequence[Batch]
    stats: RerankStats


Step = Describe | Searches | Rerank
Flow = Generator[Step, Any, Any]


class SchemaCache:
    """Per-client cache of what the ranker needs from each collection's schema: one describe per collection,
    not one per search (a describe costs as much as a small search)."""

    def __init__(self) -> None:
        self._infos: dict[str, CollectionInfo] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionInfo | None:
        with self._lock:
            return self._infos.get(name)

    def put(self, name: str, info: CollectionInfo) -> None:
        with self._lock:
            self._infos[name] = info

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._infos.clear()
            else:
                self._infos.pop(name, None)


def _spec(
    cache: SchemaCache, collection_name: str, ranker: Function
) -> Generator[Step, Any, tuple[RerankSpec, CollectionInfo]]:
    info = cache.get(collection_name)
    fresh = info is None
    if info is None:
        info = CollectionInfo.from_describe((yield Describe(collection_name)))
        cache.put(collection_name, info)
    try:
        return parse_ranker(ranker, info), info
    except RerankParamError:
        if fresh:
            raise
    # The cached schema may be stale (collection re-created elsewhere): describe again, once.
    info = CollectionInfo.from_describe((yield Describe(collection_name)))
    cache.put(collection_name, info)
    return parse_ranker(ranker, info), info


def _fetch_fields(output_fields: Sequence[str] | None, text_field: str) -> list[str]:
    fields = list(output_fields or [])
    if text_field not in fields and "*" not in fields:
        fields.append(text_field)
    return fields


def _candidates(
    hits: Any, info: CollectionInfo, text_field: str, output_fields: Sequence[str] | None
) -> list[Candidate]:
    keep_text = bool(output_fields) and (text_field in output_fields or "*" in output_fields)  # type: ignore[operator]
    out: list[Candidate] = []
    for hit in hits:
        entity = dict(hit.get("entity") or {})
        text = entity.get(text_field)
        if not keep_text:
            entity.pop(text_field, None)
        if not output_fields:
            entity = {}
        out.append(Candidate(hit[info.pk_name], "" if text is None else str(text), entity))
    return out


def _refuse_grouping(kwargs: Mapping[str, Any]) -> None:
    if kwargs.get("group_by_field"):
        raise RerankParamError(
            "a model ranker cannot be combined with group_by_field (Milvus documents the same limit): "
            "drop group_by_field, or rerank without grouping and group the reranked hits yourself"
        )


def _rerank(
    spec: RerankSpec, queries: Sequence[str], candidates: list[list[Candidate]], stats: RerankStats
) -> Generator[Step, Any, list[list[float]]]:
    batches = plan_batches(queries, candidates, spec.batch_size)
    stats.candidates = sum(len(c) for c in candidates)
    stats.batches = len(batches)
    started = time.perf_counter()
    batch_scores = (yield Rerank(spec, batches, stats)) if batches else []
    stats.rerank_seconds = time.perf_counter() - started
    return scatter(batches, batch_scores, [len(c) for c in candidates])


def _nq(data: Any) -> int:
    if isinstance(data, (list, tuple)):
        if data and isinstance(data[0], (int, float)) and not isinstance(data[0], bool):
            return 1  # one bare vector
        return len(data)
    return 1


def search_flow(
    cache: SchemaCache,
    collection_name: str,
    ranker: Function,
    search_kwargs: dict[str, Any],
) -> Flow:
    """Plain search: Milvus returns ``limit`` hits after ``offset`` (vector order); the model reorders them."""
    spec, info = yield from _spec(cache, collection_name, ranker)
    data = search_kwargs.get("data")
    queries = spec.queries_for(_nq(data), data if isinstance(data, list) else None)
    _refuse_grouping(search_kwargs)
    round_decimal = int(search_kwargs.pop("round_decimal", -1))
    output_fields = search_kwargs.get("output_fields")
    call = dict(
        search_kwargs,
        collection_name=collection_name,
        output_fields=_fetch_fields(output_fields, spec.text_field),
    )
    stats = RerankStats()
    started = time.perf_counter()
    (found,) = yield Searches([call])
    stats.search_seconds = time.perf_counter() - started
    candidates = [_candidates(hits, info, spec.text_field, output_fields) for hits in found]
    scores = yield from _rerank(spec, queries, candidates, stats)
    ranked = [
        round_distances(order_hits(c, s), round_decimal) for c, s in zip(candidates, scores, strict=True)
    ]
    return make_result(ranked, info.pk_name, {"rerank": stats})


def hybrid_flow(
    cache: SchemaCache,
    collection_name: str,
    reqs: Sequence[AnnSearchRequest],
    ranker: Function,
    limit: int,
    common: dict[str, Any],
) -> Flow:
    """Hybrid search: each request runs with its own limit/filter/params; the union (first occurrence wins)
    is reranked, then ``[offset, offset+limit)`` is returned."""
    spec, info = yield from _spec(cache, collection_name, ranker)
    if not reqs:
        raise RerankParamError("hybrid_search needs at least one AnnSearchRequest")
    nqs = {_nq(r.data) for r in reqs}
    if len(nqs) != 1:
        raise RerankParamError(
            f"the AnnSearchRequests of one hybrid_search must search the same number of vectors, got {sorted(nqs)}"
        )
    texts = next(
        (r.data for r in reqs if isinstance(r.data, list) and all(isinstance(t, str) for t in r.data)), None
    )
    queries = spec.queries_for(nqs.pop(), texts)
    _refuse_grouping(common)
    offset = int(common.pop("offset", 0) or 0)
    round_decimal = int(common.pop("round_decimal", -1))
    output_fields = common.get("output_fields")
    fetch = _fetch_fields(output_fields, spec.text_field)
    calls = []
    for req in reqs:
        call = dict(
            common,
            collection_name=collection_name,
            data=req.data,
            anns_field=req.anns_field,
            search_params=req.param,
            limit=req.limit,
            output_fields=fetch,
            filter=req.expr or "",
        )
        if req.expr_params:
            call["filter_params"] = req.expr_params
        calls.append(call)
    stats = RerankStats()
    started = time.perf_counter()
    found = yield Searches(calls)
    stats.search_seconds = time.perf_counter() - started
    candidates = [
        union_by_pk(_candidates(res[q], info, spec.text_field, output_fields) for res in found)
        for q in range(len(queries))
    ]
    scores = yield from _rerank(spec, queries, candidates, stats)
    ranked: list[list[ScoredHit]] = [
        round_distances(page(order_hits(c, s), offset, limit), round_decimal)
        for c, s in zip(candidates, scores, strict=True)
    ]
    return make_result(ranked, info.pk_name, {"rerank": stats})
