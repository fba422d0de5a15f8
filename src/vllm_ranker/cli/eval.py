"""``vllm-ranker eval``: ranking quality of retrieval pipelines on judged queries (BEIR layout).

    vllm-ranker eval ../shared/datasets/scifact                     # all six pipelines, test split
    vllm-ranker eval ../shared/datasets/scifact --pipelines bm25,bm25+rerank --window 50
    vllm-ranker eval DIR --uri http://milvus:19530 --endpoint http://embed:8000 \\
        --rerank-provider cohere --rerank-endpoint https://api.cohere.com --rerank-model rerank-v3.5

Pipelines: bm25, dense, hybrid (RRF) and each +rerank (the first stage's top --window, reranked by the model
through vllm_ranker.MilvusClient). Prints a table and writes a JSON report and a PNG chart. The collection
must have been made by `vllm-ranker ingest` with the same embeddings model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from vllm_ranker import MilvusClient
from vllm_ranker.cli._options import (
    add_command,
    add_milvus_options,
    add_rerank_options,
    add_vllm_options,
    collection_name,
    connect,
    positive_int,
    progress_bar,
    require_collection,
    rerank_config,
    truncation,
    vllm_endpoint,
)
from vllm_ranker.tools.corpus_files import read_qrels, read_queries
from vllm_ranker.tools.embeddings import Embedder
from vllm_ranker.tools.evaluation import embed_queries, evaluate, require_extra
from vllm_ranker.tools.pipelines import Pipeline, Searcher, parse_pipelines


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "eval",
        __doc__,
        "nDCG@10 / Recall@100 / MRR@10 of bm25, dense, hybrid and +rerank pipelines on judged queries",
    )
    parser.add_argument("dataset", help="a BEIR directory: queries.jsonl and qrels/<split>.tsv")
    add_milvus_options(parser)
    add_vllm_options(parser)
    add_rerank_options(parser)
    parser.add_argument("--split", default="test", help="qrels split: the file qrels/SPLIT.tsv")
    parser.add_argument(
        "--pipelines",
        default="all",
        help="comma-separated from bm25, dense, hybrid, bm25+rerank, dense+rerank, hybrid+rerank; or 'all'",
    )
    parser.add_argument(
        "--max-queries", type=positive_int, help="evaluate only the first N judged queries (a quick try)"
    )
    parser.add_argument("--chunk", type=positive_int, default=8, help="queries per Milvus call")
    parser.add_argument(
        "--no-share-scores",
        action="store_true",
        help="score every +rerank pipeline from scratch; by default the Function's score cache lets pipelines "
        "that rerank the same (query, document) pairs pay for each pair once",
    )
    parser.add_argument("--out", default="./out", help="directory for the JSON report and PNG chart")


def run(args: argparse.Namespace) -> int:
    # Everything that can be checked without a model is checked before vLLM starts (a minute on a CPU).
    require_extra()
    console = Console()
    pipelines = parse_pipelines(args.pipelines)
    name = collection_name(args, args.dataset)
    queries = read_queries(args.dataset)
    qrels = read_qrels(args.dataset, args.split)
    if args.max_queries is not None:
        qrels = dict(list(qrels.items())[: args.max_queries])
    share = not args.no_share_scores
    probe = connect(args)
    try:
        require_collection(probe, name, args.uri)
    finally:
        probe.close()
    with vllm_endpoint(console, args) as endpoint:
        rerank = rerank_config(args, endpoint, cache=share)
        # Room for every (query, candidate) pair of the run: hybrid reranks up to 2 x window per query.
        cache_size = 2 * rerank.window * len(qrels) + 1024
        client = MilvusClient(uri=args.uri, token=args.token, rerank_cache_size=cache_size)
        try:
            client.load_collection(name)
            with Embedder(endpoint, args.model, truncation(args)) as embedder:
                texts = [queries[q] for q in qrels if q in queries]
                with console.status(f"Embedding {len(texts)} queries ..."):
                    vectors = dict(zip([q for q in qrels if q in queries], embed_queries(embedder, texts), strict=True))
                model = embedder.model
            searcher = Searcher(client, name, depth=100, rerank=rerank)
            with progress_bar(console) as bar:
                tasks = {p.name: bar.add_task(p.name, total=len(qrels), rate="", start=False) for p in pipelines}
                started: dict[str, float] = {}

                def progress(pipeline: Pipeline, done: int, total: int) -> None:
                    task = tasks[pipeline.name]
                    if pipeline.name not in started:
                        started[pipeline.name] = time.perf_counter()
                        bar.start_task(task)
                    rate = done / max(time.perf_counter() - started[pipeline.name], 1e-9)
                    bar.update(task, completed=done, rate=f"{rate:.1f} q/s")

                config = {
                    "uri": args.uri,
                    "embedding_model": model,
                    "rerank_provider": rerank.provider,
                    "rerank_model": rerank.model,
                    "window": rerank.window,
                    "depth": 100,
                    "max_batch": rerank.max_batch,
                    "truncate_prompt_tokens": rerank.truncate_prompt_tokens,
                    "shared_scores": share,
                }
                report = evaluate(
                    searcher,
                    pipelines,
                    queries,
                    qrels,
                    vectors,
                    chunk=args.chunk,
                    progress=progress,
                    config=config,
                    split=args.split,
                )
        finally:
            client.close()
    console.print(report.table())
    out = Path(args.out)
    json_path = report.write_json(out / f"{name}-eval.json")
    png_path = report.write_chart(out / f"{name}-eval.png")
    console.print(f"Wrote {json_path} and {png_path}")
    return 0
