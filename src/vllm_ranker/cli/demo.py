"""``vllm-ranker demo``: the vLLM Ranker page of the Milvus docs, end to end on the embedded default.

A local embedder and reranker (as `vllm-ranker serve` runs them: started here, or reused, or given by --endpoint and
--rerank-endpoint) serve /v1/embeddings and /v1/rerank; a Milvus Lite collection of Python standard-library
docstrings gets its dense vectors from the embedder through Milvus's TEXTEMBEDDING function (so text queries work on
the dense field, as in the Milvus docs) and a BM25 sparse field; then the docs' two calls run with the vLLM ranker
and each query's first-stage vs reranked order is printed side by side. The header says what kind of model reranks:
a bi-encoder (an embedding model) only re-sorts by the cosine the dense search already used.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vllm_ranker.cli._options import add_command, milvus_uri, positive_int

# pymilvus, httpx and rich are imported where the demo uses them: `demo --help` needs none of them.
if TYPE_CHECKING:
    from rich.console import Console

    from vllm_ranker import Function, MilvusClient

COLLECTION = "python_docs"
DEMO_DB = "./vllm_ranker_demo.db"
DEFAULT_QUERIES = ("How do I parse command line arguments?", "Read a gzip compressed file")


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub, "demo", __doc__, "the Milvus docs' search and hybrid search with the vLLM ranker, on Milvus Lite"
    )
    parser.add_argument("--uri", type=milvus_uri, default=DEMO_DB, help="Milvus Lite file, or a Milvus server URI")
    parser.add_argument("--db", dest="uri", type=milvus_uri, help=argparse.SUPPRESS)  # its old name
    parser.add_argument(
        "--endpoint", help="a running OpenAI-compatible embeddings server (and reranker, unless --rerank-endpoint)"
    )
    parser.add_argument("--rerank-endpoint", help="a running vLLM reranker (default: --endpoint, else the local one)")
    parser.add_argument("--port", type=int, default=8000, help="port of the local embedder")
    parser.add_argument("--rerank-port", type=int, help="port of the local reranker (default: --port + 1)")
    parser.add_argument("--model", help="the local embedder's model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--rerank-model",
        help="the local reranker's model: a directory, a hub id or 'same' (default: see vllm-ranker serve --help)",
    )
    parser.add_argument("--vllm-venv", help="the vLLM virtual environment (default: see vllm-ranker serve --help)")
    parser.add_argument("--docs", type=positive_int, default=2000, help="number of documents")
    parser.add_argument("--limit", type=positive_int, default=5, help="hits per query (5, as in the Milvus docs)")
    parser.add_argument("--query", action="append", help="a query (repeatable); default: two built-in queries")
    parser.add_argument("--keep-server", action="store_true", help="leave a vLLM server started here running")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vllm_ranker import MilvusClient

    console = Console()
    started = time.perf_counter()
    pair = None
    endpoint = args.endpoint
    rerank_endpoint = args.rerank_endpoint or args.endpoint
    if endpoint is None:
        from vllm_ranker.local_vllm import VLLMLaunch, ensure_pair

        with console.status("Starting vLLM (the first start compiles kernels: 1-2 minutes on a CPU) ...") as status:

            def progress(elapsed: float) -> None:
                status.update(f"Waiting for vLLM to be healthy ... {elapsed:.0f} s")

            launch = VLLMLaunch(args.vllm_venv, detach=args.keep_server)
            pair = ensure_pair(
                launch.server(args.model, port=args.port),
                args.rerank_model,
                rerank_port=args.rerank_port,
                progress=progress,
            )[0]
        if pair.plan.note:
            console.print(f"note: {pair.plan.note}", highlight=False, markup=False)
        endpoint = pair.embedder.endpoint
        rerank_endpoint = args.rerank_endpoint or pair.rerank_endpoint
    from vllm_ranker.local_vllm import served_model_kind
    from vllm_ranker.tools import kind_note

    rerank_model, kind = served_model_kind(rerank_endpoint)
    console.print(f"embeddings: [bold]{endpoint}[/bold]; rerank: [bold]{rerank_endpoint}[/bold] ({rerank_model})")
    console.print(f"reranker: {kind_note(kind)}", highlight=False)
    try:
        model, dim = _embedding_model(endpoint)
        client = MilvusClient(uri=args.uri)
        try:
            _build_collection(console, client, endpoint, model, dim, args.docs)
            _run_docs_calls(console, client, rerank_endpoint, list(args.query or DEFAULT_QUERIES), args.limit)
        finally:
            client.close()
    finally:
        if pair is not None and not args.keep_server:
            pair.stop()
    console.print(f"Demo finished in {time.perf_counter() - started:.1f} s.")
    return 0


def _embedding_model(endpoint: str) -> tuple[str, int]:
    """The embedder's model and its dimension; an embedder that cannot be reached, or answers something else, is
    the tools' EmbeddingServiceError (one error: line naming the endpoint)."""
    from vllm_ranker.tools import Embedder

    with Embedder(endpoint, truncate_prompt_tokens=None, timeout=60) as embedder:
        return embedder.resolve_model(), len(embedder.embed(["probe"])[0])


def _build_collection(console: Console, client: MilvusClient, endpoint: str, model: str, dim: int, n_docs: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vllm_ranker import DataType
    from vllm_ranker.tools import add_text_fields, stdlib_docs, text_index_params

    docs = stdlib_docs(n_docs)
    if client.has_collection(COLLECTION):
        client.load_collection(COLLECTION)
        count = client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]
        if count == len(docs):
            console.print(f"Reusing collection {COLLECTION!r} ({count} documents).")
            return
        console.print(f"Collection {COLLECTION!r} has {count} of {len(docs)} documents: rebuilding it.")
        client.drop_collection(COLLECTION)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=512)
    add_text_fields(schema, embeddings_url=f"{endpoint}/v1", model=model, dim=dim)
    index = text_index_params(client)
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("Embedding (vLLM) and inserting", total=len(docs), rate="")
        started = time.perf_counter()
        for start in range(0, len(docs), 64):
            chunk = docs[start : start + 64]
            client.insert(
                COLLECTION, [{"id": start + i, "title": d.title, "document": d.text} for i, d in enumerate(chunk)]
            )
            done = start + len(chunk)
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - started):.0f} docs/s")
    client.flush(COLLECTION)


def _ranker(endpoint: str, queries: Sequence[str]) -> Function:
    from vllm_ranker import Function, FunctionType

    # The Function of the Milvus docs, pointed at the local server.
    return Function(
        name="vllm_semantic_ranker",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={
            "reranker": "model",
            "provider": "vllm",
            "queries": list(queries),
            "endpoint": endpoint,
            "maxBatch": 64,
            "truncate_prompt_tokens": -1,  # the model's maximum: a cross-encoder may have 512 or fewer
        },
    )


def _run_docs_calls(console: Console, client: MilvusClient, rerank: str, queries: list[str], limit: int) -> None:
    import pymilvus

    from vllm_ranker import AnnSearchRequest

    ranker = _ranker(rerank, queries)
    fields = ["title", "document"]

    plain_started = time.perf_counter()
    first = pymilvus.MilvusClient.search(
        client, COLLECTION, data=queries, anns_field="dense_vector", limit=limit, output_fields=fields
    )
    plain_s = time.perf_counter() - plain_started
    reranked = client.search(
        collection_name=COLLECTION,
        data=queries,
        anns_field="dense_vector",
        limit=limit,
        output_fields=fields,
        ranker=ranker,
        consistency_level="Bounded",
    )
    _report(
        console, "search on dense_vector + vLLM ranker", "first stage (vector order)", queries, first, reranked, plain_s
    )

    def requests(field: str) -> AnnSearchRequest:
        return AnnSearchRequest(data=queries, anns_field=field, param={}, limit=limit)

    plain_started = time.perf_counter()
    first = pymilvus.MilvusClient.hybrid_search(
        client,
        COLLECTION,
        [requests("dense_vector"), requests("sparse_vector")],
        pymilvus.RRFRanker(),
        limit=limit,
        output_fields=fields,
    )
    plain_s = time.perf_counter() - plain_started
    reranked = client.hybrid_search(
        COLLECTION,
        [requests("dense_vector"), requests("sparse_vector")],
        ranker=ranker,
        limit=limit,
        output_fields=fields,
    )
    _report(
        console,
        "hybrid_search dense + BM25 + vLLM ranker",
        "first stage (RRF order)",
        queries,
        first,
        reranked,
        plain_s,
    )


def _report(
    console: Console, title: str, first_label: str, queries: list[str], first: Any, reranked: Any, plain_s: float
) -> None:
    from rich.table import Table

    stats = reranked.extra["rerank"]
    console.rule(f"[bold]{title}")
    for q, query in enumerate(queries):
        table = Table(title=f"query {q + 1}: {query!r}", show_lines=False, expand=True)
        table.add_column("#", justify="right", width=2)
        table.add_column(first_label, ratio=1)
        table.add_column("score", justify="right", width=8)
        table.add_column("reranked by vLLM", ratio=1)
        table.add_column("score", justify="right", width=8)
        for rank in range(max(len(first[q]), len(reranked[q]))):
            left = first[q][rank] if rank < len(first[q]) else None
            right = reranked[q][rank] if rank < len(reranked[q]) else None
            table.add_row(str(rank + 1), _title(left), _score(left), _title(right), _score(right))
        console.print(table)
        before = [_title(hit) for hit in first[q]]
        after = [_title(hit) for hit in reranked[q]]
        moved = sum(a != b for a, b in zip(before, after, strict=False))
        change = f"changed the order ({moved} of {len(after)} places differ)" if moved else "kept the first-stage order"
        console.print(f"query {q + 1}: the rerank {change}", highlight=False)
    console.print(
        f"time: first-stage search {stats.search_seconds * 1000:.0f} ms (plain pymilvus: {plain_s * 1000:.0f} ms), "
        f"rerank {stats.rerank_seconds * 1000:.0f} ms for {stats.candidates} candidates in {stats.batches} batches "
        f"({stats.requests} requests, service {stats.service_seconds * 1000:.0f} ms summed, "
        f"{stats.prompt_tokens} tokens)"
    )


def _title(hit: Any) -> str:
    return "" if hit is None else f"{hit['entity']['title']}"


def _score(hit: Any) -> str:
    return "" if hit is None else f"{hit['distance']:.4f}"
