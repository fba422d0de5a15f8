"""Cohere Rerank API v2: ``POST https://api.cohere.com/v2/rerank``.

Request ``{"model", "query", "documents", "max_tokens_per_doc"?}`` (no ``top_n``: Cohere then returns every
document); answer ``{"id", "results": [{"index", "relevance_score"}], "meta"}`` sorted by score, mapped back by
``index``. Milvus validates ``max_tokens_per_doc`` but never sends it; we send it.

URL: the cloud default unless ``endpoint`` is given (a regional host, Azure/OCI deployment, or gateway),
by the rule of base.py: an endpoint whose path ends in ``rerank`` is used as it is; one ending in ``/v2`` gets
``/rerank``; any other gets ``/v2/rerank`` appended (``https://gw/cohere`` -> ``https://gw/cohere/v2/rerank``).

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else ``MILVUS_COHERE_API_KEY``,
``COHERE_API_KEY``, ``CO_API_KEY`` (the Cohere SDK's name).
"""

from __future__ import annotations

from .base import Provider, int_option
from .cohere_shape import CohereShape

DEFAULT_URL = "https://api.cohere.com/v2/rerank"
ROUTE = "/v2/rerank"
SHAPE = CohereShape(container="results")


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
    route=ROUTE,
    build_body=SHAPE.build_body,
    parse_scores=SHAPE.parse_scores,
    model_hint="rerank-v3.5",
    label="Cohere",
)
