"""The load tests' workload: a small collection, a fixed mix of reranked searches, and leak accounting.

Searches are plain (dense vectors or BM25 texts) and hybrid (dense + BM25), with varied nq, limit, offset and
maxBatch (small batches, so one search sends several concurrent requests). Each search is described once and
its ranker ``Function`` built once, then shared by every thread/task that runs it (as an app shares a module-level
ranker). A result is reduced to plain tuples so the concurrent runs can be compared with the sequential ones.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import rerank_function
from vllm_ranker import AnnSearchRequest, AsyncMilvusClient, DataType, Function, MilvusClient
from vllm_ranker.testing import hashed_embedding, overlap_score
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

COLLECTION = "load_docs"
DIM = 16
# fmt: off
WORDS = [
    "vector", "search", "rerank", "model", "energy", "python", "milvus", "cluster", "latency", "gpu", "batch",
    "query", "document", "index", "score", "dense", "sparse", "hybrid", "ranking", "relevance", "cross",
    "encoder", "token", "solar", "wind", "research", "progress",
]
# fmt: on

Normalised = tuple[tuple[tuple[int, float, str], ...], ...]  # per query: (pk, distance, document) per hit


def corpus(n: int = 240, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) for _ in range(n)]


def create_collection(client: MilvusClient, docs: list[str]) -> None:
    """Explicit dense vectors (no TEXTEMBEDDING), so the rerank server sees only rerank requests and its
    in-flight count measures the client's limit alone."""
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    add_text_fields(schema, dim=DIM, max_length=1000)
    index = text_index_params(client, dense_index="FLAT")
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    client.insert(
        COLLECTION,
        [{"id": i, "document": d, "dense_vector": hashed_embedding(d, DIM)} for i, d in enumerate(docs)],
    )
    client.flush(COLLECTION)
    client.load_collection(COLLECTION)


@dataclass
class Search:
    kind: str  # "dense", "text" or "hybrid"
    queries: list[str]
    limit: int
    offset: int
    ranker: Function
    kwargs: dict[str, Any] = field(default_factory=dict)


def make_searches(endpoint: str, n: int = 200, seed: int = 5) -> list[Search]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        queries = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
        kind = ("dense", "text", "hybrid")[i % 3]
        ranker = rerank_function(endpoint, queries, maxBatch=rng.randint(2, 5), max_concurrency=rng.randint(1, 4))
        out.append(Search(kind, queries, rng.randint(2, 10), rng.randint(0, 3), ranker))
    return out


def _dense(queries: list[str]) -> list[list[float]]:
    return [hashed_embedding(q, DIM) for q in queries]


def _call(search: Search) -> tuple[str, dict[str, Any]]:
    """The method name and keyword arguments of one search (same for both clients)."""
    if search.kind == "hybrid":
        reqs = [
            AnnSearchRequest(_dense(search.queries), "dense_vector", {}, search.limit + 2),
            AnnSearchRequest(search.queries, "sparse_vector", {}, search.limit + 2),
        ]
        return "hybrid_search", dict(
            collection_name=COLLECTION,
            reqs=reqs,
            ranker=search.ranker,
            limit=search.limit,
            offset=search.offset,
            output_fields=["document"],
        )
    data = _dense(search.queries) if search.kind == "dense" else search.queries
    anns_field = "dense_vector" if search.kind == "dense" else "sparse_vector"
    return "search", dict(
        collection_name=COLLECTION,
        data=data,
        anns_field=anns_field,
        limit=search.limit,
        offset=search.offset,
        output_fields=["document"],
        ranker=search.ranker,
    )


def normalise(result: Any) -> Normalised:
    return tuple(
        tuple((int(h["id"]), float(h["distance"]), str(h["entity"]["document"])) for h in hits) for hits in result
    )


def run_sync(client: MilvusClient, search: Search) -> Normalised:
    method, kwargs = _call(search)
    return normalise(getattr(client, method)(**kwargs))


async def run_async(client: AsyncMilvusClient, search: Search) -> Normalised:
    method, kwargs = _call(search)
    return normalise(await getattr(client, method)(**kwargs))


def check_scores(search: Search, got: Normalised) -> None:
    """The sequential ground truth itself must be right: the service's deterministic scores, best first."""
    assert len(got) == len(search.queries)
    for query, hits in zip(search.queries, got, strict=True):
        assert hits, f"no hits for {query!r}"
        for pk, distance, document in hits:
            assert abs(distance - overlap_score(query, document)) < 1e-6, (pk, query)
        assert [(-d, pk) for pk, d, _ in hits] == sorted((-d, pk) for pk, d, _ in hits)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_to(port: int) -> int:
    """Our open sockets whose TCP peer is 127.0.0.1:``port`` (client ends of connections to that server)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                cols = line.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                    count += 1
    return count


@dataclass
class Leaks:
    fds_before: int = 0
    fds_after: int = 0
    threads_before: int = 0
    threads_after: int = 0
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def leak_check(slack: int) -> Iterator[Leaks]:
    """Counts open fds and live threads around the block and records every warning raised in it (ResourceWarning
    from an unclosed socket/client included: ``always`` + gc.collect() surfaces those from ``__del__``).

    After the clients are closed, the loopback rerank server (same process) closes its side of each connection
    when its handler thread reads EOF, a moment later: the check waits for that (up to 10 s) rather than racing it.
    """
    gc.collect()
    leaks = Leaks(fds_before=open_fds(), threads_before=threading.active_count())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield leaks
        deadline = time.monotonic() + 10
        while True:
            gc.collect()
            leaks.fds_after = open_fds()
            leaks.threads_after = threading.active_count()
            settled = leaks.fds_after <= leaks.fds_before + slack and leaks.threads_after <= leaks.threads_before
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    leaks.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
