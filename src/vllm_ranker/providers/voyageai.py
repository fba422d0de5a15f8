"""Voyage AI reranker: ``POST https://api.voyageai.com/v1/rerank``.

Request ``{"model", "query", "documents", "truncation"?}`` (no ``top_k``: Voyage then returns every document;
no ``return_documents``); answer ``{"object": "list", "data": [{"index", "relevance_score"}], "model",
"usage": {"total_tokens"}}`` sorted by score, mapped back by ``index``. Milvus validates ``truncation`` but never
sends it; we send it.

URL: the cloud default unless ``endpoint`` is given (a gateway or a private deployment): an endpoint whose
path already ends in ``rerank`` is used as it is; one ending in ``/v1`` gets ``/rerank``; any other gets
``/v1/rerank`` appended (``https://ai.mongodb.com`` -> ``https://ai.mongodb.com/v1/rerank``).

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else ``MILVUS_VOYAGEAI_API_KEY``,
``VOYAGE_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Json, MalformedAnswer, Provider, Target, api_url, bool_option, scores_by_index

DEFAULT_URL = "https://api.voyageai.com/v1/rerank"
API_PATH = "/v1/rerank"


def build_url(endpoint: str, _model: str | None) -> str:
    return api_url(endpoint, API_PATH)


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    body: dict[str, Any] = {"model": target.model, "query": query, "documents": list(documents)}
    body.update(target.options)
    return body


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    if not isinstance(answer, dict) or "data" not in answer:
        raise MalformedAnswer("expected a JSON object with `data`")
    return scores_by_index(answer["data"], n_docs, score_key="relevance_score", container="data")


PROVIDER = Provider(
    name="voyageai",
    default_batch_size=128,
    default_endpoint=DEFAULT_URL,
    model_required=True,
    key_required=True,
    key_env=("MILVUS_VOYAGEAI_API_KEY", "VOYAGE_API_KEY"),
    options=(
        bool_option(
            "truncation",
            error="[truncation param's value: {value}] is invalid, only supports: [true/false]",
            hint="give true (Voyage cuts over-long inputs) or false (Voyage rejects them)",
        ),
    ),
    build_url=build_url,
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="rerank-2.5",
)
