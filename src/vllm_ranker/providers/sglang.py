"""SGLang's rerank API: ``POST /v1/rerank`` of an SGLang server started with a cross-encoder model.

Request ``{"model", "query", "documents"}`` (what Milvus sends; SGLang reads ``query`` and ``documents``);
answer a bare JSON array ``[{"index", "score", "document"?, "meta_info"?}]`` sorted by score, best first,
mapped back by ``index`` (a result without an index or a score is an error, as in Milvus).

URL: ``endpoint`` is required (SGLang is self-hosted); by the rule of base.py a path ending in ``rerank`` is used
as it is, one ending in ``/v1`` gets ``/rerank``, any other gets ``/v1/rerank`` appended. (Milvus replaces any
path with ``/v1/rerank``, which breaks gateways with a path prefix.) ``model_name`` is required, as in Milvus.

Auth: ``Authorization: Bearer <key>`` only when a key is configured (SGLang's ``--api-key``): the ``credential``
param, else ``MILVUS_SGLANG_API_KEY``, else ``SGLANG_API_KEY`` (Milvus reads no environment variable for it).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Json, MalformedAnswer, Provider, Target, scores_by_index


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    return {"model": target.model, "query": query, "documents": list(documents)}


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    if not isinstance(answer, list):
        raise MalformedAnswer(f"expected a JSON array of {{index, score}}, got a {type(answer).__name__}")
    return scores_by_index(answer, n_docs, score_key="score", container="answer")


PROVIDER = Provider(
    name="sglang",
    default_batch_size=32,
    default_endpoint=None,
    model_required=True,
    key_required=False,
    key_env=("MILVUS_SGLANG_API_KEY", "SGLANG_API_KEY"),
    options=(),
    route="/v1/rerank",
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="BAAI/bge-reranker-v2-m3",
    label="SGLang",
)
