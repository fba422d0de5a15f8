"""Latency and throughput of one pipeline at a fixed concurrency: warm-up, then N single-query searches from
``concurrency`` threads sharing one client; p50/p95/p99, throughput, and where the time goes.

Each call's time splits, from its ``result.extra["rerank"]`` stats, into
- search: the first-stage Milvus search(es),
- service: time the rerank service was working for us (the rerank step's wall time, less the part of it not
  spent waiting on the service; with several batches in flight, our work that overlaps a wait is off the
  critical path and counts as service),
- ours: everything else (describe, candidates, batch plan, JSON, scheduling, building the result),
so search + service + ours = the call's latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vllm_ranker.tools.errors import ToolInputError
from vllm_ranker.tools.pipelines import Pipeline, Searcher

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Sample:
    latency: float
    search: float
    service: float

    @property
    def ours(self) -> float:
        return max(0.0, self.latency - self.search - self.service)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {f"p{p}": 0.0 for p in PERCENTILES} | {"mean": 0.0}
    arr = np.asarray(values, dtype=float)
    out = {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES}
    out["mean"] = float(arr.mean())
    return out


@dataclass
class BenchReport:
    pipeline: str
    concurrency: int
    queries: int
    warmup: int
    wall_seconds: float
    samples: list[Sample] = field(repr=False)
    errors: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def overhead_share(self) -> float:
        """Our share of all measured latency (sum of ours / sum of latencies)."""
        total = sum(s.latency for s in self.samples)
        return sum(s.ours for s in self.samples) / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "concurrency": self.concurrency,
            "queries": self.queries,
            "completed": len(self.samples),
            "errors": self.errors,
            "warmup": self.warmup,
            "wall_seconds": self.wall_seconds,
            "throughput_qps": self.throughput,
            "latency_s": _percentiles([s.latency for s in self.samples]),
            "search_s": _percentiles([s.search for s in self.samples]),
            "service_s": _percentiles([s.service for s in self.samples]),
            "ours_s": _percentiles([s.ours for s in self.samples]),
            "overhead_share": self.overhead_share,
            "config": self.config,
        }


def _sample(searcher: Searcher, pipeline: Pipeline, text: str, vector: Sequence[float]) -> Sample:
    started = time.perf_counter()
    (answer,) = searcher.run(pipeline, [text], [vector])
    latency = time.perf_counter() - started
    stats = answer.stats
    if stats is None:  # a pipeline without a model ranker: all of it is Milvus
        return Sample(latency, latency, 0.0)
    service = max(0.0, stats.rerank_seconds - stats.overhead_seconds)
    return Sample(latency, stats.search_seconds, service)


def run_bench(
    searcher: Searcher,
    pipeline: Pipeline,
    texts: Sequence[str],
    vectors: Sequence[Sequence[float]],
    *,
    concurrency: int = 1,
    warmup: int = 2,
    progress: Callable[[int, int], None] | None = None,
    config: dict[str, Any] | None = None,
) -> BenchReport:
    """Warm up on the first ``warmup`` queries (not measured), then measure the rest at ``concurrency``."""
    if concurrency < 1:
        raise ToolInputError(f"concurrency {concurrency} must be at least 1")
    if len(texts) != len(vectors) or len(texts) <= warmup:
        raise ToolInputError(f"need more queries ({len(texts)}) than warm-up calls ({warmup}), with one vector each")
    for i in range(warmup):
        _sample(searcher, pipeline, texts[i], vectors[i])
    measured = list(range(warmup, len(texts)))
    samples: list[Sample] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            sample = _sample(searcher, pipeline, texts[i], vectors[i])
        except Exception as exc:  # counted and reported, the run goes on
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        else:
            with lock:
                samples.append(sample)
        if progress is not None:
            with lock:
                done = len(samples) + len(errors)
            progress(done, len(measured))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench") as pool:
        list(pool.map(one, measured))
    wall = time.perf_counter() - started
    return BenchReport(pipeline.name, concurrency, len(measured), warmup, wall, samples, errors, dict(config or {}))
