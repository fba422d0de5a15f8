"""Long documents (the ``chunk`` param): each candidate's text cut into overlapping windows of words, every window
scored like a document, and the document scored by its best window. Pure.

Words (runs of non-space characters) for now: counting the model's tokens (vLLM's ``/tokenize``) would cost a
request per document before the rerank; the stats say which unit was used (``RerankStats.chunk_unit``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_ranker.core.ordering import Candidate

_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    words: int  # words per chunk, > overlap
    overlap: int = 0  # words shared by neighbouring chunks
    max_chunks: int | None = None  # only the first max_chunks chunks of a document are scored; None: all
    return_chunk: bool = False  # put the winning chunk in the hit's entity as ``$rerank_chunk``

    unit = "words"


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int  # character offsets into the document's text: text[start:end]
    end: int


def chunks(text: str, spec: ChunkSpec) -> list[Chunk]:
    """The windows of ``text``: ``spec.words`` words each, stepping ``words - overlap`` words, the last one ending
    at the last word (a text of at most ``words`` words is one chunk; a text of no words one empty chunk)."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return [Chunk(0, 0, len(text))]
    step = spec.words - spec.overlap
    out: list[Chunk] = []
    first = 0
    while True:
        last = min(first + spec.words, len(spans)) - 1
        out.append(Chunk(len(out), spans[first][0], spans[last][1]))
        if last == len(spans) - 1 or (spec.max_chunks is not None and len(out) >= spec.max_chunks):
            return out
        first += step


@dataclass(slots=True)
class Chunked:
    """One query's candidates as the chunks sent to the model, and which chunks belong to which candidate."""

    pieces: list[Candidate]
    owners: list[list[Chunk]]  # per candidate, its chunks (in order; their pieces are consecutive)

    def best(self, scores: Sequence[float]) -> tuple[list[float], list[Chunk]]:
        """Each candidate's score (its best chunk's; the first chunk wins a tie) and that chunk."""
        out: list[float] = []
        winners: list[Chunk] = []
        position = 0
        for owned in self.owners:
            own = scores[position : position + len(owned)]
            top = max(range(len(own)), key=lambda i: (own[i], -i))
            out.append(own[top])
            winners.append(owned[top])
            position += len(owned)
        return out, winners


def chunk_candidates(candidates: Sequence[Candidate], spec: ChunkSpec) -> Chunked:
    pieces: list[Candidate] = []
    owners: list[list[Chunk]] = []
    for candidate in candidates:
        owned = chunks(candidate.text, spec)
        owners.append(owned)
        pieces.extend(Candidate(candidate.pk, candidate.text[c.start : c.end], {}) for c in owned)
    return Chunked(pieces, owners)
