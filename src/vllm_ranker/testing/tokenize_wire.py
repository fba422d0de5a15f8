"""vLLM's ``POST /tokenize`` as the loopback ``RerankServer`` answers it, with a small deterministic tokenizer that
behaves like an uncased WordPiece one (all-MiniLM-L6-v2's, BERT's). No HTTP here.

The request is vLLM's ``TokenizeCompletionRequest``: ``{"model"?, "prompt", "add_special_tokens"? (default true),
"return_token_strs"? (default false)}``; the answer its ``TokenizeResponse``: ``{"count", "max_model_len",
"tokens", "token_strs"}`` (``token_strs`` null unless asked). A body that does not validate is a 400 in vLLM's
error shape.

The tokenizer (``wordpiece``): control characters dropped, lower-cased, accents stripped (NFD, combining marks
out), split at whitespace, every punctuation mark and CJK character a word of its own (BERT's basic tokenizer);
then each word cut into pieces of at most ``PIECE`` characters, every piece after the first written ``##piece``.
A word holding a character outside the Basic Multilingual Plane (an emoji), or longer than 100 characters, is one
``[UNK]``, as WordPiece writes a word its vocabulary cannot cover.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

PIECE = 4  # characters per word piece
MAX_MODEL_LEN = 512
VOCAB = 30522  # BERT's vocabulary size: the ids are hashes into it
UNK, CLS, SEP = "[UNK]", "[CLS]", "[SEP]"
_SPECIAL_IDS = {UNK: 100, CLS: 101, SEP: 102}
_MAX_WORD = 100  # BERT's max_input_chars_per_word


def _is_punctuation(char: str) -> bool:
    return (char.isascii() and not char.isalnum() and not char.isspace()) or unicodedata.category(char)[0] == "P"


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def _words(text: str) -> list[str]:
    """BERT's basic tokenizer, uncased."""
    cleaned = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    folded = "".join(c for c in unicodedata.normalize("NFD", cleaned.lower()) if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for chunk in folded.split():
        current = ""
        for char in chunk:
            if _is_punctuation(char) or _is_cjk(char):
                if current:
                    words.append(current)
                words.append(char)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def wordpiece(text: str) -> list[str]:
    """The token strings of ``text`` (no special tokens)."""
    out: list[str] = []
    for word in _words(text):
        if len(word) > _MAX_WORD or any(ord(c) > 0xFFFF for c in word):
            out.append(UNK)
            continue
        out.extend(word[i : i + PIECE] if i == 0 else "##" + word[i : i + PIECE] for i in range(0, len(word), PIECE))
    return out


def token_id(token: str) -> int:
    if token in _SPECIAL_IDS:
        return _SPECIAL_IDS[token]
    return 1000 + int.from_bytes(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()[:4], "big") % (
        VOCAB - 1000
    )


def _bad_request(message: str) -> tuple[int, Any]:
    return 400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}


def tokenize_answer(body: Any) -> tuple[int, Any]:
    """vLLM's status and answer for a ``/tokenize`` request with JSON ``body``."""
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return _bad_request("prompt: Field required (a string; this server answers completion requests only)")
    special = body.get("add_special_tokens", True)
    strs_asked = body.get("return_token_strs", False)
    if not isinstance(special, bool) or not isinstance(strs_asked, (bool, type(None))):
        return _bad_request("add_special_tokens and return_token_strs: Input should be a valid boolean")
    strs = wordpiece(body["prompt"])
    if special:
        strs = [CLS, *strs, SEP]
    return 200, {
        "count": len(strs),
        "max_model_len": MAX_MODEL_LEN,
        "tokens": [token_id(t) for t in strs],
        "token_strs": strs if strs_asked else None,
    }
