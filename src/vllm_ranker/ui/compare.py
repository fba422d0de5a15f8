"""One query, two rankings: the first stage alone, and the same first stage reranked by the model.

Both go through the library's public API: the first stage is a plain ``search``/``hybrid_search`` (RRF), the
reranked one the same call with a model ranker (``rerank_window`` = the window), whose ``RerankStats`` tell where the
time went. Each list is asked for in full (the whole window), so a hit that leaves the shown top still has a rank.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pymilvus import RRFRanker

from vllm_ranker import AnnSearchRequest, Function, FunctionType, RerankServiceError, RerankStats

from .catalog import CollectionView
from .errors import InputError
from .highlight import query_terms, snippet, with_chunk
from .shaping import Shaping, kept

SELF_HOSTED = ("vllm", "tei")
# sglang is self-hosted too, but the default endpoint is the local vLLM, which does not speak its answer shape.
PROVIDERS = ("vllm", "tei", "cohere", "voyageai", "siliconflow", "ali", "huggingface", "sglang")
MAX_WINDOW = 1000  # the page draws every hit of both lists; more would only make it slow
MAX_SHOWN = 100


def without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: the page shows endpoints and URIs but never a secret."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _int(body: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = body.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InputError(f"{key} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class CompareRequest:
    collection: str
    text_field: str
    query: str
    stage: str
    window: int
    shown: int
    provider: str
    endpoint: str
    model: str | None
    max_batch: int
    cache: bool
    shaping: Shaping

    @classmethod
    def parse(cls, body: Any, default_endpoint: str) -> CompareRequest:
        if not isinstance(body, dict):
            raise InputError("the request must be a JSON object")
        missing = [k for k in ("collection", "text_field", "query", "stage") if not str(body.get(k) or "").strip()]
        if missing:
            raise InputError(f"missing {', '.join(missing)}: choose a collection, its text field, a stage and a query")
        window = _int(body, "window", 50, 1, MAX_WINDOW)
        shown = _int(body, "shown", 10, 1, MAX_SHOWN)
        if shown > window:
            raise InputError(f"shown ({shown}) must be at most the window ({window}): only the window is reranked")
        provider = str(body.get("provider") or "vllm")
        endpoint = str(body.get("endpoint") or "").strip()
        # The form shows the default endpoint without its user-info; sent back unchanged it means the real one.
        # Empty means the default for the self-hosted providers, and the provider's cloud URL for the others.
        if endpoint == without_userinfo(default_endpoint) or (not endpoint and provider in SELF_HOSTED):
            endpoint = default_endpoint
        return cls(
            collection=str(body["collection"]),
            text_field=str(body["text_field"]),
            query=str(body["query"]),
            stage=str(body["stage"]),
            window=window,
            shown=shown,
            provider=provider,
            endpoint=endpoint,
            model=str(body.get("model") or "").strip() or None,
            max_batch=_int(body, "max_batch", 32, 1, 1024),
            cache=bool(body.get("cache")),
            shaping=Shaping.parse(body),
        )


class QueryEmbedder:
    """Embeds query texts through an OpenAI-compatible ``/v1/embeddings`` (the model the server lists first), for
    dense fields that Milvus does not embed itself (collections made by ``vllm-ranker ingest``)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/").removesuffix("/v1")
        self._http = httpx.Client(timeout=timeout)
        self._model: str | None = None

    def close(self) -> None:
        self._http.close()

    def embed(self, text: str) -> list[float]:
        shown = without_userinfo(self.endpoint)
        try:
            if self._model is None:
                listed = self._http.get(f"{self.endpoint}/v1/models")
                listed.raise_for_status()
                self._model = str(listed.json()["data"][0]["id"])
            answer = self._http.post(f"{self.endpoint}/v1/embeddings", json={"model": self._model, "input": [text]})
            answer.raise_for_status()
            return [float(v) for v in answer.json()["data"][0]["embedding"]]
        except httpx.HTTPStatusError as failed:
            raise RerankServiceError(
                f"embedding the query failed: {shown} answered {failed.response.status_code}", kind="service"
            ) from None
        except httpx.HTTPError as failed:
            raise RerankServiceError(
                f"embedding the query failed: cannot reach {shown} ({type(failed).__name__}); "
                "start vLLM there or give vllm-ranker ui --endpoint",
                kind="service",
            ) from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise RerankServiceError(
                f"embedding the query failed: {shown} did not answer an OpenAI embeddings list", kind="service"
            ) from None


def ranker(req: CompareRequest, *, window: int | None) -> Function:
    params: dict[str, Any] = {
        "reranker": "model",
        "provider": req.provider,
        "queries": [req.query],
        "maxBatch": req.max_batch,
    }
    if req.endpoint:
        params["endpoint"] = req.endpoint
    if req.model:
        params["model_name"] = req.model
    if req.cache:
        params["cache"] = True
    if window is not None:
        params["rerank_window"] = window
    params.update(req.shaping.params())
    return Function(
        name="ui_ranker", input_field_names=[req.text_field], function_type=FunctionType.RERANK, params=params
    )


def _stage_label(view: CollectionView, stage: str) -> str:
    dense = f"dense on {view.dense} ({'Milvus embeds the query' if view.dense_from_text else 'query embedded here'})"
    return {
        "dense": dense,
        "bm25": f"BM25 on {view.sparse}",
        "hybrid": f"hybrid RRF of {dense} and BM25 on {view.sparse}",
    }[stage]


def compare(client: Any, view: CollectionView, req: CompareRequest, embedder: QueryEmbedder) -> dict[str, Any]:
    """Both rankings of ``req.query`` with ranks, scores, snippets, each hit's move and the rerank's stats."""
    if req.stage not in view.stages:
        allowed = ", ".join(view.stages) or "none (no BM25 function and no float vector field)"
        raise InputError(f"collection {view.name!r} has no {req.stage!r} first stage; it allows: {allowed}")
    if req.text_field not in view.text_fields:
        raise InputError(f"{req.text_field!r} is not a text (VARCHAR) field of {view.name!r}: {view.text_fields}")
    started = time.perf_counter()
    fields = list(dict.fromkeys([req.text_field] + ([view.title_field] if view.title_field else [])))
    embed_s = 0.0
    dense_data: list[Any] = [req.query]
    if req.stage in ("dense", "hybrid") and not view.dense_from_text:
        t0 = time.perf_counter()
        dense_data = [embedder.embed(req.query)]
        embed_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    if req.stage == "hybrid":

        def reqs() -> list[AnnSearchRequest]:
            return [
                AnnSearchRequest(data=dense_data, anns_field=view.dense, param={}, limit=req.window),
                AnnSearchRequest(data=[req.query], anns_field=view.sparse, param={}, limit=req.window),
            ]

        first = client.hybrid_search(req.collection, reqs(), RRFRanker(), limit=req.window, output_fields=fields)
        first_s = time.perf_counter() - t0
        # The model reranks the union of both sub-searches (Milvus's semantics), up to 2 x window hits.
        reranked = client.hybrid_search(
            req.collection, reqs(), ranker=ranker(req, window=None), limit=2 * req.window, output_fields=fields
        )
    else:
        anns = view.dense if req.stage == "dense" else view.sparse
        data = dense_data if req.stage == "dense" else [req.query]
        first = client.search(req.collection, data=data, anns_field=anns, limit=req.window, output_fields=fields)
        first_s = time.perf_counter() - t0
        reranked = client.search(
            req.collection,
            data=data,
            anns_field=anns,
            limit=req.window,
            output_fields=fields,
            ranker=ranker(req, window=req.window),
        )
    rerank_call_s = time.perf_counter() - t0 - first_s
    stats: RerankStats = reranked.extra["rerank"]
    terms = query_terms(req.query)
    left = _hits(first[0], view, req.text_field, terms)
    right = _hits(reranked[0], view, req.text_field, terms, reranked=True)
    _moves(left, right, req.shown)
    return {
        "query": req.query,
        "collection": view.name,
        "stage": req.stage,
        "stage_label": _stage_label(view, req.stage),
        # For hybrid, the reranked call's first stage is the union of both sub-searches (first occurrence wins):
        # the rank and score each reranked hit keeps are its place there, not in the RRF list on the left.
        "kept_from": "the union of both sub-searches" if req.stage == "hybrid" else "the first stage",
        **req.shaping.describe(),
        "window": req.window,
        "shown": req.shown,
        "candidates": {"first": len(left), "reranked": len(right)},
        "first": left[: req.shown],
        "reranked": right[: req.shown],
        "dropped": [h for h in left[: req.shown] if h["move"]["kind"] == "dropped"],
        "stats": stats.as_dict(),
        "timing_ms": {
            "embed_query": embed_s * 1000,
            "first_stage_call": first_s * 1000,
            "first_stage_search": stats.search_seconds * 1000,
            "rerank_service": stats.service_seconds * 1000,
            "rerank_overhead": stats.overhead_seconds * 1000,
            "rerank_step": stats.rerank_seconds * 1000,
            "rerank_call": rerank_call_s * 1000,
            "total": (time.perf_counter() - started) * 1000,
        },
    }


def _hits(
    hits: Sequence[Any], view: CollectionView, text_field: str, terms: set[str], *, reranked: bool = False
) -> list[dict[str, Any]]:
    scores = [float(h.get("distance") or 0.0) for h in hits]
    low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
    out: list[dict[str, Any]] = []
    for rank, (hit, score) in enumerate(zip(hits, scores, strict=True), start=1):
        entity = hit.get("entity") or {}
        pk = hit.get(view.pk, hit.get("id"))
        title = entity.get(view.title_field) if view.title_field else None
        text = str(entity.get(text_field) or "")
        row: dict[str, Any] = {
            "key": str(pk),
            "rank": rank,
            "score": score,
            # Relative to the list's range: first-stage and model scores are on unrelated scales.
            "bar": 1.0 if high == low else 0.05 + 0.95 * (score - low) / (high - low),
            "title": None if title is None else str(title),
        }
        first, won = kept(entity) if reranked else (None, None)
        if won is None:
            row["snippet"] = snippet(text, terms)
        else:
            # The offsets index the text the model read: the page sends no document_template, so that is the text
            # field itself, as fetched here.
            row["snippet"], span = with_chunk(text, won["start"], won["end"], terms)
            row["chunk"] = {**won, "span": list(span)}
        if reranked:
            row["first_stage"] = first
        out.append(row)
    return out


def _moves(first: list[dict[str, Any]], reranked: list[dict[str, Any]], shown: int) -> None:
    """Annotate each hit with where it went: reranked hits with up/down/same/new (from their first-stage rank),
    first-stage hits with their reranked rank, or dropped when they left the shown top."""
    first_rank = {h["key"]: h["rank"] for h in first}
    new_rank = {h["key"]: h["rank"] for h in reranked}
    for hit in reranked:
        was = first_rank.get(hit["key"])
        if was is None or was > shown:
            kind = "new"
        else:
            kind = "up" if was > hit["rank"] else "down" if was < hit["rank"] else "same"
        hit["move"] = {"kind": kind, "from": was, "by": None if was is None else was - hit["rank"]}
    for hit in first:
        now = new_rank.get(hit["key"])
        kind = "dropped" if now is None or now > shown else "kept"
        hit["move"] = {"kind": kind, "to": now, "by": None if now is None else hit["rank"] - now}
