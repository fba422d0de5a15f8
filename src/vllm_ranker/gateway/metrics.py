"""Prometheus counters of the gateway's RPCs (``pip install 'vllm-ranker[metrics]'``); no-ops without it.

Labels are the MilvusService method name ("other" for any other method, so a caller cannot grow the label set)
and an outcome; never a collection, a query or a token. The rerank counters of the library are added to the
same default registry by the reranked searches themselves.
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from vllm_ranker.core import LazyMetrics, metrics_available

_KNOWN = {m.name for m in milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"].methods}


def _build(p: Any) -> dict[str, Any]:
    return {
        "rpcs": p.Counter("vllm_ranker_gateway_rpcs", "RPCs served by the gateway", ["method", "route", "outcome"]),
        "seconds": p.Histogram(
            "vllm_ranker_gateway_rpc_seconds",
            "Wall time of one RPC in the gateway, backend included",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        ),
    }


_METRICS = LazyMetrics(_build)
available = metrics_available


def observe(method: str, route: str, outcome: str, seconds: float) -> None:
    """route: passthrough or rerank; outcome: ok, error (a Status error answered) or a gRPC code name."""
    found = _METRICS.get()
    if found is None:
        return
    name = method.rpartition("/")[2]
    label = name if name in _KNOWN else "other"
    found["rpcs"].labels(label, route, outcome).inc()
    found["seconds"].labels(label, route).observe(seconds)


def serve(port: int, host: str = "127.0.0.1") -> bool:
    """Expose the default registry on http://host:port/metrics; False when prometheus_client is missing."""
    if not metrics_available():
        return False
    import prometheus_client  # present: checked above

    prometheus_client.start_http_server(port, addr=host)
    return True
