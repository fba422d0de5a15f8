"""Shared set-up for the benchmarks: a Milvus Lite collection of random vectors and texts."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from vllm_ranker import DataType, Function, FunctionType, MilvusClient

DIM = 32
# fmt: off
WORDS = [
    "vector", "search", "rerank", "model", "energy", "python", "milvus", "cluster", "latency", "gpu", "batch",
    "query", "document", "index", "score", "dense", "sparse", "hybrid", "ranking", "relevance", "cross",
    "encoder", "token",
]
# fmt: on


def random_rows(n_docs: int, words_per_doc: int, seed: int) -> list[dict[str, Any]]:
    """Rows of the benchmark collections: texts of random words and random dense vectors, the same for a seed."""
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "document": " ".join(rng.choice(WORDS) for _ in range(words_per_doc)),
            "dense_vector": [rng.random() for _ in range(DIM)],
        }
        for i in range(n_docs)
    ]


def insert_rows(client: MilvusClient, collection: str, rows: list[dict[str, Any]]) -> None:
    """Insert in chunks of 1,000 (a Milvus message size limit away) and flush."""
    for start in range(0, len(rows), 1000):
        client.insert(collection, rows[start : start + 1000])
    client.flush(collection)


def make_collection(
    n_docs: int, words_per_doc: int = 40, seed: int = 7
) -> tuple[MilvusClient, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory(prefix="vllm-ranker-bench-")
    client = MilvusClient(uri=str(Path(tmp.name) / "bench.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document", DataType.VARCHAR, max_length=8000)
    schema.add_field("dense_vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("dense_vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("bench", schema=schema, index_params=index)
    insert_rows(client, "bench", random_rows(n_docs, words_per_doc, seed))
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


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
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
def own_process(target: Callable[..., None], *args: Any) -> Iterator[tuple[str, Any]]:
    """Run ``target(conn, *args)`` in its OWN process (a simulated service must not share our GIL). The target
    sends its endpoint first, may answer commands on ``conn``, and returns when it receives "stop".
    Yields (endpoint, conn)."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(child, *args), daemon=True)
    process.start()
    try:
        yield parent.recv(), parent
    finally:
        if process.is_alive():
            with contextlib.suppress(OSError):
                parent.send("stop")
            process.join(timeout=10)
        if process.is_alive():
            process.kill()


Pump = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def copy_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Everything ``reader`` gives, written to ``writer`` as it came; ``writer`` closed at the end."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
    finally:
        writer.close()


def serve_tcp_hop(
    conn: Any,
    backend: str,
    upstream: Pump = copy_bytes,
    downstream: Pump = copy_bytes,
    commands: Callable[[Any], object] | None = None,
) -> None:
    """An extra TCP hop on loopback in front of ``backend``, for ``own_process``: each connection gets its own
    backend connection, ``upstream(client, backend)`` and ``downstream(backend, client)`` move the bytes. Sends its
    URI; every message but "stop" goes to ``commands`` and its answer back on ``conn``."""
    host, port = backend.removeprefix("http://").rsplit(":", 1)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend_reader, backend_writer = await asyncio.open_connection(host, int(port))
        for writer in (client_writer, backend_writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(asyncio.CancelledError):  # stopped with the process: no traceback for that
            await asyncio.gather(
                upstream(client_reader, backend_writer),
                downstream(backend_reader, client_writer),
                return_exceptions=True,
            )

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        conn.send(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        loop = asyncio.get_running_loop()
        while (message := await loop.run_in_executor(None, conn.recv)) != "stop":
            conn.send(commands(message) if commands else None)
        server.close()

    asyncio.run(main())


@contextlib.contextmanager
def loopback_service(**kwargs: Any) -> Iterator[str]:
    """A loopback vLLM rerank server in its own process; yields its endpoint."""
    with own_process(_serve, kwargs) as (endpoint, _conn):
        yield endpoint


def vllm_ranker_function(endpoint: str, queries: list[str], name: str = "vllm", **params: Any) -> Function:
    """The Milvus docs' vLLM ranker Function, with extra params (maxBatch, timeout, ...)."""
    return Function(
        name=name,
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "endpoint": endpoint, "queries": queries, **params},
    )
