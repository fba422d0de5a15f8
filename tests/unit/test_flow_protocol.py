"""The flow's step protocol, driven by hand: what it yields, what it is sent, what it returns or raises.

No Milvus and no HTTP: these are the replies a driver would send, so each rule of the protocol is pinned here.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import RerankParamError, RerankServiceError
from vllm_ranker.core.flow import Describe, Rerank, Searches, search_flow
from vllm_ranker.core.schema import SchemaCache

DESCRIBED = {
    "collection_name": "docs",
    "fields": [
        {"name": "id", "type": DataType.INT64, "is_primary": True},
        {"name": "document", "type": DataType.VARCHAR},
    ],
}
HITS = [
    {"id": 1, "distance": 0.9, "entity": {"document": "cats"}},
    {"id": 2, "distance": 0.8, "entity": {"document": "dogs"}},
    {"id": 3, "distance": 0.7, "entity": {"document": "birds"}},
]


def ranker(**extra: Any) -> Function:
    params = {"reranker": "model", "provider": "vllm", "endpoint": "http://127.0.0.1:9", "queries": ["pets"]}
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params | extra)


def start(cache: SchemaCache | None = None, **extra: Any) -> tuple[Any, Any]:
    flow = search_flow(cache or SchemaCache(), "docs", ranker(**extra), {"data": [[0.1, 0.2]], "limit": 3})
    return flow, flow.send(None)


def test_describe_then_search_then_rerank_then_return() -> None:
    flow, step = start()
    assert step == Describe("docs")
    step = flow.send(DESCRIBED)
    assert isinstance(step, Searches) and len(step.calls) == 1
    call = step.calls[0]
    assert call["collection_name"] == "docs" and "document" in call["output_fields"]  # the text is fetched
    step = flow.send([[HITS]])
    assert isinstance(step, Rerank)
    assert [list(b.documents) for b in step.batches] == [["cats", "dogs", "birds"]]
    with pytest.raises(StopIteration) as done:
        flow.send([[0.1, 0.9, 0.5]])
    (hits,) = done.value.value
    assert [h["id"] for h in hits] == [2, 3, 1]  # the model's order
    assert [h["distance"] for h in hits] == pytest.approx([0.9, 0.5, 0.1])
    assert done.value.value.extra["rerank"].batches == 1


def test_a_cached_schema_skips_describe() -> None:
    cache = SchemaCache()
    flow, _ = start(cache)
    flow.send(DESCRIBED)
    _, step = start(cache)
    assert isinstance(step, Searches)  # no Describe the second time


def test_a_thrown_service_error_is_raised_by_default() -> None:
    flow, _ = start()
    flow.send(DESCRIBED)
    flow.send([[HITS]])
    failure = RerankServiceError("call service failed: vllm at http://x: HTTP 503", status=503, kind="http")
    with pytest.raises(RerankServiceError) as raised:
        flow.throw(failure)
    assert raised.value is failure


def test_a_thrown_service_error_falls_back_with_passthrough() -> None:
    flow, _ = start(on_failure="passthrough")
    flow.send(DESCRIBED)
    flow.send([[HITS]])
    with pytest.raises(StopIteration) as done:
        flow.throw(RerankServiceError("call service failed: down", kind="connect"))
    (hits,) = done.value.value
    assert [h["id"] for h in hits] == [1, 2, 3]  # first-stage order, first-stage scores
    assert [h["distance"] for h in hits] == pytest.approx([0.9, 0.8, 0.7])
    assert done.value.value.extra["rerank"].fallback


def test_bad_params_end_the_flow_before_any_search() -> None:
    flow = search_flow(SchemaCache(), "docs", ranker(maxBatch=0), {"data": [[0.1]], "limit": 3})
    assert flow.send(None) == Describe("docs")
    with pytest.raises(RerankParamError, match="max_client_batch_size"):
        flow.send(DESCRIBED)


def test_no_candidates_means_no_rerank_step() -> None:
    flow, _ = start()
    flow.send(DESCRIBED)
    with pytest.raises(StopIteration) as done:
        flow.send([[[]]])
    assert list(done.value.value) == [[]]
