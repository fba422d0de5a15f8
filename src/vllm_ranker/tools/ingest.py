"""Load a corpus into a Milvus collection with a BM25 sparse field and a dense field, resumably.

Dense vectors come from an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, or any other) called here with
httpx; the sparse field is filled by Milvus itself through a BM25 Function on the text field. Ingest is
idempotent and resumable: primary keys are the corpus ids, each batch first asks Milvus which of its ids are
already there and embeds/inserts only the others, and every batch is flushed before the next starts, so an
interrupted run loses at most the batch in flight and a re-run picks up where it stopped. A final count check
compares the collection with the corpus.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllm_ranker.tools.corpus_files import Document
from vllm_ranker.tools.errors import IngestCountError, ToolInputError

if TYPE_CHECKING:  # pymilvus and httpx are loaded by the code that runs, not by `vllm-ranker ingest --help`
    from pymilvus import MilvusClient

    from vllm_ranker.tools.embeddings import Embedder

ID_FIELD = "id"
TITLE_FIELD = "title"
# The body alone, as a collection usually holds it (a model ranker reads one field in Milvus): what `eval` reranks
# to measure what `document_template: "{title}\n{body}"` adds. Collections ingested before it existed lack it.
BODY_FIELD = "body"
TEXT_FIELD = "text"  # title + body: what BM25 indexes, what was embedded, what a model ranker reads
DENSE_FIELD = "dense"
SPARSE_FIELD = "sparse"
PREVIEW = 64  # records read and checked before a collection is created or added to
MAX_ID_BYTES = 512
MAX_TITLE_BYTES = 4096
MAX_TEXT_BYTES = 65535  # Milvus's VARCHAR limit
DENSE_INDEXES = ("FLAT", "HNSW", "AUTOINDEX")


def _clip(text: str, max_bytes: int) -> str:
    """``text`` cut to fit a VARCHAR of ``max_bytes`` UTF-8 bytes, at a character boundary."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def create_collection(
    client: MilvusClient,
    name: str,
    dim: int,
    *,
    analyzer: str | dict[str, Any] = "standard",
    dense_index: str = "FLAT",
    description: str = "",
) -> None:
    """The schema every vllm-ranker command expects (see the module's field names)."""
    from pymilvus import DataType

    from vllm_ranker.tools.text_collection import add_text_fields

    if dense_index.upper() not in DENSE_INDEXES:
        raise ToolInputError(f"dense index {dense_index!r} is not supported here: use one of {DENSE_INDEXES}")
    schema = client.create_schema(auto_id=False, description=description)
    schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field(TITLE_FIELD, DataType.VARCHAR, max_length=MAX_TITLE_BYTES)
    schema.add_field(BODY_FIELD, DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    add_text_fields(
        schema,
        dim=dim,
        text_field=TEXT_FIELD,
        max_length=MAX_TEXT_BYTES,
        analyzer_params={"type": analyzer} if isinstance(analyzer, str) else analyzer,
        dense_field=DENSE_FIELD,
        sparse_field=SPARSE_FIELD,
    )
    index = client.prepare_index_params()
    params = {"M": 16, "efConstruction": 200} if dense_index.upper() == "HNSW" else {}
    index.add_index(DENSE_FIELD, index_type=dense_index.upper(), metric_type="COSINE", params=params)
    index.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=schema, index_params=index)


def check_schema(client: MilvusClient, name: str, dim: int) -> None:
    """Refuse to add to a collection that was not made by ``create_collection`` (or with another dimension)."""
    described = client.describe_collection(name)
    fields = {f["name"]: f for f in described.get("fields", [])}
    missing = [f for f in (ID_FIELD, TEXT_FIELD, DENSE_FIELD, SPARSE_FIELD) if f not in fields]
    if missing:
        raise ToolInputError(
            f"collection {name!r} exists but has no field(s) {missing}: it was not made by `vllm-ranker ingest`; "
            "choose another --collection"
        )
    have = int(fields[DENSE_FIELD].get("params", {}).get("dim", dim))
    if have != dim:
        raise ToolInputError(
            f"collection {name!r} holds {have}-d vectors but the embeddings model gives {dim}-d: use the model "
            "it was built with, or another --collection"
        )


def count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def _present(client: MilvusClient, name: str, ids: list[str]) -> set[str]:
    # JSON string literals are valid Milvus string literals, with quotes and backslashes escaped (pymilvus's get()
    # does not escape them, and Milvus Lite has no filter templates).
    found = client.query(name, filter=f"{ID_FIELD} in {json.dumps(ids, ensure_ascii=False)}", output_fields=[ID_FIELD])
    return {str(row[ID_FIELD]) for row in found}


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class IngestReport:
    collection: str
    documents: int = 0  # distinct ids read from the corpus
    inserted: int = 0  # embedded and inserted by this run
    skipped: int = 0  # already in the collection (an earlier run)
    duplicate_ids: int = 0  # repeated ids in the corpus (the first one wins)
    clipped: int = 0  # texts cut to Milvus's VARCHAR limit
    count: int = 0  # rows in the collection at the end
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def ingest(
    client: MilvusClient,
    collection: str,
    docs: Iterable[Document],
    embedder: Embedder,
    *,
    batch_size: int = 64,
    analyzer: str | dict[str, Any] = "standard",
    dense_index: str = "FLAT",
    progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Ingest ``docs`` into ``collection`` (created if missing); see the module docstring."""
    if batch_size < 1:
        raise ToolInputError(f"batch size {batch_size} must be at least 1")
    started = time.perf_counter()
    report = IngestReport(collection)
    # The first records are read (and so checked: format, id and text fields) before anything is created.
    stream = iter(docs)
    head = list(itertools.islice(stream, max(PREVIEW, batch_size)))
    if not head:
        raise ToolInputError("the corpus holds no documents: check the file (and --max-docs)")
    model = embedder.resolve_model()
    dim = len(embedder.embed(["dimension probe"])[0])
    created = not client.has_collection(collection)
    if created:
        meta = json.dumps({"made_by": "vllm-ranker ingest", "model": model, "dim": dim})
        create_collection(client, collection, dim, analyzer=analyzer, dense_index=dense_index, description=meta)
    else:
        check_schema(client, collection, dim)
        _refuse_another_corpus(client, collection, head[:PREVIEW])
    try:
        _fill(client, collection, itertools.chain(head, stream), embedder, batch_size, report, progress)
    except BaseException:
        # A failed start leaves nothing behind: a collection made by this run that got no row is dropped.
        if created and report.inserted == 0:
            client.drop_collection(collection)
        raise
    client.flush(collection)
    report.count = count(client, collection)
    report.seconds = time.perf_counter() - started
    if report.count != report.documents:
        raise IngestCountError(
            f"collection {collection!r} holds {report.count} documents but the corpus has {report.documents} "
            "distinct ids: re-run to fill gaps; if the collection holds more, it mixes corpora: use another "
            "--collection"
        )
    return report


def _refuse_another_corpus(client: MilvusClient, collection: str, head: list[Document]) -> None:
    """Adding to a non-empty collection is resuming only when it already holds some of the corpus's first ids;
    otherwise the collection holds another corpus, and mixing the two would spoil both."""
    client.load_collection(collection)
    held = count(client, collection)
    if held and not _present(client, collection, [_clip(d.id, MAX_ID_BYTES) for d in head]):
        raise ToolInputError(
            f"collection {collection!r} already holds {held} documents and none of this corpus's first "
            f"{len(head)} ids: it holds another corpus. Give --collection NAME to ingest into another collection "
            "(or drop this one)"
        )


def _fill(
    client: MilvusClient,
    collection: str,
    docs: Iterable[Document],
    embedder: Embedder,
    batch_size: int,
    report: IngestReport,
    progress: Callable[[IngestReport], None] | None,
) -> None:
    client.load_collection(collection)
    seen: set[str] = set()
    for batch in _batches(docs, batch_size):
        fresh: list[Document] = []
        for doc in batch:
            if doc.id in seen:
                report.duplicate_ids += 1
            else:
                seen.add(doc.id)
                fresh.append(doc)
        report.documents += len(fresh)
        present = _present(client, collection, [d.id for d in fresh]) if fresh else set()
        todo = [d for d in fresh if d.id not in present]
        report.skipped += len(fresh) - len(todo)
        if todo:
            texts = [_clip(d.full_text, MAX_TEXT_BYTES) for d in todo]
            report.clipped += sum(len(t) != len(d.full_text) for t, d in zip(texts, todo, strict=True))
            embed_started = time.perf_counter()
            vectors = embedder.embed(texts)
            report.embed_seconds += time.perf_counter() - embed_started
            rows = [
                {
                    ID_FIELD: _clip(d.id, MAX_ID_BYTES),
                    TITLE_FIELD: _clip(d.title, MAX_TITLE_BYTES),
                    BODY_FIELD: _clip(d.text, MAX_TEXT_BYTES),
                    TEXT_FIELD: text,
                    DENSE_FIELD: vector,
                }
                for d, text, vector in zip(todo, texts, vectors, strict=True)
            ]
            client.insert(collection, rows)
            # Flushed batch by batch: what is flushed survives an interruption, and the next run skips it.
            client.flush(collection)
            report.inserted += len(todo)
        if progress is not None:
            progress(report)
