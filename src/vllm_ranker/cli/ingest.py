"""``vllm-ranker ingest``: load a corpus into Milvus with a BM25 sparse field and a dense field.

    vllm-ranker ingest ../shared/datasets/scifact                 # BEIR directory -> ./vllm_ranker.db, "scifact"
    vllm-ranker ingest docs.csv --text-field body --id-field doc_id --title-field ""
    vllm-ranker ingest corpus.jsonl --uri http://milvus:19530 --endpoint http://gpu-box:8000

Re-running skips what is already there; an interrupted run loses nothing that was flushed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

from vllm_ranker.cli._options import (
    UsageError,
    add_command,
    add_milvus_options,
    add_vllm_options,
    collection_name,
    connect,
    embeddings_endpoint,
    positive_int,
    progress_bar,
    truncation,
)
from vllm_ranker.tools import DENSE_INDEXES, Columns, IngestReport, corpus_path, ingest_corpus, read_corpus


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub, "ingest", __doc__, "load a corpus (BEIR dir, JSONL or CSV) into Milvus: BM25 + dense vectors from vLLM"
    )
    parser.add_argument("corpus", help="a BEIR directory (its corpus.jsonl), or a .jsonl / .csv / .tsv file")
    add_milvus_options(
        parser,
        collection_help="collection name (default: the corpus directory's name; for a file its name without the "
        "extension, and for a BEIR corpus.jsonl its directory's name)",
    )
    add_vllm_options(parser)
    parser.add_argument("--id-field", default="_id", help="id column/key (_id as in BEIR)")
    parser.add_argument("--text-field", default="text", help="text column/key")
    parser.add_argument("--title-field", default="title", help="title column/key, '' for none")
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, help="documents per embeddings request and flush"
    )
    parser.add_argument(
        "--analyzer",
        default="standard",
        help="Milvus analyzer for BM25: a built-in name (standard, english on a Milvus server) or analyzer params "
        'as JSON, e.g. \'{"tokenizer": "standard", "filter": ["lowercase"]}\' (Milvus Lite knows standard only)',
    )
    parser.add_argument("--dense-index", default="FLAT", choices=DENSE_INDEXES, help="dense index")
    parser.add_argument("--max-docs", type=positive_int, help="ingest only the first N documents (a quick try)")
    parser.add_argument("--report", help="write the ingest report as JSON to this file")


def _count_lines(path: Path) -> int | None:
    if path.suffix.lower() != ".jsonl":
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _analyzer(value: str) -> str | dict[str, Any]:
    if not value.lstrip().startswith("{"):
        return value
    try:
        params = json.loads(value)
    except ValueError as exc:
        raise UsageError(f"--analyzer {value!r} is not valid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise UsageError("--analyzer JSON must be an object of Milvus analyzer params")
    return params


INTERRUPTED_HINT = "run the same command again to resume: documents already flushed are skipped"


def run(args: argparse.Namespace) -> int:
    # Imported here, not above: `ingest --help` must not pay for rich and httpx.
    from rich.console import Console

    from vllm_ranker.tools import Embedder

    console = Console()
    file = corpus_path(args.corpus)
    name = collection_name(args, args.corpus)
    columns = Columns(id=args.id_field, text=args.text_field, title=args.title_field or None)
    # Checked before vLLM starts (a minute on a CPU): the file's first record and the Milvus URI.
    next(read_corpus(file, columns), None)
    analyzer = _analyzer(args.analyzer)
    total = _count_lines(file)
    if args.max_docs is not None:
        total = args.max_docs if total is None else min(total, args.max_docs)
    client = connect(args)
    try:
        with (
            embeddings_endpoint(console, args) as endpoint,
            Embedder(endpoint.embeddings, args.model, truncation(args)) as embedder,
            progress_bar(console) as bar,
        ):
            task = bar.add_task(f"Ingesting into {name!r}", total=total, rate="")
            started = time.perf_counter()

            def progress(report: IngestReport) -> None:
                rate = report.inserted / max(time.perf_counter() - started, 1e-9)
                bar.update(
                    task,
                    completed=report.documents,
                    rate=f"{rate:.1f} docs/s embedded, {report.skipped} already there",
                )

            docs = read_corpus(file, columns)
            if args.max_docs is not None:
                docs = itertools.islice(docs, args.max_docs)
            report = ingest_corpus(
                client,
                name,
                docs,
                embedder,
                batch_size=args.batch_size,
                analyzer=analyzer,
                dense_index=args.dense_index,
                progress=progress,
            )
    finally:
        client.close()
    console.print(
        f"[green]OK[/green] {name!r} at {args.uri}: {report.count} documents "
        f"({report.inserted} inserted now, {report.skipped} already there, {report.duplicate_ids} duplicate ids "
        f"in the corpus) in {report.seconds:.1f} s"
    )
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0
