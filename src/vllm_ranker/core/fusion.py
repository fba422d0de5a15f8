"""Fusion with the first stage (the ``fuse`` param): the model's score combined with the first stage's, inside the
rerank window, before ordering. Pure.

- ``rrf``: by ranks only, ``1/(k + model rank) + 1/(k + first-stage rank)`` (ranks 1-based; the model's ties take
  the first-stage order), so no metric has to be understood.
- ``weighted``: ``weight * model + (1 - weight) * first stage``, each min-max normalised over the query's
  candidates (best 1.0, worst 0.0, all 1.0 when equal). Milvus returns every hit list best first, so the direction
  of a metric is read from that order: a list whose first distance is smaller than its last (L2) is turned around
  before normalising (``first_stage_scores``), whatever the field (dense, sparse, BM25).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FUSE_METHODS = ("rrf", "weighted")
DEFAULT_RRF_K = 60.0
DEFAULT_WEIGHT = 0.5


@dataclass(frozen=True, slots=True)
class FuseSpec:
    method: str  # one of FUSE_METHODS
    k: float = DEFAULT_RRF_K  # rrf
    weight: float = DEFAULT_WEIGHT  # weighted: the model's share


def minmax(scores: Sequence[float]) -> list[float]:
    """Best 1.0, worst 0.0, all 1.0 when equal; +inf 1.0 and -inf 0.0 (a hostile service), finite ones between."""
    finite = [s for s in scores if math.isfinite(s)]
    high, low = (max(finite), min(finite)) if finite else (0.0, 0.0)
    span = high - low
    out = []
    for s in scores:
        if s == math.inf:
            out.append(1.0)
        elif s == -math.inf or math.isnan(s):
            out.append(0.0)
        else:
            out.append((s - low) / span if span > 0 else 1.0)
    return out


def first_stage_scores(distances: Sequence[float]) -> list[float]:
    """One hit list's first-stage distances, normalised (best 1.0), turned around when smaller is better."""
    if len(distances) > 1 and distances[0] < distances[-1]:
        return minmax([-d for d in distances])
    return minmax(distances)


def fuse(spec: FuseSpec, model: Sequence[float], first_stage: Sequence[float]) -> list[float]:
    """One query's fused scores; ``model`` the model's scores and ``first_stage`` the normalised first-stage scores,
    both in first-stage order (the candidates' order, which is the first-stage rank)."""
    if spec.method == "rrf":
        order = sorted(range(len(model)), key=lambda i: (-_comparable(model[i]), i))
        model_rank = [0] * len(model)
        for rank, i in enumerate(order, start=1):
            model_rank[i] = rank
        return [1 / (spec.k + model_rank[i]) + 1 / (spec.k + i + 1) for i in range(len(model))]
    if spec.method == "weighted":
        normalised = minmax(model)
        return [spec.weight * m + (1 - spec.weight) * f for m, f in zip(normalised, first_stage, strict=True)]
    raise ValueError(f"unknown fusion method {spec.method!r}")


def _comparable(score: float) -> float:
    return -math.inf if math.isnan(score) else score
