"""What the model sees and what a hit carries beyond Milvus: the ``chunk``, ``document_template``,
``keep_first_stage`` and ``fuse`` params, parsed (``parse_shaping``) and applied around the flow's rerank. Pure.

Absent, each keeps Milvus's behaviour (one VARCHAR field, scored whole, ``distance`` the model's score).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vllm_ranker.core.chunking import Chunk, Chunked, ChunkSpec, Unit
from vllm_ranker.core.document_text import Template, parse_template
from vllm_ranker.core.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHT, FUSE_METHODS, FuseSpec, first_stage_scores, fuse
from vllm_ranker.core.ordering import Candidate
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.errors import RerankParamError
from vllm_ranker.stats import RerankStats
from vllm_ranker.values import coercion as values

FIRST_STAGE_SCORE = "$first_stage_score"
FIRST_STAGE_RANK = "$first_stage_rank"
RERANK_CHUNK = "$rerank_chunk"

_CHUNK_HINT = (
    'give e.g. chunk: {"words": 200, "overlap": 40, "max_chunks": 8, "return": true} or {"tokens": 256, "overlap": 32}'
)
_FUSE_HINT = 'give e.g. fuse: {"method": "rrf", "k": 60} or {"method": "weighted", "weight": 0.7}'


@dataclass(frozen=True, slots=True)
class Shaping:
    chunk: ChunkSpec | None = None
    template: Template | None = None
    keep_first_stage: bool = False
    fuse: FuseSpec | None = None


NO_SHAPING = Shaping()


def parse_shaping(params: Mapping[str, Any], collection: CollectionInfo) -> Shaping:
    """The four params from the Function's (lower-cased) params; RerankParamError naming what to change."""
    keep = False
    if "keep_first_stage" in params:
        try:
            keep = values.as_bool(params["keep_first_stage"])
        except ValueError:
            raise RerankParamError(
                f"keep_first_stage: {params['keep_first_stage']} is not a valid bool: give true to add "
                f"{FIRST_STAGE_SCORE} and {FIRST_STAGE_RANK} to each hit's entity, false (the default) not to"
            ) from None
    return Shaping(
        chunk=_chunk(params["chunk"]) if "chunk" in params else None,
        template=parse_template(params["document_template"], collection) if "document_template" in params else None,
        keep_first_stage=keep,
        fuse=_fuse(params["fuse"]) if "fuse" in params else None,
    )


def _mapping(key: str, raw: Any, allowed: Sequence[str], hint: str) -> dict[str, Any]:
    value = raw
    if isinstance(raw, str):  # pymilvus sends a dict as its JSON text
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, Mapping):
        raise RerankParamError(f"{key}: {raw} is not a JSON object: {hint}")
    out = {str(k).lower(): v for k, v in value.items()}
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise RerankParamError(
            f"{key}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: use only "
            f"{', '.join(allowed)}; {hint}"
        )
    return out


def _int(key: str, raw: Any, minimum: int, hint: str) -> int:
    try:
        number = values.as_int(raw)
    except ValueError:
        raise RerankParamError(f"{key}: {raw} is not a valid integer: {hint}") from None
    if number < minimum:
        raise RerankParamError(f"{key}: {raw} must be >= {minimum}: {hint}")
    return number


def _chunk(raw: Any) -> ChunkSpec:
    given = _mapping("chunk", raw, ("words", "overlap", "max_chunks", "return", "tokens"), _CHUNK_HINT)
    if "words" in given and "tokens" in given:
        raise RerankParamError(
            "chunk: both words and tokens are given: give one, the size of a chunk in words, or in the model's "
            f"tokens (counted by the service's tokenizer, provider vllm only); {_CHUNK_HINT}"
        )
    if "words" not in given and "tokens" not in given:
        raise RerankParamError(
            "chunk: words is missing (the words per chunk; or give tokens, the model's tokens per chunk, provider "
            f"vllm only): {_CHUNK_HINT}"
        )
    unit: Unit = "words" if "words" in given else "tokens"
    size = _int(f"chunk.{unit}", given[unit], 1, _CHUNK_HINT)
    overlap = _int("chunk.overlap", given.get("overlap", 0), 0, _CHUNK_HINT)
    if overlap >= size:
        raise RerankParamError(
            f"chunk.overlap: {overlap} must be smaller than chunk.{unit} ({size}): neighbouring chunks share "
            f"overlap {unit}, so lower overlap or raise {unit}"
        )
    max_chunks = _int("chunk.max_chunks", given["max_chunks"], 1, _CHUNK_HINT) if "max_chunks" in given else None
    try:
        back = values.as_bool(given.get("return", False))
    except ValueError:
        raise RerankParamError(f"chunk.return: {given['return']} is not a valid bool: {_CHUNK_HINT}") from None
    return ChunkSpec(size, overlap, max_chunks, back, unit)


def _fuse(raw: Any) -> FuseSpec:
    given = _mapping("fuse", raw, ("method", "k", "weight"), _FUSE_HINT)
    method = str(given.get("method", "")).strip().lower()
    if method not in FUSE_METHODS:
        raise RerankParamError(
            f"fuse.method: {given.get('method')} is not supported: use rrf or weighted; {_FUSE_HINT}"
        )
    wrong = "weight" if method == "rrf" else "k"
    if wrong in given:
        raise RerankParamError(f"fuse.{wrong} does not apply to method {method}: {_FUSE_HINT}")
    if method == "rrf":
        k = _number("fuse.k", given.get("k", DEFAULT_RRF_K))
        if k <= 0:
            raise RerankParamError(f"fuse.k: {given['k']} must be greater than 0: {_FUSE_HINT}")
        return FuseSpec(method, k=k)
    weight = _number("fuse.weight", given.get("weight", DEFAULT_WEIGHT))
    if not 0 <= weight <= 1:
        raise RerankParamError(
            f"fuse.weight: {given['weight']} must be between 0 and 1 (the model's share; the first stage has "
            f"1 - weight): {_FUSE_HINT}"
        )
    return FuseSpec(method, weight=weight)


def _number(key: str, raw: Any) -> float:
    try:
        return values.as_float(raw)
    except ValueError:
        raise RerankParamError(f"{key}: {raw} is not a valid number: {_FUSE_HINT}") from None


# --- applied by the flow ---


def fetch_fields(output_fields: Sequence[str] | None, text_field: str, shaping: Shaping) -> list[str]:
    """The first stage's output fields: the user's, the text field and the template's fields."""
    fields = list(output_fields or [])
    if "*" not in fields:
        needed = shaping.template.fields if shaping.template is not None else (text_field,)
        fields.extend(f for f in dict.fromkeys((text_field, *needed)) if f not in fields)
    return fields


def candidates_of(
    hits: Any, pk_name: str, text_field: str, shaping: Shaping, output_fields: Sequence[str] | None
) -> list[Candidate]:
    """One hit list as candidates: the model's text, the entity the user asked for, the first-stage score."""
    asked = set(output_fields or ())
    fetched_only = set() if "*" in asked else {text_field, *(shaping.template.fields if shaping.template else ())}
    out: list[Candidate] = []
    for hit in hits:
        entity = dict(hit.get("entity") or {})
        if shaping.template is not None:
            text: Any = shaping.template.render(entity)
        else:
            text = entity.get(text_field)
        entity = {k: v for k, v in entity.items() if k in asked or k not in fetched_only} if asked else {}
        distance = hit.get("distance")
        first = float(distance) if isinstance(distance, (int, float)) else 0.0
        out.append(Candidate(hit[pk_name], "" if text is None else str(text), entity, first))
    if shaping.fuse is not None and shaping.fuse.method == "weighted":
        for candidate, norm in zip(out, first_stage_scores([c.distance for c in out]), strict=True):
            candidate.first_stage = norm
    return out


def shape_scores(
    shaping: Shaping,
    candidates: Sequence[Sequence[Candidate]],
    scores: list[list[float]] | None,
    chunked: Sequence[Chunked] | None,
    stats: RerankStats,
) -> list[list[float]] | None:
    """The scores the hits are ordered by: each document's best chunk, fused with the first stage when asked;
    the opt-in entity fields added. None (the service failed, passthrough) stays None."""
    if chunked is not None and shaping.chunk is not None:
        stats.chunks = sum(len(c.pieces) for c in chunked)
        stats.chunk_unit = shaping.chunk.unit
        stats.chunk_fallbacks = sum(c.fallbacks for c in chunked)
        stats.candidates = sum(len(c) for c in candidates)
    for q, cands in enumerate(candidates):
        if shaping.keep_first_stage:
            for rank, candidate in enumerate(cands, start=1):
                candidate.entity[FIRST_STAGE_SCORE] = candidate.distance
                candidate.entity[FIRST_STAGE_RANK] = rank
        if scores is None:
            continue
        if chunked is not None and shaping.chunk is not None:
            scores[q], winners = chunked[q].best(scores[q])
            if shaping.chunk.return_chunk:
                for candidate, won in zip(cands, winners, strict=True):
                    candidate.entity[RERANK_CHUNK] = _chunk_field(won)
        if shaping.fuse is not None:
            scores[q] = fuse(shaping.fuse, scores[q], [c.first_stage for c in cands])
    return scores


def _chunk_field(chunk: Chunk) -> dict[str, int]:
    return {"index": chunk.index, "start": chunk.start, "end": chunk.end}
