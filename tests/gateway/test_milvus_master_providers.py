"""Milvus master's new model-ranker providers through the gateway: ``sglang`` reranked by the gateway itself,
``zilliz`` (Zilliz Cloud's own service) refused with the Python client's message, never sent to the backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus import Function, FunctionType

from tests.conftest import DIM
from tests.gateway.test_pymilvus import rows
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer, hashed_embedding


@pytest.fixture(scope="module")
def sglang() -> Iterator[RerankServer]:
    with RerankServer(wire="sglang") as srv:
        yield srv


def ranker(**params: Any) -> Function:
    merged = {"reranker": "model", "queries": ["AI research progress"], **params}
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged)


def search(client: Any, function: Function) -> Any:
    return client.search(
        "docs",
        data=[hashed_embedding("AI research progress", DIM)],
        anns_field="dense_vector",
        limit=5,
        output_fields=["document"],
        ranker=function,
    )


def test_sglang_is_reranked_by_the_gateway(
    plain: pymilvus.MilvusClient, ours: MilvusClient, sglang: RerankServer
) -> None:
    function = ranker(provider="sglang", endpoint=sglang.endpoint, model_name="BAAI/bge-reranker-v2-m3")
    got = search(plain, function)
    assert rows(got) == rows(search(ours, function))
    assert [round(d, 5) for _, d, _ in rows(got)[0]] == sorted((round(d, 5) for _, d, _ in rows(got)[0]), reverse=True)
    assert {r.path for r in sglang.requests} == {"/v1/rerank"}
    assert all(r.body["model"] == "BAAI/bge-reranker-v2-m3" for r in sglang.requests)


def test_zilliz_is_refused_like_the_python_client_refuses_it(plain: pymilvus.MilvusClient, ours: MilvusClient) -> None:
    function = ranker(provider="zilliz", model_deployment_id="in01-abc")
    with pytest.raises(pymilvus.MilvusException) as got:
        search(plain, function)
    with pytest.raises(pymilvus.MilvusException) as want:
        search(ours, function)
    assert (got.value.message, got.value.code) == (want.value.message, want.value.code)
    assert got.value.message.startswith("rerank model provider zilliz is Zilliz Cloud's own model service")
    assert "Unknown rerank provider" not in got.value.message  # Milvus Lite's, had it been forwarded
