"""SiliconFlow rerank: ``POST https://api.siliconflow.cn/v1/rerank`` (Cohere-like).

Request ``{"model", "query", "documents", "max_chunks_per_doc"?, "overlap_tokens"?}`` (no ``top_n``:
SiliconFlow then returns every document; no ``return_documents``); answer ``{"id", "results": [{"index",
"relevance_score"}], "meta"}`` sorted by score, mapped back by ``index``. Milvus validates both options but
never sends them; we send them.

URL: the cloud default unless ``endpoint`` is given (``https://api.siliconflow.com`` for the international
service, or a gateway), by the rule of base.py: an endpoint whose path ends in ``rerank`` is used as it is;
one ending in ``/v1`` gets ``/rerank``; any other gets ``/v1/rerank`` appended.

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else
``MILVUS_SILICONFLOW_API_KEY``, ``SILICONFLOW_API_KEY``.
"""

from __future__ import annotations

from .base import Provider, int_option
from .cohere_shape import CohereShape

DEFAULT_URL = "https://api.siliconflow.cn/v1/rerank"
ROUTE = "/v1/rerank"
SHAPE = CohereShape(container="results")


PROVIDER = Provider(
    name="siliconflow",
    default_batch_size=128,
    default_endpoint=DEFAULT_URL,
    model_required=True,
    key_required=True,
    key_env=("MILVUS_SILICONFLOW_API_KEY", "SILICONFLOW_API_KEY"),
    options=(
        int_option(
            "max_chunks_per_doc",
            minimum=1,
            error="[max_chunks_per_doc param's value: {value}] is not a valid number",
            hint="give a positive whole number of chunks a long document is split into, e.g. 1024",
        ),
        int_option(
            "overlap_tokens",
            minimum=0,
            error="[overlap_tokens param's value: {value}] is not a valid number",
            hint="give a whole number of tokens shared by adjacent chunks (SiliconFlow allows up to 80), e.g. 80",
        ),
    ),
    route=ROUTE,
    build_body=SHAPE.build_body,
    parse_scores=SHAPE.parse_scores,
    model_hint="BAAI/bge-reranker-v2-m3",
    label="SiliconFlow",
)
