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
