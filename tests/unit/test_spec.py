"""The Function params -> RerankSpec: Milvus's validation order and messages (facts section 2), plus ours."""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType, MilvusException

from vllm_ranker import RerankParamError
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import is_model_ranker, parse_ranker

COLLECTION = CollectionInfo(
    "docs",
    "id",
    {
        "id": FieldInfo("id", DataType.INT64),
        "document": FieldInfo("document", DataType.VARCHAR),
        "note": FieldInfo("note", DataType.VARCHAR, nullable=True),
        "title": FieldInfo("title", DataType.VARCHAR),
        "dense": FieldInfo("dense", DataType.FLOAT_VECTOR),
    },
)
BASE = {"reranker": "model", "provider": "vllm", "queries": ["q"], "endpoint": "http://localhost:8000"}


def fn(params: dict[str, Any], fields: list[str] | None = None) -> Function:
    return Function(
        name="r",
        input_field_names=["document"] if fields is None else fields,
        function_type=FunctionType.RERANK,
        params=params,
    )


def parse(params: dict[str, Any], fields: list[str] | None = None) -> Any:
    return parse_ranker(fn(params, fields), COLLECTION, env={})


def without(key: str, **extra: Any) -> dict[str, Any]:
    params = {k: v for k, v in BASE.items() if k != key}
    params.update(extra)
    return params


@pytest.mark.parametrize(
    ("params", "fields", "substring"),
    [
        (
            dict(BASE, reranker="modle"),
            None,
            "unsupported rerank function: [modle] , list of supported [decay,model,rrf,weighted]",
        ),
        (BASE, [""], "rerank input field name cannot be empty string"),
        (BASE, ["missing"], "function input field not found: missing"),
        (BASE, ["note"], "function input field cannot be nullable: field note"),
        (BASE, ["document", "title"], "rerank model only supports single input"),
        (BASE, ["id"], "rerank model only support varchar, bug got [Int64]"),
        (without("provider"), None, "lost rerank params:provider"),
        (dict(BASE, provider="openai"), None, "unknown rerank model provider:openai"),
        (without("endpoint"), None, "rerank function lost params endpoint"),
        (dict(BASE, endpoint="ftp://host"), None, "endpoint: [ftp://host] is not a valid http/https link"),
        (dict(BASE, endpoint="http://"), None, "is not a valid http/https link"),
        (dict(BASE, truncate_prompt_tokens="many"), None, "truncate_prompt_tokens: many is not a number"),
        (dict(BASE, maxBatch="x"), None, "[max_client_batch_size param's value: x] is not a valid number"),
        (dict(BASE, max_batch=0), None, "[max_client_batch_size param's value: 0] must be greater than 0"),
        (dict(BASE, max_client_batch_size=-3), None, "must be greater than 0"),
        (dict(BASE, queries="not json"), None, "parse rerank params [queries] failed, err:"),
        (dict(BASE, queries=[1, 2]), None, "parse rerank params [queries] failed, err:"),
        (dict(BASE, queries=[]), None, "rerank function lost params queries"),
    ],
)
def test_each_milvus_message(params: dict[str, Any], fields: list[str] | None, substring: str) -> None:
    with pytest.raises(RerankParamError) as caught:
        parse(params, fields)
    assert substring in str(caught.value)
    assert isinstance(caught.value, MilvusException)
    assert ": " in str(caught.value).split(substring, 1)[1] or "give" in str(caught.value)  # says what to change


def test_validation_order_is_milvus_order() -> None:
    # Everything wrong at once: the reranker kind is reported first, then the field, provider, endpoint, queries.
    broken = {"reranker": "nope", "queries": []}
    with pytest.raises(RerankParamError, match="unsupported rerank function"):
        parse(broken, ["missing"])
    broken["reranker"] = "model"
    with pytest.raises(RerankParamError, match="function input field not found"):
        parse(broken, ["missing"])
    with pytest.raises(RerankParamError, match="lost rerank params:provider"):
        parse(broken)
    broken["provider"] = "vllm"
    with pytest.raises(RerankParamError, match="lost params endpoint"):
        parse(broken)
    broken["endpoint"] = "http://h:1"
    with pytest.raises(RerankParamError, match="lost params queries"):
        parse(broken)


def test_string_and_native_values_are_the_same() -> None:
    native = parse(dict(BASE, maxBatch=64, truncate_prompt_tokens=256))
    strings = parse(dict(BASE, maxBatch="64", truncate_prompt_tokens="256", queries='["q"]'))
    assert native.batch_size == strings.batch_size == 64
    assert native.targets == strings.targets
    assert native.targets[0].options == {"truncate_prompt_tokens": 256}
    assert isinstance(strings.targets[0].options["truncate_prompt_tokens"], int)


@pytest.mark.parametrize("key", ["maxBatch", "max_batch", "max_client_batch_size", "MAXBATCH", "Max_Batch"])
def test_batch_size_spellings_are_one_setting(key: str) -> None:
    assert parse(dict(BASE, **{key: 7})).batch_size == 7


def test_defaults_and_unknown_keys() -> None:
    spec = parse(dict(BASE, some_future_key="whatever"))
    assert spec.batch_size == 32
    assert spec.timeout == 30.0
    assert spec.max_concurrency == 8
    assert spec.api_key is None
    assert spec.targets[0].model is None


def test_keys_match_case_insensitively_except_queries() -> None:
    spec = parse({"Reranker": "MODEL", "PROVIDER": "vllm", "Endpoint": "http://h:8000", "queries": ["q"]})
    assert spec.provider.name == "vllm"
    # "Queries" is not "queries": with vector data there are no queries.
    with pytest.raises(RerankParamError, match="lost params queries"):
        parse(without("queries", Queries=["q"])).queries_for(1, [[0.5, 0.5]])


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://h:8000", "http://h:8000/rerank"),
        ("http://h:8000/", "http://h:8000/rerank"),
        ("http://h:8000/v1/rerank", "http://h:8000/v1/rerank"),
        ("http://h:8000/v2/rerank/", "http://h:8000/v2/rerank"),
        ("https://gw.example/team/vllm", "https://gw.example/team/vllm/rerank"),
        ("http://h:8000/v1", "http://h:8000/v1/rerank"),
    ],
)
def test_endpoint_url_rules(endpoint: str, url: str) -> None:
    assert parse(dict(BASE, endpoint=endpoint)).targets[0].url == url


def test_model_name_is_kept() -> None:
    assert parse(dict(BASE, model_name="BAAI/bge-reranker-base")).targets[0].model == "BAAI/bge-reranker-base"


def test_queries_resolution() -> None:
    spec = parse(without("queries"))
    assert spec.queries_for(2, ["a", "b"]) == ["a", "b"]
    with pytest.raises(RerankParamError, match="rerank function lost params queries"):
        spec.queries_for(1, [[0.1, 0.2]])
    spec = parse(dict(BASE, queries=["one"]))
    with pytest.raises(RerankParamError, match=r"nq must equal to queries size, but got nq \[2\], queries size \[1\]"):
        spec.queries_for(2, None)


def test_api_key_is_never_shown() -> None:
    spec = parse_ranker(fn(dict(BASE, credential="sk-secret-123")), COLLECTION, env={})
    assert spec.api_key is not None and spec.api_key.reveal() == "sk-secret-123"
    assert "sk-secret-123" not in repr(spec) and "sk-secret-123" not in str(spec.api_key)
    from_env = parse_ranker(fn(BASE), COLLECTION, env={"VLLM_API_KEY": "sk-env"})
    assert from_env.api_key is not None and from_env.api_key.reveal() == "sk-env"


def test_which_rankers_are_ours() -> None:
    from pymilvus import RRFRanker

    assert is_model_ranker(fn(BASE))
    assert is_model_ranker(fn(dict(BASE, reranker="typo")))  # ours to report with Milvus's message
    for kind in ("rrf", "weighted", "decay", "boost"):
        assert not is_model_ranker(fn({"reranker": kind}))
    assert not is_model_ranker(RRFRanker())
    assert not is_model_ranker(None)


@pytest.mark.parametrize(
    ("key", "value", "substring"),
    [
        ("timeout", 0, "must be greater than 0"),
        ("timeout", "soon", "is not a valid number"),
        ("max_retries", -1, "must be >= 0"),
        ("max_concurrency", 0, "must be >= 1"),
    ],
)
def test_engine_params_are_validated(key: str, value: Any, substring: str) -> None:
    with pytest.raises(RerankParamError, match=key) as caught:
        parse(dict(BASE, **{key: value}))
    assert substring in str(caught.value)
