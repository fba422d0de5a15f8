"""What chunking costs (issue 29): the same reranked search of 100 long candidates (~400 words each) with and
without the ``chunk`` param, side by side in one run, against a loopback vLLM server with a fixed per-request
latency. Without ``chunk`` each candidate goes whole (a real model truncates it to its window); with it, each is
cut into overlapping word windows and every window is scored, so the service sees more documents and more
requests (maxBatch counts chunks). Prints requests and chunks per search, the median time of each and their ratio.
No target: the figures say what the better recall of a long document's end costs.

    python benchmarks/chunking.py [--latency 0.02] [--per-document-latency 0] [--words 120] [--overlap 20]
        [--max-batch 32] [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from common import interleaved_medians, loopback_service, make_collection, query_vector, vllm_ranker_function

from vllm_ranker import RerankStats

QUERY = "vector search latency"
CANDIDATES = 100
WORDS_PER_DOC = 400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.02, help="simulated seconds per rerank request")
    parser.add_argument(
        "--per-document-latency",
        type=float,
        default=0.0,
        help="simulated seconds per document (or chunk) of a request, on top: a model's cost grows with its input",
    )
    parser.add_argument("--words", type=int, default=120, help="words per chunk")
    parser.add_argument("--overlap", type=int, default=20, help="words shared by consecutive chunks")
    parser.add_argument("--max-batch", type=int, default=32, help="documents (or chunks) per rerank request")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    client, tmp = make_collection(CANDIDATES, words_per_doc=WORDS_PER_DOC)
    vector = [query_vector(1)]
    chunk = {"words": args.words, "overlap": args.overlap}
    with loopback_service(request_latency=args.latency, per_document_latency=args.per_document_latency) as endpoint:
        whole = vllm_ranker_function(endpoint, [QUERY], maxBatch=args.max_batch)
        chunked = vllm_ranker_function(endpoint, [QUERY], maxBatch=args.max_batch, chunk=chunk)

        def search(ranker: Any) -> RerankStats:
            res = client.search("bench", data=vector, anns_field="dense_vector", limit=CANDIDATES, ranker=ranker)
            stats: RerankStats = res.extra["rerank"]
            assert stats.candidates == CANDIDATES and stats.error is None
            return stats

        # Counted once, outside the timing: both are the same on every call (no cache, no retries on loopback).
        once = {"whole documents": search(whole), f"chunks of {args.words} words": search(chunked)}
        medians = interleaved_medians(
            {"whole documents": lambda: search(whole), f"chunks of {args.words} words": lambda: search(chunked)},
            args.repeats,
        )
    client.close()
    tmp.cleanup()

    print(
        f"loopback vLLM, {args.latency * 1000:.0f} ms per request + {args.per_document_latency * 1000:.2f} ms per "
        f"text, {CANDIDATES} candidates of {WORDS_PER_DOC} words, "
        f"maxBatch {args.max_batch}, chunk {chunk}; median of {args.repeats} interleaved runs"
    )
    for name, stats in once.items():
        pieces = stats.chunks or stats.candidates
        print(
            f"  {name:>22}: {stats.requests:3d} requests, {pieces:4d} texts scored per search, "
            f"{medians[name] * 1000:7.1f} ms"
        )
    names = list(once)
    ratio = medians[names[1]] / medians[names[0]]
    requests = once[names[1]].requests / once[names[0]].requests
    print(f"  chunked / whole: {ratio:.2f}x the time, {requests:.2f}x the requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
