"""``vllm-ranker eval``: ranking quality of retrieval pipelines on judged queries (BEIR layout).

    vllm-ranker eval ../shared/datasets/scifact                     # all six pipelines, test split
    vllm-ranker eval ../shared/datasets/scifact ../shared/datasets/nfcorpus   # one table each, then a summary
    vllm-ranker eval ../shared/datasets/scifact --pipelines bm25,bm25+rerank --window 50
    vllm-ranker eval DIR --uri http://milvus:19530 --endpoint http://embed:8000 \\
        --rerank-provider cohere --rerank-endpoint https://api.cohere.com --rerank-model rerank-v3.5
    vllm-ranker eval DIR --pipelines bm25,bm25+rerank --rerank-field body \\
        --variant title='{"document_template": "{title}\\n{body}"}' --variant rrf='{"fuse": {"method": "rrf"}}'

Pipelines: bm25, dense, hybrid (RRF) and each +rerank (the first stage's top --window, reranked by the model
through vllm_ranker.MilvusClient, then the rest of the first stage). Embeddings come from the embedder (--endpoint,
else the local one on --port), rerank from the reranker (--rerank-endpoint, else the local one on --rerank-port).
Each --variant NAME=JSON adds, for every +rerank pipeline, one more (e.g. bm25+rerank:title) whose RERANK Function
takes those params too, compared with the plain +rerank. Prints a table per dataset (each +rerank against its own
first stage, each variant against its plain +rerank: wins/ties/losses and paired p-values) and
writes a JSON report, a PNG chart and one TREC run file per pipeline. The header and the report say what kind of
model reranks (a bi-encoder's rerank only re-sorts by cosine). The collection must have been made by
`vllm-ranker ingest` with the same embeddings model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_ranker.cli._options import (
    Endpoints,
    UsageError,
    add_command,
    add_milvus_options,
    add_rerank_options,
    add_vllm_options,
    collection_name,
    connect,
    embeddings_endpoint,
    params_object,
    positive_int,
    progress_bar,
    require_collection,
    rerank_config,
    rerank_endpoints,
    rerank_params,
    truncation,
)
from vllm_ranker.tools import (
    Pipeline,
    RerankConfig,
    Searcher,
    format_p,
    kind_note,
    parse_pipelines,
    read_qrels,
    read_queries,
)

# What runs the evaluation (pymilvus, httpx, rich) is imported where it is used: `eval --help` needs none of it.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from vllm_ranker.tools import EvalReport


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "eval",
        __doc__,
        "nDCG@10 / Recall@100 / MRR@10 of bm25, dense, hybrid and +rerank pipelines on judged queries",
    )
    parser.add_argument(
        "dataset", nargs="+", help="one or more BEIR directories: queries.jsonl and qrels/<split>.tsv each"
    )
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
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="one more pipeline per +rerank pipeline, named PIPELINE:NAME, whose RERANK Function also takes the "
        'JSON object\'s params (e.g. title=\'{"document_template": "{title}\\n{body}"}\'); compared with the '
        "plain +rerank; repeatable",
    )
    parser.add_argument(
        "--rerank-field",
        help="the VARCHAR field the model reads (default text: title and body, as ingest stores them; body: the "
        "body alone, as a collection with a separate title holds it)",
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
    parser.add_argument(
        "--out", default="./out", help="directory for the JSON report, the PNG chart and the TREC run files"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vllm_ranker.tools import require_extra

    # Everything that can be checked without a model is checked before vLLM starts (a minute on a CPU).
    require_extra()
    console = Console()
    pipelines = with_variants(parse_pipelines(args.pipelines), args.variant)
    reranks = any(p.rerank for p in pipelines)
    if reranks:
        rerank_params(args)  # a bad JSON refused before vLLM starts (a minute on a CPU)
    if args.collection and len(args.dataset) > 1:
        raise UsageError("--collection names one collection: give one dataset with it, or leave it out")
    jobs = []
    for dataset in args.dataset:
        name = collection_name(args, dataset)
        queries = read_queries(dataset)
        qrels = read_qrels(dataset, args.split)
        if args.max_queries is not None:
            qrels = dict(list(qrels.items())[: args.max_queries])
        jobs.append((name, queries, qrels))
    probe = connect(args)
    try:
        for name, _, _ in jobs:
            require_collection(probe, name, args.uri)
    finally:
        probe.close()
    reports: list[EvalReport] = []
    with (rerank_endpoints if reranks else embeddings_endpoint)(console, args) as endpoints:
        if reranks:
            model = endpoints.rerank_model or "the server's model"
            console.print(f"reranker: {model} at {endpoints.rerank}: {kind_note(endpoints.rerank_kind)}")
        rerank = rerank_config(args, endpoints, cache=not args.no_share_scores)
        for name, queries, qrels in jobs:
            report = _evaluate_one(console, args, endpoints, rerank, pipelines, name, queries, qrels)
            reports.append(report)
            _write(console, report, Path(args.out))
    if len(reports) > 1:
        console.print(_summary(reports))
    return 0


def with_variants(pipelines: list[Pipeline], variants: list[str]) -> list[Pipeline]:
    """Each +rerank pipeline followed by its variants (``NAME=JSON`` each); a bad one is a UsageError."""
    parsed: dict[str, dict[str, Any]] = {}
    for spec in variants:
        name, eq, text = spec.partition("=")
        if not eq or not name.strip():
            raise UsageError(f'--variant {spec!r}: give NAME=JSON, e.g. rrf=\'{{"fuse": {{"method": "rrf"}}}}\'')
        if name.strip() in parsed:
            raise UsageError(f"--variant {name.strip()!r} is given twice: give each variant its own name")
        parsed[name.strip()] = params_object(f"--variant {name.strip()}", text)
    if parsed and not any(p.rerank for p in pipelines):
        raise UsageError("--variant applies to +rerank pipelines: add one to --pipelines (e.g. bm25,bm25+rerank)")
    out: list[Pipeline] = []
    for pipeline in pipelines:
        out.append(pipeline)
        if pipeline.rerank:
            out.extend(pipeline.with_variant(name, params) for name, params in parsed.items())
    return out


def _evaluate_one(
    console: Console,
    args: argparse.Namespace,
    endpoints: Endpoints,
    rerank: RerankConfig,
    pipelines: list[Pipeline],
    name: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> EvalReport:
    from vllm_ranker import MilvusClient
    from vllm_ranker.tools import Embedder, embed_queries, evaluate

    # Room for every (query, candidate) pair of the run: hybrid reranks up to 2 x window per query; a variant may
    # score other texts (a template) or several chunks per candidate (counted as 4).
    variants = sum(1 for p in pipelines if p.variant)
    cache_size = 2 * rerank.window * len(qrels) * (1 + 4 * variants) + 1024
    client = MilvusClient(uri=args.uri, token=args.token, rerank_cache_size=cache_size)
    try:
        client.load_collection(name)
        with Embedder(endpoints.embeddings, args.model, truncation(args)) as embedder:
            judged = [q for q in qrels if q in queries]
            with console.status(f"Embedding {len(judged)} queries of {name} ..."):
                vectors = dict(zip(judged, embed_queries(embedder, [queries[q] for q in judged]), strict=True))
            model = embedder.model
        searcher = Searcher(client, name, depth=100, rerank=rerank)
        users = rerank.params or rerank.text_field
        probes = [p for p in pipelines if p.rerank and not p.variant][:1] if users else []
        probes += [p for p in pipelines if p.variant]
        for probe in probes if judged else []:
            # The client refuses a param before its first-stage search; one query through each +rerank pipeline
            # whose params are the user's makes --rerank-params, --rerank-field and each --variant refused before
            # any pipeline has searched (the CLI may not reach the core's parser, docs/modules.md).
            searcher.run(probe, [queries[judged[0]]], [vectors[judged[0]]])
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
                "embedding_endpoint": endpoints.embeddings,
                "embedding_model": model,
                "rerank_provider": rerank.provider,
                "rerank_endpoints": list(rerank.endpoints),
                "rerank_model": rerank.model or endpoints.rerank_model,
                "rerank_model_kind": endpoints.rerank_kind,
                "rerank_model_family": endpoints.rerank_family,
                "window": rerank.window,
                "depth": 100,
                "max_batch": rerank.max_batch,
                "truncate_prompt_tokens": rerank.truncate_prompt_tokens,
                "shared_scores": rerank.cache,
                "rerank_params": dict(rerank.params),
                "rerank_field": rerank.text_field or "text",
                "variants": {p.name: dict(p.variant_params) for p in pipelines if p.variant},
            }
            return evaluate(
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


def _write(console: Console, report: EvalReport, out: Path) -> None:
    runs = report.write_runs(out)  # first: the JSON names each run file
    console.print(report.table())
    json_path = report.write_json(out / f"{report.collection}-eval.json")
    png_path = report.write_chart(out / f"{report.collection}-eval.png")
    console.print(f"Wrote {json_path}, {png_path} and {len(runs)} run files ({', '.join(p.name for p in runs)})")


def _summary(reports: list[EvalReport]) -> Table:
    from rich.table import Table

    names = list(dict.fromkeys(r.name for report in reports for r in report.results))
    table = Table(title=f"Summary: nDCG@10 over {len(reports)} datasets (p: paired t-test against the first stage)")
    table.add_column("dataset")
    table.add_column("reranker kind")
    for n in names:
        table.add_column(n, justify="right")
    for report in reports:
        cells = []
        by_name = {r.name: r for r in report.results}
        for n in names:
            r = by_name.get(n)
            c = r.vs_first_stage if r is not None else None
            cell = "" if r is None else f"{r.metrics['nDCG@10']:.4f}"
            cells.append(cell + (f" (p {format_p(c['p_ttest'])})" if c else ""))
        table.add_row(report.collection, report.rerank_kind, *cells)
    return table
