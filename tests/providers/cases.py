"""The provider contract table: one row per provider, written from each service's API reference (not from
the code under test). Every contract test runs the same assertions over these rows."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Body = Callable[[str, list[str]], dict[str, Any]]

# Fresh per run, so a leak cannot hide behind a fixed string.
KEYS = {
    name: f"test-key-{name}-{secrets.token_hex(8)}"
    for name in ("vllm", "tei", "cohere", "voyageai", "siliconflow", "ali", "huggingface", "sglang")
}


@dataclass(frozen=True)
class OptionCase:
    id: str
    params: dict[str, Any]
    sent: dict[str, Any]  # exactly what the body gains


@dataclass(frozen=True)
class BadOption:
    id: str
    params: dict[str, Any]
    milvus: str  # Milvus's own message (users grep for it)
    fix: str  # part of what we add: how to fix it


@dataclass(frozen=True)
class Case:
    provider: str
    model: str | None  # params['model_name'] the tests give (None: not given)
    path: str  # request path when params['endpoint'] is the bare loopback address
    body: Body  # the exact JSON body for (query, documents), before options
    options: tuple[OptionCase, ...]
    bad: tuple[BadOption, ...]
    key_env: tuple[str, ...]  # looked up in this order after params['credential']
    key_required: bool
    model_required: bool
    default_batch: int
    default_url: str | None  # None: endpoint is required
    by_index: bool  # results carry an index (else: a bare list of scores in input order)
    endpoints: tuple[tuple[str, str], ...]  # endpoint -> request URL

    @property
    def key(self) -> str:
        return KEYS[self.provider]

    def __str__(self) -> str:
        return self.provider


NO_OPTIONS = OptionCase("none", {}, {})

CASES: tuple[Case, ...] = (
    Case(
        provider="vllm",
        model="BAAI/bge-reranker-base",
        path="/rerank",
        body=lambda q, d: {"query": q, "documents": d, "model": "BAAI/bge-reranker-base"},
        options=(
            NO_OPTIONS,
            OptionCase("truncate_prompt_tokens", {"truncate_prompt_tokens": 256}, {"truncate_prompt_tokens": 256}),
            OptionCase("as-string", {"truncate_prompt_tokens": "64"}, {"truncate_prompt_tokens": 64}),
        ),
        bad=(
            BadOption(
                "tpt",
                {"truncate_prompt_tokens": "many"},
                "truncate_prompt_tokens: many is not a number",
                "number of tokens to keep",
            ),
        ),
        key_env=("MILVUS_VLLM_API_KEY", "VLLM_API_KEY"),
        key_required=False,
        model_required=False,
        default_batch=32,
        default_url=None,
        by_index=True,
        endpoints=(
            ("http://h:8000", "http://h:8000/rerank"),
            ("http://h:8000/v1/rerank", "http://h:8000/v1/rerank"),
            ("https://gw/vllm", "https://gw/vllm/rerank"),
        ),
    ),
    Case(
        provider="tei",
        model=None,
        path="/rerank",
        body=lambda q, d: {"query": q, "texts": d},
        options=(
            NO_OPTIONS,
            OptionCase("truncate", {"truncate": True}, {"truncate": True}),
            OptionCase("truncate-string", {"truncate": "false"}, {"truncate": False}),
            OptionCase("direction", {"truncation_direction": "Left"}, {"truncation_direction": "Left"}),
            OptionCase(
                "both",
                {"truncate": "true", "truncation_direction": "Right"},
                {"truncate": True, "truncation_direction": "Right"},
            ),
        ),
        bad=(
            BadOption(
                "truncate",
                {"truncate": "maybe"},
                "Rerank params error, truncate: maybe is not bool type",
                "give true or false",
            ),
            BadOption(
                "direction",
                {"truncation_direction": "left"},
                "[truncation_direction param's value: left] is not invalid, only supports [Left/Right]",
                "'Left' or 'Right'",
            ),
        ),
        key_env=("MILVUS_TEI_API_KEY", "TEI_API_KEY"),
        key_required=False,
        model_required=False,
        default_batch=32,
        default_url=None,
        by_index=True,
        endpoints=(
            ("http://tei:8080", "http://tei:8080/rerank"),
            ("http://tei:8080/rerank", "http://tei:8080/rerank"),
            ("https://gw/tei/", "https://gw/tei/rerank"),
        ),
    ),
    Case(
        provider="cohere",
        model="rerank-v3.5",
        path="/v2/rerank",
        body=lambda q, d: {"model": "rerank-v3.5", "query": q, "documents": d},
        options=(
            NO_OPTIONS,
            OptionCase("max_tokens_per_doc", {"max_tokens_per_doc": 512}, {"max_tokens_per_doc": 512}),
            OptionCase("as-string", {"max_tokens_per_doc": "4096"}, {"max_tokens_per_doc": 4096}),
        ),
        bad=(
            BadOption(
                "mtpd",
                {"max_tokens_per_doc": "lots"},
                "[max_tokens_per_doc param's value: lots] is not a valid number",
                "positive whole number",
            ),
            BadOption(
                "mtpd-zero",
                {"max_tokens_per_doc": 0},
                "[max_tokens_per_doc param's value: 0] is not a valid number",
                "must be >= 1",
            ),
        ),
        key_env=("MILVUS_COHERE_API_KEY", "COHERE_API_KEY", "CO_API_KEY"),
        key_required=True,
        model_required=True,
        default_batch=128,
        default_url="https://api.cohere.com/v2/rerank",
        by_index=True,
        endpoints=(
            ("https://api.cohere.com", "https://api.cohere.com/v2/rerank"),
            ("https://api.cohere.com/v2", "https://api.cohere.com/v2/rerank"),
            ("https://gw.example/cohere/v2/rerank", "https://gw.example/cohere/v2/rerank"),
            ("https://gw.example/cohere", "https://gw.example/cohere/v2/rerank"),
        ),
    ),
    Case(
        provider="voyageai",
        model="rerank-2.5",
        path="/v1/rerank",
        body=lambda q, d: {"model": "rerank-2.5", "query": q, "documents": d},
        options=(
            NO_OPTIONS,
            OptionCase("truncation", {"truncation": False}, {"truncation": False}),
            OptionCase("as-string", {"truncation": "true"}, {"truncation": True}),
        ),
        bad=(
            BadOption(
                "truncation",
                {"truncation": "perhaps"},
                "[truncation param's value: perhaps] is invalid, only supports: [true/false]",
                "give true",
            ),
        ),
        key_env=("MILVUS_VOYAGEAI_API_KEY", "VOYAGE_API_KEY"),
        key_required=True,
        model_required=True,
        default_batch=128,
        default_url="https://api.voyageai.com/v1/rerank",
        by_index=True,
        endpoints=(
            ("https://api.voyageai.com", "https://api.voyageai.com/v1/rerank"),
            ("https://ai.mongodb.com/v1", "https://ai.mongodb.com/v1/rerank"),
            ("https://gw.example/voyage/rerank", "https://gw.example/voyage/rerank"),
        ),
    ),
    Case(
        provider="siliconflow",
        model="BAAI/bge-reranker-v2-m3",
        path="/v1/rerank",
        body=lambda q, d: {"model": "BAAI/bge-reranker-v2-m3", "query": q, "documents": d},
        options=(
            NO_OPTIONS,
            OptionCase("max_chunks_per_doc", {"max_chunks_per_doc": 8}, {"max_chunks_per_doc": 8}),
            OptionCase("overlap_tokens", {"overlap_tokens": "16"}, {"overlap_tokens": 16}),
            OptionCase(
                "both", {"max_chunks_per_doc": "4", "overlap_tokens": 0}, {"max_chunks_per_doc": 4, "overlap_tokens": 0}
            ),
        ),
        bad=(
            BadOption(
                "chunks",
                {"max_chunks_per_doc": "x"},
                "[max_chunks_per_doc param's value: x] is not a valid number",
                "positive whole number",
            ),
            BadOption(
                "overlap",
                {"overlap_tokens": "y"},
                "[overlap_tokens param's value: y] is not a valid number",
                "adjacent chunks",
            ),
        ),
        key_env=("MILVUS_SILICONFLOW_API_KEY", "SILICONFLOW_API_KEY"),
        key_required=True,
        model_required=True,
        default_batch=128,
        default_url="https://api.siliconflow.cn/v1/rerank",
        by_index=True,
        endpoints=(
            ("https://api.siliconflow.com", "https://api.siliconflow.com/v1/rerank"),
            ("https://api.siliconflow.com/v1/", "https://api.siliconflow.com/v1/rerank"),
            ("https://api.siliconflow.cn/v1/rerank", "https://api.siliconflow.cn/v1/rerank"),
        ),
    ),
    Case(
        provider="ali",
        model="gte-rerank-v2",
        path="/api/v1/services/rerank/text-rerank/text-rerank",
        body=lambda q, d: {"model": "gte-rerank-v2", "input": {"query": q, "documents": d}},
        options=(NO_OPTIONS,),
        bad=(),
        key_env=("MILVUS_DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY"),
        key_required=True,
        model_required=True,
        default_batch=128,
        default_url="https://dashscope.aliyuncs.com/api/v1/services/rerank/text-rerank/text-rerank",
        by_index=True,
        endpoints=(
            (
                "https://dashscope-intl.aliyuncs.com",
                "https://dashscope-intl.aliyuncs.com/api/v1/services/rerank/text-rerank/text-rerank",
            ),
            (
                "https://dashscope-intl.aliyuncs.com/api/v1",
                "https://dashscope-intl.aliyuncs.com/api/v1/services/rerank/text-rerank/text-rerank",
            ),
            ("https://gw.example/ali/text-rerank", "https://gw.example/ali/text-rerank"),
        ),
    ),
    Case(
        provider="huggingface",
        model="BAAI/bge-reranker-base",
        path="/hf-inference/models/BAAI/bge-reranker-base/pipeline/sentence-similarity",
        body=lambda q, d: {"inputs": {"source_sentence": q, "sentences": d}},
        options=(
            NO_OPTIONS,
            OptionCase("hf_provider", {"hf_provider": "hf-inference"}, {}),  # part of the URL, not the body
        ),
        bad=(
            BadOption(
                "hf_provider",
                {"hf_provider": "together"},
                "Hugging Face hf_provider only supports hf-inference",
                "set it to 'hf-inference'",
            ),
            BadOption(
                "model-path",
                {"model_name": "BAAI/../etc"},
                "Hugging Face model name contains invalid path segment",
                "Hub model id",
            ),
        ),
        key_env=("MILVUS_HUGGINGFACE_API_KEY", "HF_TOKEN", "HUGGINGFACE_API_KEY"),
        key_required=True,
        model_required=True,
        default_batch=32,
        default_url="https://router.huggingface.co/hf-inference/models/BAAI/bge-reranker-base/pipeline/"
        "sentence-similarity",
        by_index=False,
        endpoints=(
            (
                "https://router.huggingface.co",
                "https://router.huggingface.co/hf-inference/models/BAAI/bge-reranker-base/pipeline/sentence-similarity",
            ),
            (
                "https://router.huggingface.co/hf-inference",
                "https://router.huggingface.co/hf-inference/models/BAAI/bge-reranker-base/pipeline/sentence-similarity",
            ),
            (
                "https://gw.example/hf/models/x/pipeline/sentence-similarity",
                "https://gw.example/hf/models/x/pipeline/sentence-similarity",
            ),
        ),
    ),
    Case(
        provider="sglang",
        model="BAAI/bge-reranker-v2-m3",
        path="/v1/rerank",
        body=lambda q, d: {"model": "BAAI/bge-reranker-v2-m3", "query": q, "documents": d},
        options=(NO_OPTIONS,),
        bad=(),
        key_env=("MILVUS_SGLANG_API_KEY", "SGLANG_API_KEY"),
        key_required=False,
        model_required=True,
        default_batch=32,
        default_url=None,
        by_index=True,
        endpoints=(
            ("http://sglang:30000", "http://sglang:30000/v1/rerank"),
            ("http://sglang:30000/v1", "http://sglang:30000/v1/rerank"),
            ("https://gw.example/sglang/v1/rerank", "https://gw.example/sglang/v1/rerank"),
        ),
    ),
)

BY_NAME = {case.provider: case for case in CASES}
ALL_KEY_ENV = sorted({name for case in CASES for name in case.key_env})


def query_and_documents(provider: str, body: Any) -> tuple[str, list[str]]:
    """What a recorded request asked, read by hand from each wire format (independent of the code)."""
    if provider == "ali":
        return body["input"]["query"], body["input"]["documents"]
    if provider == "huggingface":
        return body["inputs"]["source_sentence"], body["inputs"]["sentences"]
    if provider == "tei":
        return body["query"], body["texts"]
    return body["query"], body["documents"]
