"""vLLM's rerank API (``/rerank``, ``/v1/rerank``, ``/v2/rerank``; Jina/Cohere-like shape).

URL: ``endpoint`` is required; by the rule of base.py a path ending in ``rerank`` is used as it is
(``http://h:8000/v1/rerank``), any other gets ``/rerank`` appended (``http://h:8000/v1`` -> ``.../v1/rerank``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Json, MalformedAnswer, Provider, Target, int_option, scores_by_index


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    body: dict[str, Any] = {"query": query, "documents": list(documents)}
    if target.model:
        body["model"] = target.model
    body.update(target.options)
    return body


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    if not isinstance(answer, dict) or "results" not in answer:
        raise MalformedAnswer("expected a JSON object with `results`")
    return scores_by_index(answer["results"], n_docs, score_key="relevance_score", container="results")


PROVIDER = Provider(
    name="vllm",
    default_batch_size=32,
    default_endpoint=None,
    model_required=False,
    key_required=False,
    key_env=("MILVUS_VLLM_API_KEY", "VLLM_API_KEY"),
    options=(
        int_option(
            "truncate_prompt_tokens",
            minimum=-1,
            hint="give the number of tokens to keep (vLLM cuts longer inputs to k tokens; -1 = the model's"
            " maximum), e.g. 256",
        ),
    ),
    route="/rerank",
    build_body=build_body,
    parse_scores=parse_scores,
    label="vLLM",
    serves="/rerank, /v1/rerank, /v2/rerank",
)
