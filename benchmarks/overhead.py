"""Overhead and concurrency of the vLLM Ranker, measured side by side in one run (issue 2).

1. overhead: ours (search + rerank of 100 candidates) vs plain search + ONE direct rerank call with the same
   documents, against a loopback vLLM server with a fixed per-request latency. Target <= 1.05.
2. speed-up: 200 candidates, maxBatch=16 (13 requests): ours (bounded concurrent batches) vs the sequential
   Milvus-style loop (search, then batches one by one). Target >= 3x. Beside them, the same search and the same
   13 requests sent at once from a plain thread pool: the most any client gets from this service on this machine
   (the simulated service spends CPU per request on the same cores), so a miss says whether we or the machine cap it.

    python benchmarks/overhead.py [--latency 0.02] [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pymilvus
from common import interleaved_medians, loopback_service, make_collection, query_vector, vllm_ranker_function

from vllm_ranker import Function


def ranker(endpoint: str, max_batch: int) -> Function:
    return vllm_ranker_function(endpoint, ["vector search latency"], maxBatch=max_batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.02, help="simulated seconds per rerank request")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    client, tmp = make_collection(2000)
    vector = [query_vector(1)]
    direct = httpx.Client(limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))
    threads = ThreadPoolExecutor(16)
    with loopback_service(request_latency=args.latency) as endpoint:
        url = endpoint + "/rerank"

        def plain_then_direct(limit: int, batch: int) -> list[tuple[float, int]]:
            hits = pymilvus.MilvusClient.search(
                client,
                "bench",
                data=vector,
                anns_field="dense_vector",
                limit=limit,
                output_fields=["document"],
            )
            docs = [h["entity"]["document"] for h in hits[0]]
            scores = [0.0] * len(docs)
            for start in range(0, len(docs), batch):  # one request when batch >= limit: the ideal
                answer = direct.post(
                    url, json={"query": "vector search latency", "documents": docs[start : start + batch]}
                )
                answer.raise_for_status()
                for item in answer.json()["results"]:
                    scores[start + item["index"]] = item["relevance_score"]
            return sorted(zip(scores, [h["id"] for h in hits[0]], strict=True), key=lambda t: (-t[0], t[1]))

        def plain_then_parallel(limit: int, batch: int) -> None:
            hits = pymilvus.MilvusClient.search(
                client, "bench", data=vector, anns_field="dense_vector", limit=limit, output_fields=["document"]
            )
            docs = [h["entity"]["document"] for h in hits[0]]
            chunks = [docs[start : start + batch] for start in range(0, len(docs), batch)]

            def one(chunk: list[str]) -> None:
                direct.post(url, json={"query": "vector search latency", "documents": chunk}).raise_for_status()

            list(threads.map(one, chunks))

        def ours(limit: int, batch: int) -> None:
            client.search("bench", data=vector, anns_field="dense_vector", limit=limit, ranker=ranker(endpoint, batch))

        overhead = interleaved_medians(
            {
                "ours": lambda: ours(100, 100),
                "plain search + one direct call": lambda: plain_then_direct(100, 100),
            },
            args.repeats,
        )
        concurrency = interleaved_medians(
            {
                "ours": lambda: ours(200, 16),
                "sequential Milvus-style loop": lambda: plain_then_direct(200, 16),
                "search + 13 requests at once (ceiling)": lambda: plain_then_parallel(200, 16),
            },
            max(5, args.repeats // 3),
        )
    threads.shutdown()
    direct.close()
    client.close()
    tmp.cleanup()

    ratio = overhead["ours"] / overhead["plain search + one direct call"]
    speedup = concurrency["sequential Milvus-style loop"] / concurrency["ours"]
    print(f"loopback vLLM, {args.latency * 1000:.0f} ms per request, median of interleaved runs")
    print(
        f"[overhead] 100 candidates, 1 request: ours {overhead['ours'] * 1000:.2f} ms vs plain search + one "
        f"direct call {overhead['plain search + one direct call'] * 1000:.2f} ms -> ratio {ratio:.3f} "
        f"(target <= 1.05) {'OK' if ratio <= 1.05 else 'MISSED'}"
    )
    print(
        f"[concurrency] 200 candidates, maxBatch 16 (13 requests): ours {concurrency['ours'] * 1000:.1f} ms vs "
        f"sequential loop {concurrency['sequential Milvus-style loop'] * 1000:.1f} ms -> {speedup:.2f}x faster "
        f"(target >= 3x) {'OK' if speedup >= 3 else 'MISSED'}"
    )
    ceiling = concurrency["search + 13 requests at once (ceiling)"]
    print(
        f"[ceiling] the same search + 13 requests at once from a thread pool: {ceiling * 1000:.1f} ms -> at most "
        f"{concurrency['sequential Milvus-style loop'] / ceiling:.2f}x on this machine; ours reaches "
        f"{ceiling / concurrency['ours']:.0%} of it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
