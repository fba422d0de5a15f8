"""What is done to reranked hits after ordering: score normalisation and the ``min_score`` threshold. Pure.

Order always follows the raw model score (float32, descending; ties by primary key): both normalisations are
monotonic, and ordering by a saturated sigmoid (1.0 for every score above ~17) would throw the model's order away.
"""

from __future__ import annotations

import math

import numpy as np

from .engine import ScoredHit

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
