"""The form's long-document and fusion controls, as the RERANK Function's opt-in params (docs/beyond-milvus.md).

Checked here, before any search, so a bad value gets the page's plain 400 in the form's own words (the library
would refuse it too, but naming ``chunk.overlap`` rather than the box the reader typed in). The page always asks for
what it draws: ``keep_first_stage`` (each reranked hit shows the first stage's score and rank beside the model's)
and, when chunking, ``return`` (the winning chunk is marked in the hit's text).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

# The entity fields the library adds (core/shaping.py): the ui room may import only the package's faces, and these
# names are the library's documented output, so they are spelled here.
FIRST_STAGE_SCORE = "$first_stage_score"
FIRST_STAGE_RANK = "$first_stage_rank"
RERANK_CHUNK = "$rerank_chunk"

FUSIONS = ("none", "rrf", "weighted")
DEFAULT_RRF_K = 60.0  # the library's defaults, so an empty box means what the param's absence would
DEFAULT_WEIGHT = 0.5
MAX_CHUNK_WORDS = 100_000
MAX_CHUNKS = 10_000


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _whole(body: Mapping[str, Any], key: str, label: str, low: int, high: int) -> int | None:
    """``body[key]`` as a whole number in [low, high]; None when the box is empty."""
    raw: Any = body.get(key)
    if _blank(raw):
        return None
    # bool is an int to Python: a checkbox's value in a number's place is a mistake, not 1.
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise InputError(f"{label} must be a whole number, got {raw!r}")
    try:
        value = int(str(raw).strip()) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InputError(f"{label} must be between {low} and {high}, got {value}")
    return value


def _number(body: Mapping[str, Any], key: str, label: str, default: float) -> float:
    raw: Any = body.get(key)
    if _blank(raw):
        return default
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{label} must be a finite number, got {raw!r}")
    return value


@dataclass(frozen=True)
class Shaping:
    """Chunking (``chunk_words`` None: documents scored whole) and fusion (``fuse`` "none": the model's score)."""

    chunk_words: int | None = None
    chunk_overlap: int = 0
    max_chunks: int | None = None
    fuse: str = "none"
    fuse_k: float = DEFAULT_RRF_K
    fuse_weight: float = DEFAULT_WEIGHT

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Shaping:
        words = _whole(body, "chunk_words", "chunk words", 1, MAX_CHUNK_WORDS)
        overlap = _whole(body, "chunk_overlap", "overlap", 0, MAX_CHUNK_WORDS)
        max_chunks = _whole(body, "max_chunks", "max chunks", 1, MAX_CHUNKS)
        if words is None and (overlap or max_chunks is not None):
            raise InputError("overlap and max chunks apply to chunks: give chunk words (the words per chunk) too")
        if words is not None and overlap is not None and overlap >= words:
            raise InputError(
                f"overlap ({overlap}) must be smaller than chunk words ({words}): neighbouring chunks share that "
                "many words, so lower the overlap or raise the chunk size"
            )
        fuse = str(body.get("fuse") or "none").strip().lower()
        if fuse not in FUSIONS:
            raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, got {body.get('fuse')!r}")
        # Only the chosen method's box is read: the form sends both, and the other one's value means nothing.
        k = _number(body, "fuse_k", "RRF k", DEFAULT_RRF_K) if fuse == "rrf" else DEFAULT_RRF_K
        if k <= 0:
            raise InputError(f"RRF k must be greater than 0, got {k:g}")
        weight = _number(body, "fuse_weight", "weight", DEFAULT_WEIGHT) if fuse == "weighted" else DEFAULT_WEIGHT
        if not 0 <= weight <= 1:
            raise InputError(f"weight must be between 0 and 1 (the model's share of the fused score), got {weight:g}")
        return cls(words, overlap or 0, max_chunks, fuse, k, weight)

    def params(self) -> dict[str, Any]:
        """The Function's params for these controls; ``keep_first_stage`` always (the page shows both scores)."""
        out: dict[str, Any] = {"keep_first_stage": True}
        if self.chunk_words is not None:
            chunk: dict[str, Any] = {"words": self.chunk_words, "overlap": self.chunk_overlap, "return": True}
            if self.max_chunks is not None:
                chunk["max_chunks"] = self.max_chunks
            out["chunk"] = chunk
        if self.fuse == "rrf":
            out["fuse"] = {"method": "rrf", "k": self.fuse_k}
        elif self.fuse == "weighted":
            out["fuse"] = {"method": "weighted", "weight": self.fuse_weight}
        return out

    def describe(self) -> dict[str, Any]:
        """What the page says about these controls: the reranked score's name and label, and the chunking."""
        if self.fuse == "rrf":
            name, label = "fused", f"fused score: RRF (k = {self.fuse_k:g}) of model and first-stage ranks"
        elif self.fuse == "weighted":
            share = f"{self.fuse_weight:g} model + {1 - self.fuse_weight:.3g} first stage"
            name, label = "fused", f"fused score: weighted ({share}, each min-max normalised)"
        else:
            name, label = "model", "model score"
        chunking = None
        if self.chunk_words is not None:
            most = f", at most {self.max_chunks} per document" if self.max_chunks is not None else ""
            chunking = f"chunks of {self.chunk_words} words, overlap {self.chunk_overlap}{most}"
        return {"score_name": name, "score_label": label, "chunking": chunking}


def kept(entity: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, int] | None]:
    """A reranked hit's first-stage score and rank, and its winning chunk's offsets, from the fields the library
    added to its entity (None for a field it did not add: no chunk wins when the service failed)."""
    first = None
    score, rank = entity.get(FIRST_STAGE_SCORE), entity.get(FIRST_STAGE_RANK)
    if isinstance(score, (int, float)) and isinstance(rank, int):
        first = {"score": float(score), "rank": rank}
    chunk = entity.get(RERANK_CHUNK)
    won = None
    if isinstance(chunk, Mapping) and all(isinstance(chunk.get(k), int) for k in ("index", "start", "end")):
        won = {k: int(chunk[k]) for k in ("index", "start", "end")}
    return first, won
