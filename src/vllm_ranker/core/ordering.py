"""The pure part of a rerank: candidates, batch plan, ordering, pagination, rounding. No HTTP, no Milvus."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class Candidate:
    """One first-stage hit: primary key, the text sent to the model, the entity fields returned to the user."""

    pk: Any
    text: str
    entity: dict[str, Any]
    distance: float = 0.0  # the first-stage score, returned as it is when on_failure=passthrough falls back
    first_stage: float = 0.0  # that score normalised over its hit list, best 1.0 (fuse: weighted; core/fusion.py)


@dataclass(frozen=True, slots=True)
class Batch:
    """Documents ``[start, start+len(documents))`` of one query's candidates, sent in one request."""

    query_index: int
    query: str
    start: int
    documents: Sequence[str]


@dataclass(slots=True)
class ScoredHit:
    pk: Any
    distance: float
    entity: dict[str, Any] = field(default_factory=dict)


def union_by_pk(result_lists: Iterable[Iterable[Candidate]]) -> list[Candidate]:
    """Hybrid search's candidate set: first occurrence wins (request order, then rank order)."""
    seen: set[Hashable] = set()
    union: list[Candidate] = []
    for results in result_lists:
        for candidate in results:
            if candidate.pk not in seen:
                seen.add(candidate.pk)
                union.append(candidate)
    return union


def plan_batches(queries: Sequence[str], candidates: Sequence[Sequence[Candidate]], batch_size: int) -> list[Batch]:
    """Split every query's candidates into requests of at most ``batch_size`` documents.

    A query with no candidates gets no request (Milvus makes no call either).
    """
    batches: list[Batch] = []
    for query_index, (query, hits) in enumerate(zip(queries, candidates, strict=True)):
        for start in range(0, len(hits), batch_size):
            chunk = hits[start : start + batch_size]
            batches.append(Batch(query_index, query, start, _Texts(chunk)))
    return batches


class _Texts(Sequence[str]):
    """A lazy view of candidates' texts: the request body is the only copy built, and only when it is sent."""

    __slots__ = ("_hits",)

    def __init__(self, hits: Sequence[Candidate]) -> None:
        self._hits = hits

    def __len__(self) -> int:
        return len(self._hits)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [c.text for c in self._hits[index]]
        return self._hits[index].text

    def __iter__(self) -> Iterator[str]:
        return (c.text for c in self._hits)


def order_hits(candidates: Sequence[Candidate], scores: Sequence[float]) -> list[ScoredHit]:
    """Model score as float32 (what Milvus returns), descending; ties by primary key ascending."""
    with np.errstate(over="ignore"):  # a score beyond float32 is +/-inf (README), not a RuntimeWarning
        scored = [ScoredHit(c.pk, float(np.float32(s)), c.entity) for c, s in zip(candidates, scores, strict=True)]
    scored.sort(key=lambda h: (-h.distance, h.pk))
    return scored


def page(hits: list[ScoredHit], offset: int, limit: int | None) -> list[ScoredHit]:
    """``[offset, offset + limit)`` of the reranked hits; limit None: all from offset."""
    return hits[offset : None if limit is None else offset + limit]


def round_distances(hits: list[ScoredHit], round_decimal: int) -> list[ScoredHit]:
    """Milvus rounds after sorting; -1 means no rounding."""
    if round_decimal < 0:
        return hits
    for hit in hits:
        hit.distance = round(hit.distance, round_decimal)
    return hits


def scatter(
    batches: Sequence[Batch], batch_scores: Sequence[Sequence[float]], sizes: Sequence[int]
) -> list[list[float]]:
    """Put each batch's scores back at its documents' positions, per query."""
    per_query: list[list[float]] = [[0.0] * n for n in sizes]
    for batch, scores in zip(batches, batch_scores, strict=True):
        per_query[batch.query_index][batch.start : batch.start + len(scores)] = scores
    return per_query


# --- after ordering: score normalisation and the min_score threshold ---
"""
Order always follows the raw model score (float32, descending; ties by primary key): both normalisations are
monotonic, and ordering by a saturated sigmoid (1.0 for every score above ~17) would throw the model's order away.
"""

NORMALIZATIONS = ("raw", "sigmoid", "minmax")


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)  # no overflow for very negative logits
    return z / (1.0 + z)


def normalize(hits: list[ScoredHit], method: str) -> list[ScoredHit]:
    """Map the distances of one query's ordered hits in place: raw (as is), sigmoid (logits -> 0..1), or
    minmax over these hits (best 1.0, worst 0.0; all 1.0 when every score is equal)."""
    if method == "raw" or not hits:
        return hits
    if method == "sigmoid":
        for hit in hits:
            hit.distance = float(np.float32(_sigmoid(hit.distance)))
        return hits
    if method == "minmax":
        _minmax(hits)
        return hits
    raise ValueError(f"unknown score normalization {method!r}")


def _minmax(hits: list[ScoredHit]) -> None:
    # A service may answer +-inf (tests/hostile): the span would be inf and inf/inf NaN. Infinities take the ends
    # (+inf 1.0, -inf 0.0) and the finite scores spread over their own range, so the map stays monotonic.
    finite = [h.distance for h in hits if math.isfinite(h.distance)]
    high, low = (max(finite), min(finite)) if finite else (0.0, 0.0)
    span = high - low
    # Equal finite scores: 1.0 (the best), unless a +inf hit is better still.
    flat = 0.0 if any(h.distance == math.inf for h in hits) else 1.0
    for hit in hits:
        if hit.distance == math.inf:
            hit.distance = 1.0
        elif hit.distance == -math.inf:
            hit.distance = 0.0
        else:
            hit.distance = float(np.float32((hit.distance - low) / span)) if span > 0 else flat


def at_least(hits: list[ScoredHit], min_score: float | None) -> list[ScoredHit]:
    """Drop hits whose (normalised) distance is under ``min_score``; hits are ordered, so cut at the first."""
    if min_score is None:
        return hits
    for position, hit in enumerate(hits):
        if hit.distance < min_score:
            return hits[:position]
    return hits
