"""Optional Prometheus metrics (``pip install 'vllm-ranker[metrics]'``); without prometheus_client, no-ops.

The metrics live in prometheus_client's default registry, created on the first reranked call, so an
application exposes them with its usual ``prometheus_client.start_http_server(...)`` or ASGI app.
Labels are only the provider name and an outcome: never an endpoint (it may hold credentials) nor a query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm_ranker.stats import RerankStats

try:
    import prometheus_client
except ImportError:  # the optional extra is not installed
    prometheus_client = None  # type: ignore[assignment]


def available() -> bool:
    return prometheus_client is not None


class LazyMetrics:
    """Metrics made once, on first use, in prometheus_client's default registry: the registry refuses a name
    registered twice, and an application that never reranks registers nothing. ``get()`` is None without the
    extra. The library's counters (below) and the gateway's (gateway/metrics.py) are each one of these."""

    def __init__(self, build: Callable[[Any], dict[str, Any]]) -> None:
        self._build = build  # given the prometheus_client module, returns the metrics by name
        self._lock = threading.Lock()
        self._metrics: dict[str, Any] | None = None

    def get(self) -> dict[str, Any] | None:
        if prometheus_client is None:
            return None
        with self._lock:
            if self._metrics is None:
                self._metrics = self._build(prometheus_client)
            return self._metrics


def _build(p: Any) -> dict[str, Any]:
    return {
        "calls": p.Counter("vllm_ranker_calls", "Reranked search calls", ["provider", "outcome"]),
        "candidates": p.Counter("vllm_ranker_candidates", "Candidates reranked", ["provider"]),
        "requests": p.Counter("vllm_ranker_requests", "HTTP requests sent, retries included", ["provider"]),
        "retries": p.Counter("vllm_ranker_retries", "HTTP requests that were retries", ["provider"]),
        "cache_hits": p.Counter("vllm_ranker_cache_hits", "Scores answered by the cache", ["provider"]),
        "cache_misses": p.Counter("vllm_ranker_cache_misses", "Scores not in the cache", ["provider"]),
        "tokens": p.Counter("vllm_ranker_prompt_tokens", "Tokens reported by the service", ["provider"]),
        "ejections": p.Counter("vllm_ranker_endpoint_ejections", "Endpoints ejected after failures"),
        "rerank_seconds": p.Histogram(
            "vllm_ranker_rerank_seconds", "Wall time of the rerank step of one call", ["provider"]
        ),
        "overhead_seconds": p.Histogram(
            "vllm_ranker_overhead_seconds",
            "Rerank wall time not spent waiting on the service",
            ["provider"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        ),
    }


_METRICS = LazyMetrics(_build)


def observe_call(provider: str, stats: RerankStats) -> None:
    found = _METRICS.get()
    if found is None:
        return
    outcome = "fallback" if stats.fallback else ("error" if stats.error else "ok")
    found["calls"].labels(provider, outcome).inc()
    for name in ("candidates", "requests", "retries", "cache_hits", "cache_misses"):
        value = getattr(stats, name)
        if value:
            found[name].labels(provider).inc(value)
    if stats.prompt_tokens:
        found["tokens"].labels(provider).inc(stats.prompt_tokens)
    if stats.batches:
        found["rerank_seconds"].labels(provider).observe(stats.rerank_seconds)
        found["overhead_seconds"].labels(provider).observe(stats.overhead_seconds)


def count_ejection() -> None:
    found = _METRICS.get()
    if found is not None:
        found["ejections"].inc()
