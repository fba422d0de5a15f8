"""Long documents (the ``chunk`` param): each candidate's text cut into overlapping windows, every window scored
like a document, and the document scored by its best window. Pure.

A window's size counts words (runs of non-space characters) or the model's tokens. Tokens come from the service's
tokenizer (vLLM's ``/tokenize``, asked by the flow before the rerank: ``token_chunks.py``), placed on the text by
``token_spans.py``; a window then holds at most ``size`` tokens, cut between words (a word is cut between its
tokens only when it alone holds more than ``size``). A text whose tokens cannot be placed on it falls back to
words, as many per window as its tokens-per-word ratio allows, and is counted (``RerankStats.chunk_fallbacks``).
Offsets are always characters of the original text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vllm_ranker.core.ordering import Candidate
from vllm_ranker.core.token_spans import Span, token_spans

_WORD = re.compile(r"\S+")

Unit = Literal["words", "tokens"]


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    size: int  # words or tokens per chunk, > overlap
    overlap: int = 0  # words or tokens shared by neighbouring chunks
    max_chunks: int | None = None  # only the first max_chunks chunks of a document are scored; None: all
    return_chunk: bool = False  # put the winning chunk in the hit's entity as ``$rerank_chunk``
    unit: Unit = "words"


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int  # character offsets into the document's text: text[start:end]
    end: int


def chunks(text: str, spec: ChunkSpec) -> list[Chunk]:
    """The word windows of ``text``: ``spec.size`` words each, stepping ``size - overlap`` words, the last one
    ending at the last word (a text of at most ``size`` words is one chunk; a text of no words one empty chunk)."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return [Chunk(0, 0, len(text))]
    step = spec.size - spec.overlap
    out: list[Chunk] = []
    first = 0
    while True:
        last = min(first + spec.size, len(spans)) - 1
        out.append(Chunk(len(out), spans[first][0], spans[last][1]))
        if last == len(spans) - 1 or (spec.max_chunks is not None and len(out) >= spec.max_chunks):
            return out
        first += step


def token_chunks(text: str, tokens: Sequence[str], spec: ChunkSpec) -> tuple[list[Chunk], bool]:
    """The token windows of ``text`` given its tokens' strings, and whether it fell back to words (the tokens
    could not be placed on the text)."""
    spans = token_spans(text, tokens)
    if spans is None:
        words = max(1, len(_WORD.findall(text)))
        per_word = max(len(tokens), 1) / words  # the text's own tokens-per-word ratio
        size = max(1, int(spec.size / per_word))
        overlap = min(size - 1, int(spec.overlap / per_word))
        return chunks(text, ChunkSpec(size, overlap, spec.max_chunks)), True
    units = _units(text, spans, spec.size)
    if not units:
        return [Chunk(0, 0, len(text))], False
    return _windows(units, spec), False


@dataclass(frozen=True, slots=True)
class _Unit:
    """What a window never cuts: a word (words joined by a token that spans them), or a piece of ``size`` tokens
    of a word too long for one window."""

    start: int
    end: int
    tokens: int


def _units(text: str, spans: Sequence[Span], size: int) -> list[_Unit]:
    order = sorted(spans)
    words: list[list[int]] = []  # [start, end] of each word; words that one token spans are joined
    k, reach = 0, 0
    for match in _WORD.finditer(text):
        while k < len(order) and order[k][0] < match.start():
            reach = max(reach, order[k][1])
            k += 1
        if words and reach > match.start():
            words[-1][1] = match.end()
        else:
            words.append([match.start(), match.end()])
    starts = [s for s, _ in order]
    units: list[_Unit] = []
    low = 0  # a word owns the tokens from its start to the next word's (the first also those before it)
    for index, (start, end) in enumerate(words):
        high = bisect.bisect_left(starts, words[index + 1][0]) if index + 1 < len(words) else len(starts)
        count = high - low
        if count <= size:
            units.append(_Unit(start, end, count))
        else:  # a word of more tokens than a window holds: cut between its tokens
            cuts = [start, *(min(max(s, start), end) for s in starts[low + size : high : size]), end]
            for piece in range(len(cuts) - 1):
                units.append(_Unit(cuts[piece], cuts[piece + 1], min(size, count - piece * size)))
        low = high
    return units


def _windows(units: Sequence[_Unit], spec: ChunkSpec) -> list[Chunk]:
    """Greedy windows of whole units, at most ``size`` tokens each; the next starts as far back as keeps its
    shared tokens at most ``overlap`` and still reaches past the window before."""
    out: list[Chunk] = []
    first = 0
    while True:
        total, last = units[first].tokens, first + 1
        while last < len(units) and total + units[last].tokens <= spec.size:
            total += units[last].tokens
            last += 1
        out.append(Chunk(len(out), units[first].start, units[last - 1].end))
        if last == len(units) or (spec.max_chunks is not None and len(out) >= spec.max_chunks):
            return out
        following, shared = last, 0
        while (
            following - 1 > first
            and shared + units[following - 1].tokens <= spec.overlap
            and shared + units[following - 1].tokens + units[last].tokens <= spec.size
        ):
            following -= 1
            shared += units[following].tokens
        first = following


@dataclass(slots=True)
class Chunked:
    """One query's candidates as the chunks sent to the model, and which chunks belong to which candidate."""

    pieces: list[Candidate]
    owners: list[list[Chunk]]  # per candidate, its chunks (in order; their pieces are consecutive)
    fallbacks: int = 0  # candidates whose tokens could not be placed on the text, chunked by words instead

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


def chunk_candidates(
    candidates: Sequence[Candidate], spec: ChunkSpec, tokens: Mapping[str, Sequence[str]] | None = None
) -> Chunked:
    """``tokens``: each text's token strings, for a spec counting tokens."""
    pieces: list[Candidate] = []
    owners: list[list[Chunk]] = []
    fallbacks = 0
    for candidate in candidates:
        if spec.unit == "tokens" and tokens is not None:
            owned, fell_back = token_chunks(candidate.text, tokens[candidate.text], spec)
            fallbacks += fell_back
        else:
            owned = chunks(candidate.text, spec)
        owners.append(owned)
        pieces.extend(Candidate(candidate.pk, candidate.text[c.start : c.end], {}) for c in owned)
    return Chunked(pieces, owners, fallbacks)
