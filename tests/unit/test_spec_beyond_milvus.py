"""The opt-in params beyond Milvus: defaults (Milvus's behaviour), native and string forms, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import RerankParamError
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import parse_ranker

COLLECTION = CollectionInfo(
    "docs", "id", {"id": FieldInfo("id", DataType.INT64), "document": FieldInfo("document", DataType.VARCHAR)}
)
BASE = {"reranker": "model", "provider": "vllm", "queries": ["q"], "endpoint": "http://a:8000"}


def parse(**params: Any) -> Any:
    merged = dict(BASE, **params)
    function = Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged)
    return parse_ranker(function, COLLECTION, env={})


def as_wire(value: Any) -> str:
    """What pymilvus puts on the wire for a param value (facts section 1)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def test_defaults_are_milvus_behaviour() -> None:
    spec = parse()
    assert (spec.cache, spec.cache_ttl, spec.rerank_window) == (False, None, None)
    assert (spec.score_normalization, spec.min_score, spec.on_failure) == ("raw", None, "error")
    assert [t.url for t in spec.targets] == ["http://a:8000/rerank"]


NATIVE = {
    "cache": True,
    "cache_ttl": 600,
    "rerank_window": 100,
    "score_normalization": "sigmoid",
    "min_score": 0.25,
    "on_failure": "passthrough",
    "eject_after": 2,
    "eject_seconds": 5.5,
    "endpoints": ["http://a:8000", "http://b:8000/v1/rerank"],
}


def test_native_values_and_their_wire_strings_parse_alike() -> None:
    native = parse(**NATIVE)
    wire = parse(**{k: as_wire(v) for k, v in NATIVE.items()})
    for spec in (native, wire):
        assert spec.cache is True and spec.cache_ttl == 600.0 and spec.rerank_window == 100
        assert spec.score_normalization == "sigmoid" and spec.min_score == 0.25 and spec.on_failure == "passthrough"
        assert (spec.eject_after, spec.eject_seconds) == (2, 5.5)
        assert [t.url for t in spec.targets] == ["http://a:8000/rerank", "http://b:8000/v1/rerank"]


@pytest.mark.parametrize(
    "raw",
    [
        "http://a:8000, http://b:8000 ,",
        ["http://a:8000", "http://b:8000", "http://a:8000"],
        '["http://a:8000", "http://b:8000"]',
    ],
)
def test_endpoint_lists_in_every_form(raw: Any) -> None:
    for key in ("endpoint", "endpoints"):
        spec = parse(**{key: raw})
        assert [t.url for t in spec.targets] == ["http://a:8000/rerank", "http://b:8000/rerank"]


def test_endpoints_wins_over_endpoint_and_ttl_zero_means_no_expiry() -> None:
    spec = parse(endpoint="http://milvus-reads-this:8000", endpoints="http://c:1", cache_ttl="0")
    assert [t.url for t in spec.targets] == ["http://c:1/rerank"] and spec.cache_ttl is None
    assert parse(endpoints="").targets[0].url == "http://a:8000/rerank"  # empty: `endpoint` is used


@pytest.mark.parametrize(
    ("params", "pieces"),
    [
        ({"cache": "maybe"}, ["cache: maybe is not a valid bool", "give true"]),
        ({"cache_ttl": "-1"}, ["cache_ttl: -1 must be greater than 0", "seconds"]),
        ({"cache_ttl": "soon"}, ["cache_ttl: soon is not a valid number"]),
        ({"rerank_window": "0"}, ["rerank_window: 0 must be >= 1", "offset + limit"]),
        ({"rerank_window": "ten"}, ["rerank_window: ten is not a valid integer"]),
        ({"rerank_window": 20000}, ["rerank_window: 20000 is larger than 16384"]),
        ({"score_normalization": "softmax"}, ["score_normalization: softmax is not supported", "raw, sigmoid, minmax"]),
        ({"min_score": "high"}, ["min_score: high is not a valid number", "after score_normalization"]),
        ({"on_failure": "ignore"}, ["on_failure: ignore is not supported", "'passthrough'"]),
        ({"eject_after": 0}, ["eject_after: 0 must be >= 1"]),
        ({"eject_seconds": 0}, ["eject_seconds: 0 must be greater than 0"]),
        ({"endpoints": "http://ok:1,localhost:8000"}, ["endpoints: [localhost:8000] is not a valid http/https link"]),
        ({"endpoint": ["http://ok:1", 7]}, ["is not a valid http/https link"]),
    ],
)
def test_bad_values_say_which_key_and_what_to_change(params: dict[str, Any], pieces: list[str]) -> None:
    with pytest.raises(RerankParamError) as caught:
        parse(**params)
    for piece in pieces:
        assert piece in str(caught.value)


def test_keys_are_case_insensitive_like_milvus() -> None:
    spec = parse(Cache="true", Score_Normalization="MINMAX", ON_FAILURE="Passthrough")
    assert spec.cache and spec.score_normalization == "minmax" and spec.on_failure == "passthrough"
