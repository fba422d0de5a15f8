"""A Milvus 3.0 function chain with ``rerank_model`` vs the same rerank as a 2.6 Function, side by side (issue 25).

Both searches: 2,000 documents, 100 candidates, one rerank request to a loopback vLLM server with a fixed
per-request latency, through ``vllm_ranker.MilvusClient`` on Milvus Lite. The chain is the Function's rerank
written as a chain (``map $score rerank_model``, ``sort``, ``limit``), so the ratio is the cost of decoding,
validating and evaluating a chain. Target <= 1.05. A second row adds what only a chain can say (a decay on a
numeric field, a weighted combination, rounding), printed without a target.

    python benchmarks/chains.py [--latency 0.02] [--repeats 40]
"""

from __future__ import annotations

import argparse
import sys

from common import interleaved_medians, loopback_service, make_collection, query_vector, vllm_ranker_function
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

QUERY = "vector search latency"


def model_chain(endpoint: str, limit: int) -> FunctionChain:
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=[QUERY], provider="vllm", endpoint=endpoint))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))  # the Function's order: ties by primary key
        .limit(limit)
    )


def richer_chain(endpoint: str, limit: int) -> FunctionChain:
    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("near", fn.decay(col("id"), function="gauss", origin=1000, scale=300))
        .map("$score", fn.rerank_model(col("document"), queries=[QUERY], provider="vllm", endpoint=endpoint))
        .map("$score", fn.num_combine(col("$score"), col("near"), mode="weighted", weights=[0.8, 0.2]))
        .map("$score", fn.round_decimal(col("$score"), decimal=4))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(limit)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.02, help="simulated seconds per rerank request")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    client, tmp = make_collection(2000)
    vector = [query_vector(1)]
    candidates = 100
    with loopback_service(request_latency=args.latency) as endpoint:
        function = vllm_ranker_function(endpoint, [QUERY], maxBatch=candidates)
        chain, richer = model_chain(endpoint, candidates), richer_chain(endpoint, candidates)
        kw = dict(data=vector, anns_field="dense_vector", limit=candidates, output_fields=["document"])
        same = [h["id"] for h in client.search("bench", **kw, ranker=function)[0]]
        assert [h["id"] for h in client.search("bench", **kw, function_chains=chain)[0]] == same, "not the same rerank"
        medians = interleaved_medians(
            {
                "2.6 Function": lambda: client.search("bench", **kw, ranker=function),
                "function chain": lambda: client.search("bench", **kw, function_chains=chain),
                "richer chain": lambda: client.search("bench", **kw, function_chains=richer),
            },
            args.repeats,
        )
    client.close()
    tmp.cleanup()

    ratio = medians["function chain"] / medians["2.6 Function"]
    print(
        f"loopback vLLM, {args.latency * 1000:.0f} ms per request, {candidates} candidates, median of interleaved runs"
    )
    print(
        f"[chain] function chain {medians['function chain'] * 1000:.2f} ms vs 2.6 Function "
        f"{medians['2.6 Function'] * 1000:.2f} ms -> ratio {ratio:.3f} (target <= 1.05) "
        f"{'OK' if ratio <= 1.05 else 'MISSED'}"
    )
    print(
        f"[richer] + decay, weighted num_combine, round_decimal, tie-break: {medians['richer chain'] * 1000:.2f} ms "
        f"-> ratio {medians['richer chain'] / medians['2.6 Function']:.3f} (no target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
