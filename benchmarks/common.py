"""Shared set-up for the benchmarks: a Milvus Lite collection of random vectors and texts."""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vllm_ranker import DataType, MilvusClient

DIM = 32
WORDS = [
    "vector",
    "search",
    "rerank",
    "model",
    "energy",
    "python",
    "milvus",
    "cluster",
    "latency",
    "gpu",
    "batch",
    "query",
    "document",
    "index",
    "score",
    "dense",
    "sparse",
    "hybrid",
    "ranking",
    "relevance",
    "cross",
    "encoder",
    "token",
]


def make_collection(
    n_docs: int, words_per_doc: int = 40, seed: int = 7
) -> tuple[MilvusClient, tempfile.TemporaryDirectory[str]]:
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="vllm-ranker-bench-")
    client = MilvusClient(uri=str(Path(tmp.name) / "bench.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document", DataType.VARCHAR, max_length=8000)
    schema.add_field("dense_vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("dense_vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("bench", schema=schema, index_params=index)
    rows = [
        {
            "id": i,
            "document": " ".join(rng.choice(WORDS) for _ in range(words_per_doc)),
            "dense_vector": [rng.random() for _ in range(DIM)],
        }
        for i in range(n_docs)
    ]
    for start in range(0, n_docs, 1000):
        client.insert("bench", rows[start : start + 1000])
    client.flush("bench")
    return client, tmp


def query_vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(DIM)]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Run the contenders round-robin so machine noise hits them alike; median seconds of each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def _serve(conn: Any, kwargs: dict[str, Any]) -> None:
    from vllm_ranker.testing import RerankServer

    with RerankServer(**kwargs) as srv:
        conn.send(srv.endpoint)
        conn.recv()  # until the parent says stop


@contextlib.contextmanager
def loopback_service(**kwargs: Any) -> Iterator[str]:
    """A loopback vLLM rerank server in its OWN process (so it does not share our GIL); yields its endpoint."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(child, kwargs), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
