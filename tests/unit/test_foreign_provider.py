"""Which model rankers go to Milvus untouched (a provider we do not serve), and the message when Milvus does not
serve it either, for each way a backend refuses it."""

from __future__ import annotations

from typing import Any

from pymilvus import Function, FunctionType

from vllm_ranker.core.spec import foreign_provider, is_model_ranker, unknown_everywhere
from vllm_ranker.providers import PROVIDERS

OURS = "vllm_ranker serves " + ", ".join(sorted(PROVIDERS))


def fn(**params: Any) -> Function:
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params)


def test_a_provider_we_do_not_serve_is_the_servers() -> None:
    assert foreign_provider(fn(reranker="Model", provider=" Acme ")) == "Acme"
    assert not is_model_ranker(fn(reranker="model", provider="acme"))
    for ours in (fn(reranker="model", provider="VLLM"), fn(provider="acme"), fn(reranker="model")):
        assert foreign_provider(ours) is None and is_model_ranker(ours)  # served, or ours to refuse


def test_the_message_names_what_both_serve() -> None:
    lite = "Unknown rerank provider: 'acme'. Supported: 'cohere', 'jina'"
    assert (
        unknown_everywhere("acme", lite)
        == f"unknown rerank model provider:acme: {OURS}; the Milvus backend serves cohere, jina"
    )
    milvus = "unknown rerank model provider:acme"  # a Milvus server names none of its own
    assert (
        unknown_everywhere("acme", milvus)
        == f"{milvus}: {OURS}; the Milvus backend does not serve it either ({milvus})"
    )
    made = unknown_everywhere("acme", lite) or ""
    assert unknown_everywhere("acme", made) == made  # a gateway in front already made it: kept as it is
    assert unknown_everywhere("acme", "collection not found[collection=docs]") is None
