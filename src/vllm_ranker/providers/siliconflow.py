"""SiliconFlow rerank: ``POST https://api.siliconflow.cn/v1/rerank`` (Cohere-like).

Request ``{"model", "query", "documents", "max_chunks_per_doc"?, "overlap_tokens"?}`` (no ``top_n``:
SiliconFlow then returns every document; no ``return_documents``); answer ``{"id", "results": [{"index",
"relevance_score"}], "meta"}`` sorted by score, mapped back by ``index``. Milvus validates both options but
never sends them; we send them.

URL: the cloud default unless ``endpoint`` is given (``https://api.siliconflow.com`` for the international
service, or a gateway): an endpoint whose path already ends in ``rerank`` is used as it is; one ending in
``/v1`` gets ``/rerank``; any other gets ``/v1/rerank`` appended.

Auth: ``Authorization: Bearer <key>``, required: the ``credential`` param, else
``MILVUS_SILICONFLOW_API_KEY``, ``SILICONFLOW_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Json, MalformedAnswer, Provider, Target, api_url, int_option, scores_by_index

DEFAULT_URL = "https://api.siliconflow.cn/v1/rerank"
API_PATH = "/v1/rerank"


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
    build_url=build_url,
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="BAAI/bge-reranker-v2-m3",
)
