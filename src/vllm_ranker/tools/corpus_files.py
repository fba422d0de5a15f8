"""Readers for retrieval collections: BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and
generic JSONL/CSV corpora with a chosen id/text/title column.

Everything streams (a corpus may not fit in memory twice); ids are kept as strings, as BEIR and the qrels use
them. Bad files raise ``CorpusFileError`` (a ``MilvusException``) naming the file, the line and what to change.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vllm_ranker.tools.errors import CorpusFileError


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """What is indexed, embedded and reranked: title and body, as BEIR's baselines use them."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Columns:
    """Which fields of a generic JSONL/CSV row hold the id, the text and (optionally) the title."""

    id: str = "_id"
    text: str = "text"
    title: str | None = "title"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CorpusFileError(f"no such file: {path}: give the path of an existing corpus/queries/qrels file")
    return path


def corpus_path(path: str | Path) -> Path:
    """A corpus file, or a BEIR directory (then its ``corpus.jsonl``)."""
    p = Path(path)
    return _require(p / "corpus.jsonl" if p.is_dir() else p)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, row) for each record of a .jsonl or .csv/.tsv file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        csv.field_size_limit(sys.maxsize)  # abstracts and articles exceed csv's 128 KiB default
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for number, row in enumerate(reader, start=2):
                yield number, dict(row)
        return
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise CorpusFileError(
                    f"{path}:{number}: not a JSON object ({exc}): a .jsonl corpus has one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise CorpusFileError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def read_corpus(path: str | Path, columns: Columns = Columns()) -> Iterator[Document]:
    """Documents of a BEIR directory or a JSONL/CSV file, in file order."""
    file = corpus_path(path)
    for number, row in _rows(file):
        doc_id, text = row.get(columns.id), row.get(columns.text)
        if doc_id is None or str(doc_id) == "":
            raise CorpusFileError(
                f"{file}:{number}: no {columns.id!r} field (found {sorted(row)}): choose the id column with --id-field"
            )
        if text is None:
            raise CorpusFileError(
                f"{file}:{number}: no {columns.text!r} field (found {sorted(row)}): "
                "choose the text column with --text-field"
            )
        title = row.get(columns.title) if columns.title else None
        yield Document(str(doc_id), "" if title is None else str(title), str(text))


def read_queries(path: str | Path) -> dict[str, str]:
    """``{query id: text}`` from a BEIR ``queries.jsonl`` (or a directory holding one)."""
    p = Path(path)
    file = _require(p / "queries.jsonl" if p.is_dir() else p)
    out: dict[str, str] = {}
    for number, row in _rows(file):
        if "_id" not in row or "text" not in row:
            raise CorpusFileError(f"{file}:{number}: a query needs '_id' and 'text' (found {sorted(row)})")
        out[str(row["_id"])] = str(row["text"])
    return out


def read_qrels(path: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """``{query id: {doc id: relevance}}`` from a BEIR ``qrels/<split>.tsv`` (or that file itself)."""
    p = Path(path)
    file = _require(p / "qrels" / f"{split}.tsv" if p.is_dir() else p)
    qrels: dict[str, dict[str, int]] = {}
    with file.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and parts[0] == "query-id":
                continue  # BEIR's header
            if len(parts) != 3:
                raise CorpusFileError(
                    f"{file}:{number}: expected 'query-id<TAB>corpus-id<TAB>score', got {line.strip()!r}"
                )
            try:
                score = int(parts[2])
            except ValueError:
                raise CorpusFileError(f"{file}:{number}: score {parts[2]!r} is not a whole number") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels
