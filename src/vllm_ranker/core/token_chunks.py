"""``chunk: {"tokens": N}``: the flow's ``Tokenize`` step (the model's tokenizer asked for each distinct text, by
the driver through the transport) and the candidates chunked with its answers (chunking.py); words need no step.

Only a provider with a tokenizer endpoint (providers/tokenizers.py: vLLM's ``/tokenize``) counts tokens; any other
is refused before the first-stage search (``refuse_tokens``).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from vllm_ranker.core.chunking import Chunked, chunk_candidates
from vllm_ranker.core.ordering import Candidate
from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.errors import RerankParamError
from vllm_ranker.providers.tokenizers import TOKENIZERS
from vllm_ranker.stats import RerankStats


@dataclass(frozen=True, slots=True)
class Tokenize:
    """Answered with each text's token strings, in order; a ``RerankServiceError`` that ended it is thrown in."""

    spec: RerankSpec
    texts: Sequence[str]
    stats: RerankStats
    deadline: float  # time.monotonic() when the call's rerank must be done: the tokenize and the rerank share it


def refuse_tokens(spec: RerankSpec) -> None:
    """Token chunks need the provider's tokenizer: a RerankParamError before any search when it has none."""
    chunk = spec.shaping.chunk
    if chunk is not None and chunk.unit == "tokens" and spec.provider.name not in TOKENIZERS:
        raise RerankParamError(
            f"chunk.tokens: provider {spec.provider.name} has no tokenizer endpoint to count the model's tokens "
            f"(only {', '.join(sorted(TOKENIZERS))} has): give the chunk's size in words instead, e.g. chunk: "
            f'{{"words": {max(1, chunk.size * 3 // 4)}, "overlap": {chunk.overlap * 3 // 4}}} (about 4 tokens to '
            "3 words in English)"
        )


def chunk_all(
    spec: RerankSpec, candidates: Sequence[Sequence[Candidate]], stats: RerankStats, deadline: float
) -> Generator[Tokenize, Any, list[Chunked] | None]:
    """Each query's candidates chunked (None without ``chunk``); counting tokens, the texts are tokenized first,
    each distinct text once. A tokenizer's failure is thrown into this generator and goes on up to the flow."""
    chunk = spec.shaping.chunk
    if chunk is None:
        return None
    tokens: dict[str, Sequence[str]] | None = None
    if chunk.unit == "tokens":
        texts = list(dict.fromkeys(c.text for cands in candidates for c in cands))
        started = time.perf_counter()
        try:
            answers = (yield Tokenize(spec, texts, stats, deadline)) if texts else []
        finally:
            stats.tokenize_seconds = time.perf_counter() - started
        tokens = dict(zip(texts, answers, strict=True))
    return [chunk_candidates(cands, chunk, tokens) for cands in candidates]
