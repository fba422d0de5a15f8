"""A model-reranked search, written once for both clients.

The flow is a generator that yields the I/O it needs and is sent the answers; ``MilvusClient`` and
``AsyncMilvusClient`` only carry those steps out, blocking or awaiting (httpx's ``auth_flow`` works the same way).
Everything else (validation, candidates, ordering, pagination) happens here, once.

The step protocol:
- ``yield Describe(name)``: the driver sends back ``describe_collection(name)``'s dict.
- ``yield Searches(calls)``: the driver runs each call as a plain ``search(**call)`` and sends back the list of
  results, in the same order.
- ``yield Rerank(spec, batches, stats, deadline)``: the driver sends back one list of scores per batch; when the
  rerank service fails it throws the ``RerankServiceError`` into the flow instead (``flow.throw(error)``), and the
  flow raises it or falls back to the first-stage order (``on_failure: passthrough``).
- ``yield Tokenize(spec, texts, stats, deadline)`` (before the rerank, for ``chunk.tokens``: token_chunks.py): the
  driver sends back each text's token strings, or throws the tokenizer's ``RerankServiceError`` in, as for a rerank.
- ``return``: the search's result (``StopIteration.value``), shaped like pymilvus's.
Any other exception the flow raises (a ``RerankParamError`` before any I/O, say) ends the search.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymilvus import AnnSearchRequest, Function

from vllm_ranker.core import metrics
from vllm_ranker.core.ordering import (
    Batch,
    Candidate,
    ScoredHit,
    at_least,
    normalize,
    order_hits,
    page,
    plan_batches,
    round_distances,
    scatter,
    union_by_pk,
)
from vllm_ranker.core.provider_config import EMPTY, ProviderConfig
from vllm_ranker.core.results import make_result
from vllm_ranker.core.schema import CollectionInfo, SchemaCache
from vllm_ranker.core.score_cache import ScoreCache, document_digest, scope_digest
from vllm_ranker.core.search_args import ids_count, refuse_beside_model_ranker
from vllm_ranker.core.shaping import candidates_of, fetch_fields, shape_scores
from vllm_ranker.core.spec import RerankSpec, parse_ranker
from vllm_ranker.core.token_chunks import Tokenize, chunk_all, refuse_tokens
from vllm_ranker.errors import RerankParamError, RerankServiceError
from vllm_ranker.stats import RerankStats
from vllm_ranker.values.redaction import redact


@dataclass(frozen=True, slots=True)
class Describe:
    collection_name: str


@dataclass(frozen=True, slots=True)
class Searches:
    """Plain Milvus searches (keyword arguments of ``MilvusClient.search``), answered in the same order."""

    calls: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Rerank:
    """Answered with one list of scores per batch; a ``RerankServiceError`` that ended the rerank is thrown in
    (the flow decides: raise it, or fall back when ``on_failure`` is passthrough)."""

    spec: RerankSpec
    batches: Sequence[Batch]
    stats: RerankStats
    deadline: float | None = None  # time.monotonic() the call's rerank must end by; None: spec.timeout from now


log = logging.getLogger(__name__)

Step = Describe | Searches | Rerank | Tokenize
Flow = Generator[Step, Any, Any]


def _spec(
    cache: SchemaCache, collection_name: str, ranker: Function, config: ProviderConfig = EMPTY
) -> Generator[Step, Any, tuple[RerankSpec, CollectionInfo]]:
    ranker = config.apply(ranker)  # key, URL and enable from the server configuration (docs/semantics.md)
    info = cache.get(collection_name)
    fresh = info is None
    if info is None:
        info = CollectionInfo.from_describe((yield Describe(collection_name)))
        cache.put(collection_name, info)
    try:
        spec = parse_ranker(ranker, info)
    except RerankParamError:
        if fresh:
            raise
        # The cached schema may be stale (collection re-created elsewhere): describe again, once.
        info = CollectionInfo.from_describe((yield Describe(collection_name)))
        cache.put(collection_name, info)
        spec = parse_ranker(ranker, info)
    config.check_endpoints([t.url for t in spec.targets], spec.provider.name)  # before the first-stage search
    refuse_tokens(spec)
    return spec, info


def _refuse_grouping(kwargs: Mapping[str, Any]) -> None:
    if kwargs.get("group_by_field"):
        raise RerankParamError(
            "a model ranker cannot be combined with group_by_field (Milvus documents the same limit): "
            "drop group_by_field, or rerank without grouping and group the reranked hits yourself"
        )


def _rerank(
    spec: RerankSpec,
    queries: Sequence[str],
    candidates: list[list[Candidate]],
    stats: RerankStats,
    score_cache: ScoreCache | None,
    deadline: float | None = None,
) -> Generator[Step, Any, list[list[float]] | None]:
    """Every candidate's model score, per query; None when the service failed and ``on_failure`` is
    passthrough (the caller then returns the first-stage order). Only cache misses are sent."""
    started = time.perf_counter()
    stats.candidates = sum(len(c) for c in candidates)
    cache = score_cache if spec.cache and score_cache is not None else None
    keys: list[list[bytes]] = []
    known: list[list[float | None]] = []
    to_send = candidates
    if cache is not None:
        scopes = [_cache_scope(spec, q) for q in queries]
        keys = [
            [scope + document_digest(c.text) for c in cands] for scope, cands in zip(scopes, candidates, strict=True)
        ]
        known = [cache.get_many(k) for k in keys]
        to_send = [
            [c for c, s in zip(cands, found, strict=True) if s is None]
            for cands, found in zip(candidates, known, strict=True)
        ]
        stats.cache_misses = sum(len(c) for c in to_send)
        stats.cache_hits = stats.candidates - stats.cache_misses
    batches = plan_batches(queries, to_send, spec.batch_size)
    stats.batches = len(batches)
    try:
        reply = (yield Rerank(spec, batches, stats, deadline)) if batches else []
    except RerankServiceError as failed:  # thrown in by the driver
        stats.rerank_seconds = time.perf_counter() - started
        if spec.on_failure != "passthrough":
            raise
        _fall_back(spec, stats, failed)
        return None
    stats.rerank_seconds = time.perf_counter() - started
    sent = scatter(batches, reply, [len(c) for c in to_send])
    if cache is None:
        return sent
    merged: list[list[float]] = []
    for query_keys, found, fresh in zip(keys, known, sent, strict=True):
        fresh_scores = iter(fresh)
        scores = [s if s is not None else next(fresh_scores) for s in found]
        cache.put_many([(k, s) for k, s, f in zip(query_keys, scores, found, strict=True) if f is None], spec.cache_ttl)
        merged.append(scores)
    return merged


def _shaped_rerank(
    spec: RerankSpec,
    queries: Sequence[str],
    candidates: list[list[Candidate]],
    stats: RerankStats,
    score_cache: ScoreCache | None,
) -> Generator[Step, Any, list[list[float]] | None]:
    """``_rerank`` of the documents, or of their chunks (all in the same batches), then shaped (core/shaping.py)."""
    deadline = time.monotonic() + spec.timeout  # token chunks: the tokenize and the rerank within one timeout
    try:
        chunked = yield from chunk_all(spec, candidates, stats, deadline)
    except RerankServiceError as failed:  # the tokenizer's, thrown in by the driver
        if spec.on_failure != "passthrough":
            raise
        _fall_back(spec, stats, failed)
        return shape_scores(spec.shaping, candidates, None, None, stats)
    to_score = candidates if chunked is None else [c.pieces for c in chunked]
    scores = yield from _rerank(spec, queries, to_score, stats, score_cache, deadline)
    return shape_scores(spec.shaping, candidates, scores, chunked, stats)


def _cache_scope(spec: RerankSpec, query: str) -> bytes:
    first = spec.targets[0]
    return scope_digest(spec.provider.name, [t.url for t in spec.targets], first.model, dict(first.options), query)


_warned: set[tuple[Any, ...]] = set()
_warned_lock = threading.Lock()


def _fall_back(spec: RerankSpec, stats: RerankStats, error: RerankServiceError) -> None:
    """Flag the passthrough in the stats; log a warning once per cause (then DEBUG), so a dead service
    does not flood the log with one line per search."""
    stats.fallback = True
    stats.error = str(error)  # the transport's messages are already redacted
    cause = (spec.provider.name, tuple(t.url for t in spec.targets), error.kind, error.status)
    with _warned_lock:
        first = cause not in _warned
        if first:
            if len(_warned) >= 1024:
                _warned.clear()
            _warned.add(cause)
    log.log(
        logging.WARNING if first else logging.DEBUG,
        "rerank failed, returning the first-stage order (on_failure=passthrough): %s",
        redact(stats.error, [spec.api_key]),
    )


def _finish(
    spec: RerankSpec,
    candidates: Sequence[Candidate],
    scores: Sequence[float] | None,
    offset: int,
    limit: int | None,
    round_decimal: int,
) -> list[ScoredHit]:
    """Order by model score, normalise, drop hits under ``min_score``, then page and round. Without
    scores (passthrough) the first-stage order and distances are kept, and min_score is not applied
    (first-stage distances are on another scale)."""
    if scores is None:
        hits = [ScoredHit(c.pk, c.distance, c.entity) for c in candidates]
    else:
        hits = at_least(normalize(order_hits(candidates, scores), spec.score_normalization), spec.min_score)
    return round_distances(page(hits, offset, limit), round_decimal)


def _done(spec: RerankSpec, stats: RerankStats) -> None:
    metrics.observe_call(spec.provider.name, stats)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "reranked with %s: %d candidates, %d cache hits, %d batches, %d requests, %d retries, "
            "service %.1f ms, overhead %.1f ms, %d tokens%s",
            spec.provider.name,
            stats.candidates,
            stats.cache_hits,
            stats.batches,
            stats.requests,
            stats.retries,
            stats.service_seconds * 1000,
            stats.overhead_seconds * 1000,
            stats.prompt_tokens,
            " (fell back to the first-stage order)" if stats.fallback else "",
        )


def _nq(data: Any) -> int:
    if getattr(data, "ndim", None) is not None:  # a numpy array: its rows are the searched vectors
        return 1 if data.ndim <= 1 else int(data.shape[0])
    if isinstance(data, (list, tuple)):
        if data and isinstance(data[0], numbers.Real) and not isinstance(data[0], bool):
            return 1  # one bare vector (numpy scalars too)
        return len(data)
    return 1


def search_flow(
    cache: SchemaCache,
    collection_name: str,
    ranker: Function,
    search_kwargs: dict[str, Any],
    score_cache: ScoreCache | None = None,
    *,
    config: ProviderConfig = EMPTY,
) -> Flow:
    """Plain search: Milvus returns ``limit`` hits after ``offset`` (vector order); the model reorders them."""
    refuse_beside_model_ranker(search_kwargs)  # before any call: iterator, order_by, aggregation, highlighter
    spec, info = yield from _spec(cache, collection_name, ranker, config)
    data = search_kwargs.get("data")
    nq = ids_count(data, search_kwargs.get("ids"))  # search by primary keys: one query per id
    queries = spec.queries_for(_nq(data) if nq is None else nq, data if isinstance(data, list) else None)
    _refuse_grouping(search_kwargs)
    round_decimal = int(search_kwargs.pop("round_decimal", -1))
    output_fields = search_kwargs.get("output_fields")
    call = dict(
        search_kwargs,
        collection_name=collection_name,
        output_fields=fetch_fields(output_fields, spec.text_field, spec.shaping),
    )
    offset, limit = 0, None  # Milvus's semantics: its offset already skipped hits by vector order
    if spec.rerank_window is not None:
        offset, limit = _window(spec.rerank_window, call)
    stats = RerankStats.of(spec.provider.name, [t.url for t in spec.targets])
    started = time.perf_counter()
    (found,) = yield Searches([call])
    stats.search_seconds = time.perf_counter() - started
    candidates = [candidates_of(hits, info.pk_name, spec.text_field, spec.shaping, output_fields) for hits in found]
    scores = yield from _shaped_rerank(spec, queries, candidates, stats, score_cache)
    ranked = [
        _finish(spec, c, None if scores is None else scores[q], offset, limit, round_decimal)
        for q, c in enumerate(candidates)
    ]
    _done(spec, stats)
    return make_result(ranked, info.pk_name, {"rerank": stats})


def _window(window: int, call: dict[str, Any]) -> tuple[int, int]:
    """rerank_window: search the top ``window`` hits from the start, rerank them all, and page afterwards
    (Elasticsearch's rank_window_size); returns the (offset, limit) to apply after reranking."""
    params = dict(call.get("search_params") or {})
    offset = int(call.pop("offset", None) or params.pop("offset", None) or 0)
    limit = int(call.get("limit") or 10)
    _check_window(window, offset, limit)
    call.update(limit=window, search_params=params)
    return offset, limit


def _check_window(window: int, offset: int, limit: int) -> None:
    if window < offset + limit:
        raise RerankParamError(
            f"rerank_window: {window} must be >= offset + limit ({offset} + {limit} = {offset + limit}): "
            "the window is the set of hits reranked and paged through; raise rerank_window or lower limit/offset"
        )


def hybrid_flow(
    cache: SchemaCache,
    collection_name: str,
    reqs: Sequence[AnnSearchRequest],
    ranker: Function,
    limit: int,
    common: dict[str, Any],
    score_cache: ScoreCache | None = None,
    *,
    config: ProviderConfig = EMPTY,
) -> Flow:
    """Hybrid search: each request runs with its own limit/filter/params; the union (first occurrence wins)
    is reranked, then ``[offset, offset+limit)`` is returned."""
    spec, info = yield from _spec(cache, collection_name, ranker, config)
    if not reqs:
        raise RerankParamError("hybrid_search needs at least one AnnSearchRequest")
    nqs = {_nq(r.data) for r in reqs}
    if len(nqs) != 1:
        raise RerankParamError(
            f"the AnnSearchRequests of one hybrid_search must search the same number of vectors, got {sorted(nqs)}"
        )
    texts = next((r.data for r in reqs if isinstance(r.data, list) and all(isinstance(t, str) for t in r.data)), None)
    queries = spec.queries_for(nqs.pop(), texts)
    _refuse_grouping(common)
    offset = int(common.pop("offset", 0) or 0)
    round_decimal = int(common.pop("round_decimal", -1))
    output_fields = common.get("output_fields")
    fetch = fetch_fields(output_fields, spec.text_field, spec.shaping)
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
    stats = RerankStats.of(spec.provider.name, [t.url for t in spec.targets])
    started = time.perf_counter()
    found = yield Searches(calls)
    stats.search_seconds = time.perf_counter() - started
    candidates = [
        union_by_pk(candidates_of(res[q], info.pk_name, spec.text_field, spec.shaping, output_fields) for res in found)
        for q in range(len(queries))
    ]
    if spec.rerank_window is not None:
        # Hybrid: the sub-requests' limits decide what is retrieved (Milvus's semantics); the window caps how
        # many of the union (first occurrence order) are reranked.
        _check_window(spec.rerank_window, offset, limit)
        candidates = [c[: spec.rerank_window] for c in candidates]
    scores = yield from _shaped_rerank(spec, queries, candidates, stats, score_cache)
    ranked: list[list[ScoredHit]] = [
        _finish(spec, c, None if scores is None else scores[q], offset, limit, round_decimal)
        for q, c in enumerate(candidates)
    ]
    _done(spec, stats)
    return make_result(ranked, info.pk_name, {"rerank": stats})
