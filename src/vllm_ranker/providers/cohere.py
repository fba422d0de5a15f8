"""Cohere Rerank API v2: ``POST https://api.cohere.com/v2/rerank``.

Request ``{"model", "query", "documents", "max_tokens_per_doc"?}`` (no ``top_n``: Cohere then returns every
document); answer ``{"id", "results": [{"index", "relevance_score"}], "meta"}`` sorted by score, mapped back by
``index``. Milvus validates ``max_tokens_per_doc`` but never sends it; we send it.

URL: the cloud default unless ``endpoint`` is given (a regional host, Azure/OCI deployment, or gateway):
an endpoint whose path already ends in ``rerank`` is used as it is; one ending in ``/v2`` gets ``/rerank``;
any other gets ``/v2/rerank`` appended (``https://gw/cohere`` -> ``https://gw/cohere/v2/rerank``).

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else ``MILVUS_COHERE_API_KEY``,
``COHERE_API_KEY``, ``CO_API_KEY`` (the Cohere SDK's name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Json, MalformedAnswer, Provider, Target, api_url, int_option, scores_by_index

DEFAULT_URL = "https://api.cohere.com/v2/rerank"
API_PATH = "/v2/rerank"


def build_url(endpoint: str, _model: str | None) -> str:
    return api_url(endpoint, API_PATH)


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    body: dict[str, Any] = {"model": target.model, "query": query, "documents": list(documents)}
    body.update(target.options)
    return body


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    if not isinstance(answer, dict) or "results" not in answer:
        raise MalformedAnswer("expected a JSON object with `results`")
    return scores_by_index(answer["results"], n_docs, score_key="relevance_score", container="results")


PROVIDER = Provider(
    name="cohere",
    default_batch_size=128,
    default_endpoint=DEFAULT_URL,
    model_required=True,
    key_required=True,
    key_env=("MILVUS_COHERE_API_KEY", "COHERE_API_KEY", "CO_API_KEY"),
    options=(
        int_option(
            "max_tokens_per_doc",
            minimum=1,
            error="[max_tokens_per_doc param's value: {value}] is not a valid number",
            hint="give a positive whole number of tokens; longer documents are truncated, e.g. 4096",
        ),
    ),
    build_url=build_url,
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="rerank-v3.5",
)
