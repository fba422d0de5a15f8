"""``vllm-ranker bench``: latency (p50/p95/p99) and throughput of one pipeline at a given concurrency.

    vllm-ranker bench ../shared/datasets/scifact --pipeline hybrid+rerank --concurrency 8 --queries 40

Queries are the dataset's (first --queries of the split, after --warmup more that are not measured), embedded
up front so the figures are the search and rerank alone. Each call's latency is split into first-stage search,
rerank service time and our own overhead (from result.extra["rerank"]); a JSON file keeps the figures.
A --rerank-params the ranker refuses is refused by one unmeasured query before the warm-up.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_ranker.cli import _options as opts
from vllm_ranker.tools import ALL_PIPELINES, Pipeline, Searcher, ToolInputError, kind_note, read_qrels, read_queries

# What runs the bench (pymilvus, httpx, numpy, rich) is imported by run(): `bench --help` needs none of it.
if TYPE_CHECKING:
    from rich.table import Table

    from vllm_ranker.tools import BenchReport


def add_parser(sub: Any) -> None:
    parser = opts.add_command(
        sub,
        "bench",
        __doc__,
        "latency p50/p95/p99 and throughput of a pipeline at a concurrency, split into search/service/ours",
    )
    parser.add_argument("dataset", help="a BEIR directory (its queries.jsonl and qrels/<split>.tsv)")
    opts.add_milvus_options(parser)
    opts.add_vllm_options(parser)
    opts.add_rerank_options(parser)
    parser.add_argument("--pipeline", default="hybrid+rerank", choices=ALL_PIPELINES, help="pipeline to time")
    parser.add_argument("--concurrency", type=opts.positive_int, default=1, help="searches in flight")
    parser.add_argument("--queries", type=opts.positive_int, default=32, help="measured queries")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured calls first")
    parser.add_argument("--split", default="test", help="take the queries of this qrels split (qrels/SPLIT.tsv)")
    parser.add_argument("--out", default="./out", help="directory for the JSON report")


def _table(report: BenchReport) -> Table:
    from rich.table import Table

    data = report.as_dict()
    table = Table(
        title=f"{report.pipeline} at concurrency {report.concurrency}: {len(report.samples)} queries, "
        f"{report.throughput:.2f} q/s, our share {report.overhead_share:.2%}"
    )
    table.add_column("seconds")
    for p in ("p50", "p95", "p99", "mean"):
        table.add_column(p, justify="right")
    for key, label in (
        ("latency_s", "latency"),
        ("search_s", "search"),
        ("service_s", "rerank service"),
        ("ours_s", "ours"),
    ):
        table.add_row(label, *(f"{data[key][p]:.3f}" for p in ("p50", "p95", "p99", "mean")))
    return table


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vllm_ranker import MilvusClient
    from vllm_ranker.tools import Embedder, embed_queries, run_bench

    console = Console()
    pipeline = Pipeline.parse(args.pipeline)
    name = opts.collection_name(args, args.dataset)
    queries = read_queries(args.dataset)
    judged = [q for q in read_qrels(args.dataset, args.split) if q in queries]
    if args.warmup < 0:
        raise opts.UsageError(f"--warmup {args.warmup} must be 0 or more")
    measured = min(args.queries, len(judged) - args.warmup)
    if measured < 1:
        raise ToolInputError(
            f"{args.dataset} has {len(judged)} judged queries in split {args.split!r}: not enough for "
            f"--warmup {args.warmup} and one measured query: lower --warmup"
        )
    if measured < args.queries:
        # Said, not silent: the figures then stand on fewer queries than asked for.
        console.print(
            f"[yellow]warning:[/] {len(judged)} judged queries: measuring {measured}, not --queries {args.queries} "
            f"(--warmup {args.warmup} take the first ones)"
        )
    picked = judged[: args.warmup + measured]
    opts.rerank_params(args)  # a bad JSON refused before vLLM starts
    texts = [queries[q] for q in picked]
    probe = opts.connect(args)
    try:
        opts.require_collection(probe, name, args.uri)
    finally:
        probe.close()
    endpoints = opts.rerank_endpoints if pipeline.rerank else opts.embeddings_endpoint
    with endpoints(console, args) as endpoint:
        if pipeline.rerank:
            console.print(
                f"reranker: {endpoint.rerank_model or 'the server model'} at {endpoint.rerank}: "
                f"{kind_note(endpoint.rerank_kind)}"
            )
        # No score cache here: every measured call pays for its own rerank, as a fresh query would.
        rerank = opts.rerank_config(args, endpoint, cache=False)
        client = MilvusClient(uri=args.uri, token=args.token)
        try:
            client.load_collection(name)
            with Embedder(endpoint.embeddings, args.model, opts.truncation(args)) as embedder:
                vectors = embed_queries(embedder, texts)
            searcher = Searcher(client, name, depth=100, rerank=rerank)
            if pipeline.rerank and rerank.params:
                # As eval does (cli/eval.py): the client refuses a param before its first-stage search, so one
                # query through the pipeline makes a --rerank-params the ranker refuses one error: line before the
                # warm-up (there may be none: --warmup 0) or anything timed. Not counted; with --warmup 0 it warms
                # the connections as a warm-up would (no score cache here, so no measured score is reused).
                searcher.run(pipeline, texts[:1], vectors[:1])
            with opts.progress_bar(console) as bar:
                task = bar.add_task(f"{pipeline.name} x{args.concurrency}", total=len(texts) - args.warmup, rate="")
                started = time.perf_counter()

                def progress(done: int, total: int) -> None:
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    bar.update(task, completed=done, rate=f"{rate:.2f} q/s")

                config = {
                    "uri": args.uri,
                    "window": rerank.window,
                    "max_batch": rerank.max_batch,
                    "rerank_provider": rerank.provider,
                    "endpoints": list(rerank.endpoints),
                    "rerank_model_kind": endpoint.rerank_kind,
                    "rerank_model_family": endpoint.rerank_family,
                    "rerank_params": dict(rerank.params),
                }
                report = run_bench(
                    searcher,
                    pipeline,
                    texts,
                    vectors,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    progress=progress,
                    config=config,
                )
        finally:
            client.close()
    console.print(_table(report))
    if report.errors:
        console.print(f"[red]{len(report.errors)} calls failed[/red], e.g. {report.errors[0]}")
    out = Path(args.out) / f"{name}-bench-{pipeline.name.replace('+', '_')}-c{args.concurrency}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    import json

    out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    console.print(f"Wrote {out}")
    return 1 if report.errors else 0
