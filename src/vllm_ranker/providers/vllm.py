"""vLLM's rerank API (``/rerank``, ``/v1/rerank``, ``/v2/rerank``; Jina/Cohere-like shape), and its tokenizer
(``POST /tokenize``, vLLM's ``TokenizeCompletionRequest``), which counts the model's tokens for ``chunk.tokens``.

URL: ``endpoint`` is required; by the rule of base.py a path ending in ``rerank`` is used as it is
(``http://h:8000/v1/rerank``), any other gets ``/rerank`` appended (``http://h:8000/v1`` -> ``.../v1/rerank``).
``/tokenize`` is served at the root, beside the rerank routes: the rerank URL with ``[/v1|/v2]/rerank`` replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


def tokenize_url(rerank_url: str) -> str:
    """Where the server behind ``rerank_url`` answers ``/tokenize`` (a gateway's path prefix kept)."""
    parts = urlsplit(rerank_url)
    path = [s for s in parts.path.split("/") if s]
    if path and path[-1].lower() == "rerank":
        path.pop()
    if path and path[-1].lower() in ("v1", "v2"):
        path.pop()
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join([*path, "tokenize"]), parts.query, ""))


def tokenize_body(target: Target, text: str) -> Json:
    # No special tokens: a chunk's size counts the text's own tokens (the rerank adds [CLS]/[SEP] around a pair).
    body: dict[str, Any] = {"prompt": text, "add_special_tokens": False, "return_token_strs": True}
    if target.model:
        body["model"] = target.model
    return body


def parse_tokens(answer: Json) -> list[str]:
    """The token strings of a ``/tokenize`` answer ``{"count", "max_model_len", "tokens", "token_strs"}``."""
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"expected a JSON object with `token_strs`, got a {type(answer).__name__}")
    strs = answer.get("token_strs")
    if not isinstance(strs, list) or not all(isinstance(s, str) for s in strs):
        raise MalformedAnswer("`token_strs` is missing or not a list of strings (is the server vLLM?)")
    tokens = answer.get("tokens")
    if not isinstance(tokens, list) or len(tokens) != len(strs):
        raise MalformedAnswer(f"`tokens` is not a list of {len(strs)} ids, as many as `token_strs`")
    return strs


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
