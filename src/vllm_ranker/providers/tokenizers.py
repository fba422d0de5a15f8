"""The services whose model's tokenizer can be asked (``chunk.tokens``): provider name -> how to ask it.

Only vLLM for now (``POST /tokenize``). The others are refused before any search with a message saying to count
words instead (core/token_chunks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import vllm
from .base import Json, Target


@dataclass(frozen=True, slots=True)
class Tokenizer:
    url: Callable[[str], str]  # a target's rerank URL -> the URL its tokenizer answers on
    build_body: Callable[[Target, str], Json]  # one text's request
    parse_tokens: Callable[[Json], list[str]]  # the answer -> the text's token strings; MalformedAnswer if not


TOKENIZERS: dict[str, Tokenizer] = {"vllm": Tokenizer(vllm.tokenize_url, vllm.tokenize_body, vllm.parse_tokens)}
