"""Hugging Face Inference Providers, sentence-similarity pipeline:
``POST https://router.huggingface.co/hf-inference/models/<model_name>/pipeline/sentence-similarity``.

Request ``{"inputs": {"source_sentence": query, "sentences": [...]}}``; answer a bare JSON array of floats, one
per sentence, in input order (the only provider that answers by position: the count must match).

``hf_provider`` selects the inference provider in the URL; like Milvus, only ``hf-inference`` is accepted
(the default). It is part of the URL, never of the body.

URL: the router unless ``endpoint`` is given, by the rule of base.py: an endpoint whose path ends in
``sentence-similarity`` or ``rerank`` is the full URL, used as it is; otherwise the endpoint is a base URL and
``/hf-inference/models/<model_name>/pipeline/sentence-similarity`` is appended to its path (an endpoint ending
in ``/hf-inference`` gets only the rest), as Milvus does with its configured base URL.

Auth: ``Authorization: Bearer <token>``, required: the ``credential`` param, else
``MILVUS_HUGGINGFACE_API_KEY``, ``HF_TOKEN``, ``HUGGINGFACE_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from vllm_ranker.errors import RerankParamError
from vllm_ranker.values import coercion as values

from .base import Json, Option, Provider, Target, scores_in_order

DEFAULT_BASE_URL = "https://router.huggingface.co"
HF_PROVIDER = "hf-inference"
TASK = "sentence-similarity"


def model_path(model: str | None) -> str:
    """The model id as URL path segments; refuses what would change the path (Milvus's check)."""
    if not model:
        raise RerankParamError(
            "huggingface rerank model name is required: set params['model_name'], e.g. 'BAAI/bge-reranker-base'"
        )
    segments = model.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise RerankParamError(
            f"Hugging Face model name contains invalid path segment: {model!r}; give a Hub model id "
            "like 'sentence-transformers/all-MiniLM-L6-v2'"
        )
    return "/".join(quote(s, safe="") for s in segments)


def build_body(_target: Target, query: str, documents: Sequence[str]) -> Json:
    return {"inputs": {"source_sentence": query, "sentences": list(documents)}}


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    return scores_in_order(answer, n_docs, container="answer")


def _hf_provider(raw: object) -> str:
    text = values.as_str(raw).strip()
    if text != HF_PROVIDER:
        raise ValueError()  # Milvus's message (the Option's error) already names the one choice and the value
    return text


PROVIDER = Provider(
    name="huggingface",
    default_batch_size=32,
    default_endpoint=DEFAULT_BASE_URL,
    model_required=True,
    key_required=True,
    key_env=("MILVUS_HUGGINGFACE_API_KEY", "HF_TOKEN", "HUGGINGFACE_API_KEY"),
    options=(
        Option(
            "hf_provider",
            _hf_provider,
            "hf_provider",
            error="Hugging Face hf_provider only supports hf-inference, got [{value}]",
            hint="leave hf_provider out or set it to 'hf-inference'",
            choices=(HF_PROVIDER,),
        ),
    ),
    route=f"/{HF_PROVIDER}/models/{{model}}/pipeline/{TASK}",
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="BAAI/bge-reranker-base",
    label="the Hugging Face router",
    serves=f"/{HF_PROVIDER}/models/<model_name>/pipeline/{TASK}, for models deployed on hf-inference only",
    model_in_route=model_path,
)
