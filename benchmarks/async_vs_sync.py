"""Throughput of reranked searches: AsyncMilvusClient at 64 concurrent searches vs a single-threaded sync loop
(issue 6; target async >= 3x the sync loop), plus the sync client shared by a 64-thread pool, measured side by
side in one run (rounds interleaved, median of the rounds).

Milvus runs as ``milvus-lite server`` in its own process and the loopback vLLM rerank server in another, with a
simulated model latency (per request + per document, like a GPU cross-encoder), so this process only does what a
search service does: first-stage search over gRPC, then the rerank calls over HTTP.

    python benchmarks/async_vs_sync.py [--latency 0.02] [--per-doc 0.0005] [--concurrency 64] [--rounds 3]
                                       [--client-limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import DIM, WORDS, loopback_service, vllm_ranker_function
from milvus_server import milvus_lite_server, populate

from vllm_ranker import AsyncMilvusClient, Function, MilvusClient

LIMIT = 40  # candidates per search
MAX_BATCH = 20  # so each search sends 2 requests, concurrently


def workload(endpoint: str, n: int, seed: int = 3) -> list[tuple[list[list[float]], Function]]:
    """``n`` distinct searches: a query vector and a ranker whose query text is that search's own."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        query = " ".join(rng.sample(WORDS, 3))
        fn = vllm_ranker_function(endpoint, [query], name=f"vllm_{i}", maxBatch=MAX_BATCH)
        out.append(([[rng.random() for _ in range(DIM)]], fn))
    return out


def kwargs_of(item: tuple[list[list[float]], Function]) -> dict[str, Any]:
    data, fn = item
    return {
        "collection_name": "bench",
        "data": data,
        "anns_field": "dense_vector",
        "limit": LIMIT,
        "output_fields": ["document"],
        "ranker": fn,
    }


def summary(result: Any) -> list[tuple[int, float]]:
    return [(int(h["id"]), float(h["distance"])) for h in result[0]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.02, help="simulated seconds per rerank request")
    parser.add_argument("--per-doc", type=float, default=0.0005, help="simulated seconds per document")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument(
        "--client-limit",
        type=int,
        default=None,
        help="rerank_client_limit of both clients (default: the clients' own default, 64)",
    )
    args = parser.parse_args()
    conc = args.concurrency
    n_concurrent = conc * 5  # searches per round for the concurrent contenders
    n_loop = conc  # the sync loop is slow: one "wave" of searches per round

    with (
        milvus_lite_server() as uri,
        loopback_service(request_latency=args.latency, per_document_latency=args.per_doc) as endpoint,
    ):
        populate(uri, args.docs)
        items = workload(endpoint, conc)
        limit = {} if args.client_limit is None else {"rerank_client_limit": args.client_limit}
        sync_client = MilvusClient(uri=uri, **limit)
        loop = asyncio.new_event_loop()
        async_client = AsyncMilvusClient(uri=uri, **limit)
        pool = ThreadPoolExecutor(max_workers=conc)
        try:

            def one(i: int) -> Any:
                return sync_client.search(**kwargs_of(items[i % conc]))

            def sync_loop(n: int) -> None:
                for i in range(n):
                    one(i)

            def threads(n: int) -> None:
                list(pool.map(one, range(n)))

            async def gathered(n: int) -> list[Any]:
                gate = asyncio.Semaphore(conc)  # at most `conc` searches in flight, like a server's concurrency

                async def bounded(i: int) -> Any:
                    async with gate:
                        return await async_client.search(**kwargs_of(items[i % conc]))

                return list(await asyncio.gather(*(bounded(i) for i in range(n))))

            def run_async(n: int) -> None:
                loop.run_until_complete(gathered(n))

            # Correctness first: the async answers equal the sync ones (same searches, same scores).
            expected = [summary(one(i)) for i in range(conc)]
            got = [summary(r) for r in loop.run_until_complete(gathered(conc))]
            if got != expected:
                print("MISMATCH between async and sync results", file=sys.stderr)
                return 1
            extra = one(0).extra["rerank"]
            print(
                f"each search: {extra.candidates} candidates, {extra.batches} rerank requests of <= {MAX_BATCH}; "
                f"service latency {args.latency * 1000:g} ms + {args.per_doc * 1000:g} ms/doc; "
                f"{args.docs} docs in milvus-lite server"
            )

            contenders = {
                "sync loop (1 thread)": (sync_loop, n_loop),
                f"sync, {conc}-thread pool": (threads, n_concurrent),
                f"async, {conc} concurrent": (run_async, n_concurrent),
            }
            for fn, _ in contenders.values():  # warm-up: connections, schema cache, thread pool
                fn(conc // 4)
            rates: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(args.rounds):
                for name, (fn, n) in contenders.items():
                    started = time.perf_counter()
                    fn(n)
                    rates[name].append(n / (time.perf_counter() - started))
        finally:
            pool.shutdown()
            loop.run_until_complete(async_client.close())
            loop.close()
            sync_client.close()

    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["sync loop (1 thread)"]
    print(f"\nthroughput, median of {args.rounds} interleaved rounds:")
    for name, rate in medians.items():
        spread = ", ".join(f"{v:.0f}" for v in rates[name])
        print(f"  {name:<26} {rate:8.1f} searches/s   ({rate / base:5.2f}x the sync loop; rounds: {spread})")
    ratio = medians[f"async, {conc} concurrent"] / base
    print(f"\nasync / sync loop = {ratio:.2f}x (target >= 3x): {'OK' if ratio >= 3 else 'BELOW TARGET'}")
    return 0 if ratio >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
