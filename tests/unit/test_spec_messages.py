"""Messages that name what the user wrote and read as English, keeping Milvus's substrings (users grep for them).

Issue 14's library traps: a provider with no ``reranker`` key, ``maxBatch: 0`` naming only Milvus's key,
``truncate_prompt_tokens: "x"`` saying "(not a number)" twice, and Milvus's own endpoint messages.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType, RRFRanker

from vllm_ranker import RerankParamError
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import is_model_ranker, parse_ranker
from vllm_ranker.providers import PROVIDERS

COLLECTION = CollectionInfo(
    "docs", "id", {"id": FieldInfo("id", DataType.INT64), "document": FieldInfo("document", DataType.VARCHAR)}
)
BASE = {"reranker": "model", "provider": "vllm", "queries": ["q"], "endpoint": "http://localhost:8000"}
# What each provider needs besides endpoint, so that only the param under test is wrong.
NEEDS: dict[str, dict[str, Any]] = {
    name: ({"model_name": "some-model", "credential": "test-key"} if provider.model_required else {})
    for name, provider in PROVIDERS.items()
}


def fn(params: dict[str, Any]) -> Function:
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params)


def message_of(params: dict[str, Any]) -> str:
    with pytest.raises(RerankParamError) as caught:
        parse_ranker(fn(params), COLLECTION, env={})
    return str(caught.value)


# -- 1. a provider without reranker ------------------------------------------------------------------------
@pytest.mark.parametrize("provider", [*sorted(PROVIDERS), "Cohere", "not-a-provider"])
def test_a_provider_without_reranker_is_ours_and_says_set_reranker_model(provider: str) -> None:
    params = {"provider": provider, "queries": ["q"], "endpoint": "http://h:1"}
    assert is_model_ranker(fn(params))
    message = message_of(params)
    assert message.startswith("unsupported rerank function: [] , list of supported [decay,model,rrf,weighted]")
    assert f"provider '{provider}' but no reranker" in message
    assert "set params['reranker'] = 'model'" in message


def test_only_a_named_provider_makes_a_reranker_less_function_ours() -> None:
    assert not is_model_ranker(fn({}))  # Milvus Lite's default (rrf) stays Milvus's business
    assert not is_model_ranker(fn({"provider": "  "}))
    for kind in ("rrf", "weighted", "decay", "boost", "RRF"):
        assert not is_model_ranker(fn({"reranker": kind, "provider": "vllm"}))  # really that ranker
    assert not is_model_ranker(RRFRanker())
    bm25 = Function(
        name="bm25",
        input_field_names=["document"],
        output_field_names=["sparse"],
        function_type=FunctionType.BM25,
        params={"provider": "vllm"},
    )
    assert not is_model_ranker(bm25)


def test_a_misspelled_reranker_says_the_same_fix() -> None:
    message = message_of(dict(BASE, reranker="modle"))
    assert "unsupported rerank function: [modle] , list of supported" in message
    assert "no reranker" not in message and "set params['reranker'] = 'model'" in message


# -- 2. the batch size names the key the user wrote ---------------------------------------------------------
@pytest.mark.parametrize("key", ["maxBatch", "max_batch", "MaxBatch"])
@pytest.mark.parametrize(
    ("value", "milvus"),
    [
        (0, "[max_client_batch_size param's value: 0] must be greater than 0"),
        (-2, "[max_client_batch_size param's value: -2] must be greater than 0"),
        ("x", "[max_client_batch_size param's value: x] is not a valid number"),
    ],
)
def test_a_bad_batch_size_names_the_key_written_and_milvus_key(key: str, value: Any, milvus: str) -> None:
    message = message_of(dict(BASE, **{key: value}))
    assert milvus in message
    assert f"params['{key}']" in message and "Milvus's max_client_batch_size" in message
    assert "e.g. 32" in message


def test_a_bad_max_client_batch_size_names_it_once() -> None:
    message = message_of(dict(BASE, max_client_batch_size=0))
    assert "[max_client_batch_size param's value: 0] must be greater than 0" in message
    assert "set params['max_client_batch_size'] to a positive integer" in message
    assert "Milvus's max_client_batch_size" not in message


# -- 3. messages read as English ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "milvus", "not_said"),
    [
        ({"truncate_prompt_tokens": "x"}, "truncate_prompt_tokens: x is not a number: give", "(not a number)"),
        ({"truncate_prompt_tokens": 1.5}, "truncate_prompt_tokens: 1.5 is not a number", "(not a whole number)"),
        ({"timeout": "soon"}, "timeout: soon is not a valid number: ", "(not a number)"),
        ({"min_score": "high"}, "min_score: high is not a valid number: ", "(not a number)"),
        ({"cache": "maybe"}, "cache: maybe is not a valid bool", "(not a boolean (use"),
    ],
)
def test_no_message_repeats_itself_in_parentheses(params: dict[str, Any], milvus: str, not_said: str) -> None:
    message = message_of(dict(BASE, **params))
    assert milvus in message
    assert not_said not in message
    assert message.count("(") == message.count(")")


def test_a_reason_that_adds_something_is_kept() -> None:
    assert "truncate_prompt_tokens: 1.5 is not a number (a whole number is needed)" in message_of(
        dict(BASE, truncate_prompt_tokens=1.5)
    )
    tei = dict(BASE, provider="tei", truncation_direction="left")
    assert "only supports [Left/Right] (it must be one of Left, Right; case matters)" in message_of(tei)


# -- 4. Milvus's endpoint messages --------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["", "   ", "absent"])
def test_tei_without_endpoint_gives_milvus_url_message_and_ours(endpoint: str) -> None:
    params = dict(BASE, provider="tei")
    if endpoint == "absent":
        del params["endpoint"]
    else:
        params["endpoint"] = endpoint
    message = message_of(params)
    assert "endpoint: [] is not a valid http/https link" in message
    assert "rerank function lost params endpoint" in message and "set params['endpoint']" in message


def test_vllm_without_endpoint_keeps_milvus_lost_params_message() -> None:
    message = message_of({k: v for k, v in BASE.items() if k != "endpoint"})
    assert message.startswith("rerank function lost params endpoint")
    assert "is not a valid http/https link" not in message


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_an_endpoint_of_none_is_milvus_none_link_for_every_provider(provider: str) -> None:
    message = message_of(dict(BASE, provider=provider, endpoint=None, **NEEDS[provider]))
    assert "endpoint: [None] is not a valid http/https link" in message
    if PROVIDERS[provider].default_endpoint is None:
        assert "rerank function lost params endpoint" in message
    else:
        assert f"leave it out to use {PROVIDERS[provider].default_endpoint}" in message


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_string_none_is_the_same_milvus_message(provider: str) -> None:
    message = message_of(dict(BASE, provider=provider, endpoint="None", **NEEDS[provider]))
    assert "endpoint: [None] is not a valid http/https link" in message
