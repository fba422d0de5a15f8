"""Where each of a model's tokens lies in the original text, from the token strings its tokenizer returns (vLLM's
``/tokenize`` with ``return_token_strs``). Pure.

The token strings are not substrings of the text: tokenizers mark word pieces and spaces, lower-case and strip
accents, and write bytes as characters. ``token_spans`` undoes each convention it can recognise:

- byte-level BPE (GPT-2, RoBERTa, Llama 3, Qwen): every character stands for one byte (``Ġ`` a space, ``Ċ`` a
  newline); the bytes of all tokens together are the text's UTF-8 bytes, so the spans are exact;
- WordPiece (BERT, MiniLM): ``##`` marks a continuation, ``[UNK]`` stands for a whole word it could not cut;
- SentencePiece (T5, XLM-R, Llama 2): ``▁`` marks a space, ``<0xNN>`` a byte, ``<unk>`` what it could not read.

Text and tokens are compared case- and accent-insensitively (uncased tokenizers lower-case and strip accents; some
NFKC-normalise), character by character, whitespace skipped. When the tokens cannot be placed on the text the
answer is None, and the caller falls back to words (``chunking.py``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

Span = tuple[int, int]  # character offsets into the text: text[start:end]

_UNKNOWN = frozenset({"[UNK]", "<unk>", "<UNK>", "<|unk|>"})
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARKS = str.maketrans({"▁": " "})


@functools.cache
def _byte_of_char() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` inverted: the printable character each byte is written as, back to the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


# Bounded: called for single characters and for token strings, whose vocabulary is large (up to ~250k) but finite;
# a client or gateway runs for months, so no cache of ours grows without limit.
@functools.lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """What an uncased tokenizer leaves of ``text``: NFKC, case-folded, accents (combining marks) and control
    characters dropped."""
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Cc", "Cf") or c.isspace())


def token_spans(text: str, tokens: Sequence[str]) -> list[Span] | None:
    """Each token's span in ``text`` (whitespace trimmed off; a token of nothing but a space marker gets an empty
    span where it stands), or None when the tokens cannot be placed on the text."""
    if not tokens:
        return [] if not text.strip() else None
    spans = _byte_level(text, tokens)
    if spans is None:
        spans = _pieces(text, tokens)
    return None if spans is None else [_trim(text, s) for s in spans]


def _trim(text: str, span: Span) -> Span:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _byte_level(text: str, tokens: Sequence[str]) -> list[Span] | None:
    """Byte-level BPE: exact when the tokens' bytes are the text's UTF-8 bytes, else None."""
    table = _byte_of_char()
    encoded = text.encode("utf-8", "surrogatepass")
    ends: list[int] = []
    position = 0
    for token in tokens:
        for char in token:
            byte = table.get(char)
            if byte is None or position >= len(encoded) or encoded[position] != byte:
                return None
            position += 1
        ends.append(position)
    if position != len(encoded):
        return None
    char_at: list[int] = []  # the character each byte belongs to
    for index, char in enumerate(text):
        char_at.extend([index] * len(char.encode("utf-8", "surrogatepass")))
    spans: list[Span] = []
    start = 0
    for end in ends:
        # A token that starts or ends inside a character (an emoji cut in two) covers that whole character.
        spans.append((char_at[start], char_at[end - 1] + 1) if end > start else (len(text), len(text)))
        start = end
    return spans


class _Folded:
    """The text folded character by character, with each folded character's original character."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for index, char in enumerate(text):
            folded = fold(char)
            chars.extend(folded)
            origin.extend([index] * len(folded))
        self.text = "".join(chars)
        self.origin = origin
        self.length = len(text)

    def skip_space(self, position: int) -> int:
        while position < len(self.text) and self.text[position].isspace():
            position += 1
        return position

    def span(self, start: int, end: int) -> Span:
        """The original characters of folded ``[start, end)``; an empty range stands before ``start``'s character."""
        first = self.origin[start] if start < len(self.origin) else self.length
        return (first, self.origin[end - 1] + 1) if end > start else (first, first)


def _piece(token: str) -> str:
    """A WordPiece or SentencePiece token as the text it stands for, folded; space markers kept as spaces."""
    if token.startswith("##") and len(token) > 2:
        token = token[2:]
    return fold(token.translate(_SPACE_MARKS))


def _pieces(text: str, tokens: Sequence[str]) -> list[Span] | None:
    folded = _Folded(text)
    spans: list[Span] = []
    position = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in _UNKNOWN:
            after = _unknown_end(folded, folded.skip_space(position), tokens[index + 1 :])
            if after is None:
                return None
            spans.append(folded.span(folded.skip_space(position), after))
            position = after
            index += 1
            continue
        run = _byte_run(tokens, index)
        if run:  # SentencePiece byte fallback: the run's bytes decode to characters, spanned together
            piece = fold(bytes(run).decode("utf-8", "replace"))
            count = len(run)
        else:
            piece, count = _piece(token), 1
        stripped = piece.strip()
        start = folded.skip_space(position) if stripped else position
        end = start + len(stripped)
        if folded.text[start:end] != stripped:
            return None
        spans.extend([folded.span(start, end)] * count)
        position = end
        index += count
    return spans if folded.skip_space(position) == len(folded.text) else None


def _byte_run(tokens: Sequence[str], index: int) -> list[int]:
    out: list[int] = []
    while index < len(tokens) and (match := _BYTE_TOKEN.fullmatch(tokens[index])):
        out.append(int(match.group(1), 16))
        index += 1
    return out


def _unknown_end(folded: _Folded, start: int, rest: Sequence[str]) -> int | None:
    """Where an unknown token ends: WordPiece's covers a whole word (up to a space or a punctuation mark, or one
    punctuation mark); SentencePiece's as little as lets the next token match."""
    text = folded.text
    if start >= len(text):
        return None
    # The next token's text, when it has one to look for (another unknown, a space marker or nothing: none).
    following = _piece(rest[0]).strip() if rest and rest[0] not in _UNKNOWN else ""
    word = start + 1
    if not _is_punctuation(text[start]):
        while word < len(text) and not text[word].isspace() and not _is_punctuation(text[word]):
            word += 1
    if not following or text.startswith(following, folded.skip_space(word)):
        return word
    for end in range(start + 1, len(text)):
        if text.startswith(following, folded.skip_space(end)) and not text[start:end].isspace():
            return end
    return None


def _is_punctuation(char: str) -> bool:
    # BERT's rule: ASCII symbols count as punctuation too (``$``, ``^``), not only Unicode's P* categories.
    return (char.isascii() and not char.isalnum() and not char.isspace()) or unicodedata.category(char)[0] == "P"
