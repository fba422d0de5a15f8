"""Optional Prometheus metrics (``pip install 'vllm-ranker[metrics]'``); without prometheus_client, no-ops.

The metrics live in prometheus_client's default registry, created on the first reranked call, so an
application exposes them with its usual ``prometheus_client.start_http_server(...)`` or ASGI app.
Labels are only the provider name and an outcome: never an endpoint (it may hold credentials) nor a query.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm_ranker.stats import RerankStats

try:
    import prometheus_client
except ImportError:  # the optional extra is not installed
    prometheus_client = None  # type: ignore[assignment]

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None


def available() -> bool:
    return prometheus_client is not None


def _get() -> dict[str, Any] | None:
    global _metrics
    if prometheus_client is None:
        return None
    with _lock:
        if _metrics is None:
            p = prometheus_client
            _metrics = {
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
        return _metrics


def observe_call(provider: str, stats: RerankStats) -> None:
    found = _get()
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
    found = _get()
    if found is not None:
        found["ejections"].inc()
