"""Voyage AI reranker: ``POST https://api.voyageai.com/v1/rerank``.

Request ``{"model", "query", "documents", "truncation"?}`` (no ``top_k``: Voyage then returns every document;
no ``return_documents``); answer ``{"object": "list", "data": [{"index", "relevance_score"}], "model",
"usage": {"total_tokens"}}`` sorted by score, mapped back by ``index``. Milvus validates ``truncation`` but never
sends it; we send it.

URL: the cloud default unless ``endpoint`` is given (a gateway or a private deployment), by the rule of
base.py: an endpoint whose path ends in ``rerank`` is used as it is; one ending in ``/v1`` gets ``/rerank``;
any other gets ``/v1/rerank`` appended (``https://ai.mongodb.com`` -> ``https://ai.mongodb.com/v1/rerank``).

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else ``MILVUS_VOYAGEAI_API_KEY``,
``VOYAGE_API_KEY``.
"""

from __future__ import annotations

from .base import Provider, bool_option
from .cohere_shape import CohereShape

DEFAULT_URL = "https://api.voyageai.com/v1/rerank"
ROUTE = "/v1/rerank"
SHAPE = CohereShape(container="data")


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
    route=ROUTE,
    build_body=SHAPE.build_body,
    parse_scores=SHAPE.parse_scores,
    model_hint="rerank-2.5",
    label="Voyage AI",
)
