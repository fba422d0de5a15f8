"""Snippets with the query's words marked, as (text, matched) segments.

The page builds the DOM from segments with ``textContent`` only, so a document holding HTML or script can never
run in the page; marking on the server keeps the one tokeniser in Python.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
# Words that match nearly every document: marking them would hide the informative matches.
_STOP = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in", "is", "it"}
    | {"of", "on", "or", "the", "to", "what", "when", "where", "which", "who", "why", "with"}
)

Segment = tuple[str, bool]


def query_terms(query: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(query) if w.lower() not in _STOP and len(w) > 1}


def segments(text: str, terms: set[str]) -> list[Segment]:
    """``text`` split into runs, each flagged when it is one of ``terms`` (case-insensitive, whole words)."""
    out: list[Segment] = []
    last = 0
    for match in _WORD.finditer(text):
        if match.group().lower() in terms:
            if match.start() > last:
                out.append((text[last : match.start()], False))
            out.append((match.group(), True))
            last = match.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def snippet(text: str, terms: set[str], width: int = 260) -> list[Segment]:
    """About ``width`` characters of ``text`` around its first marked word (from the start when none is),
    cut at word boundaries, with an ellipsis where text was left out."""
    if len(text) <= width:
        return segments(text, terms)
    first = next((m.start() for m in _WORD.finditer(text) if m.group().lower() in terms), 0)
    start = max(0, first - width // 4)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    body = segments(text[start:end], terms)
    return ([("… ", False)] if start else []) + body + ([(" …", False)] if end < len(text) else [])


def _after_space(text: str, start: int, limit: int) -> int:
    """``start`` moved to just after the next space before ``limit`` (a snippet does not begin mid-word)."""
    space = text.find(" ", start, limit)
    return space + 1 if space >= 0 else start


def _before_space(text: str, start: int, end: int) -> int:
    """``end`` moved back to the last space after ``start`` (a snippet does not end mid-word)."""
    space = text.rfind(" ", start, end)
    return space if space > start else end


def with_chunk(
    text: str, start: int, end: int, terms: set[str], width: int | None = 260
) -> tuple[list[Segment], tuple[int, int]]:
    """``text`` as segments with ``text[start:end]`` (the model's winning chunk) as segments of its own, and the
    range ``[i, j)`` of the returned segments that are the chunk, which the page wraps in one mark. Query words are
    marked inside and outside the chunk alike.

    ``width`` None, or a text no longer: the whole text. Otherwise about ``width`` characters: a little before the
    chunk (so the reader sees where it starts), the chunk (cut at a word when longer), then what follows while room
    is left, with an ellipsis wherever text was left out. Offsets are Python's (code points), as the library gives
    them; the page gets the pieces already cut, so its UTF-16 strings never index them."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    if width is None or len(text) <= width:
        head, shown_end, tail_end = 0, end, len(text)
    else:
        head = max(0, start - width // 5)
        head = _after_space(text, head, start) if head else 0
        shown_end = min(end, head + width)
        if shown_end < end:
            shown_end = _before_space(text, start, shown_end)
        tail_end = shown_end
        if shown_end == end and end < len(text):
            tail_end = min(len(text), head + width)
            tail_end = _before_space(text, end, tail_end) if tail_end < len(text) else tail_end
    out: list[Segment] = [("… ", False)] if head else []
    out += segments(text[head:start], terms)
    first = len(out)
    out += segments(text[start:shown_end], terms)
    last = len(out)
    if shown_end == end:
        out += segments(text[end:tail_end], terms)
    if tail_end < len(text):
        out.append((" …", False))
    return out, (first, last)
