"""The params we add beyond Milvus (cache, rerank_window, score_normalization, min_score, on_failure, endpoint
ejection; chunk, document_template, keep_first_stage and fuse via core/shaping.py), and the typed readers of
numeric params that every key-naming message goes through. Pure.

Absent, each added param keeps Milvus's behaviour; Milvus ignores unknown keys, so a Function carrying them
still works on a Milvus server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vllm_ranker.core.ordering import NORMALIZATIONS
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.core.shaping import parse_shaping
from vllm_ranker.errors import RerankParamError
from vllm_ranker.values import coercion as values

T = TypeVar("T")

MAX_TOPK = 16384  # Milvus's own limit on limit + offset of one search
DEFAULT_EJECT_AFTER = 3  # consecutive failures of one endpoint (of several) before it is ejected
DEFAULT_EJECT_SECONDS = 30.0
ON_FAILURE = ("error", "passthrough")


def converted(params: Mapping[str, Any], key: str, convert: Callable[[Any], T], what: str, hint: str) -> T:
    try:
        return convert(params[key])
    except ValueError as exc:
        message = f"{key}: {params[key]} is not a valid {what}"
        raise RerankParamError(f"{message}{values.because(message, exc)}: {hint}") from None


def positive_float(params: Mapping[str, Any], key: str, default: float, hint: str) -> float:
    if key not in params:
        return default
    number = converted(params, key, values.as_float, "number", hint)
    if number <= 0:
        raise RerankParamError(f"{key}: {params[key]} must be greater than 0: {hint}")
    return number


def int_at_least(params: Mapping[str, Any], key: str, default: int, minimum: int, hint: str) -> int:
    if key not in params:
        return default
    number = converted(params, key, values.as_int, "integer", hint)
    if number < minimum:
        raise RerankParamError(f"{key}: {params[key]} must be >= {minimum}: {hint}")
    return number


def request_timeout(params: Mapping[str, Any], call_timeout: float) -> float | None:
    """Milvus's ``timeout_ms`` (master, ``models.ResolveTimeoutMs``): the milliseconds one rerank request (one
    batch, its retries included) may take, as seconds; None when absent. Capped at the call's ``timeout``: it
    never extends the call's deadline. Milvus quietly falls back to its 30000 default for a value that is not a
    positive integer; we refuse it (a typo must not leave the default in force unseen)."""
    if "timeout_ms" not in params:
        return None
    raw = params["timeout_ms"]
    hint = "give the milliseconds one rerank request (one batch, its retries included) may take, e.g. 10000"
    try:
        milliseconds = values.as_int(raw)
    except ValueError:
        raise RerankParamError(f"[timeout_ms param's value: {raw}] is not a valid number: {hint}") from None
    if milliseconds <= 0:
        raise RerankParamError(f"[timeout_ms param's value: {raw}] must be greater than 0: {hint}")
    return min(milliseconds / 1000, call_timeout)


def beyond_milvus(params: Mapping[str, Any], collection: CollectionInfo) -> dict[str, Any]:
    """The opt-in params Milvus does not have; absent, each keeps Milvus's behaviour. What the model sees and a
    hit carries (chunk, document_template, keep_first_stage, fuse) is parsed in core/shaping.py."""
    out: dict[str, Any] = {"shaping": parse_shaping(params, collection)}
    if "cache" in params:
        out["cache"] = converted(
            params,
            "cache",
            values.as_bool,
            "bool",
            "give true to reuse scores of (query, document) pairs already scored by this client, false (the "
            "default) to always call",
        )
    if "cache_ttl" in params and not _is_zero(params["cache_ttl"]):
        out["cache_ttl"] = positive_float(
            params, "cache_ttl", 0.0, "seconds a cached score stays valid, e.g. 600 (0 or absent: no expiry)"
        )
    if "rerank_window" in params:
        window = int_at_least(
            params,
            "rerank_window",
            0,
            1,
            "the number of first-stage hits to rerank, at least offset + limit, e.g. 100",
        )
        if window > MAX_TOPK:
            raise RerankParamError(
                f"rerank_window: {params['rerank_window']} is larger than {MAX_TOPK}, the most one Milvus search "
                f"returns: give at most {MAX_TOPK}"
            )
        out["rerank_window"] = window
    if "score_normalization" in params:
        method = str(params["score_normalization"]).strip().lower()
        if method not in NORMALIZATIONS:
            raise RerankParamError(
                f"score_normalization: {params['score_normalization']} is not supported: use one of "
                f"{', '.join(NORMALIZATIONS)} (raw, the default, returns the model's own scores)"
            )
        out["score_normalization"] = method
    if "min_score" in params:
        out["min_score"] = converted(
            params,
            "min_score",
            values.as_float,
            "number",
            "give the lowest score to keep, compared after score_normalization, e.g. 0.5",
        )
    if "on_failure" in params:
        mode = str(params["on_failure"]).strip().lower()
        if mode not in ON_FAILURE:
            raise RerankParamError(
                f"on_failure: {params['on_failure']} is not supported: use 'error' (the default: the search "
                "fails like on Milvus) or 'passthrough' (return the first-stage order, flagged in the stats)"
            )
        out["on_failure"] = mode
    out["eject_after"] = int_at_least(
        params,
        "eject_after",
        DEFAULT_EJECT_AFTER,
        1,
        "consecutive failures before one of several endpoints is ejected, e.g. 3",
    )
    out["eject_seconds"] = positive_float(
        params, "eject_seconds", DEFAULT_EJECT_SECONDS, "seconds an ejected endpoint is left out, e.g. 30"
    )
    return out


def _is_zero(raw: Any) -> bool:
    try:
        return values.as_float(raw) == 0
    except ValueError:
        return False
