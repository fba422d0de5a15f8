"""The exchange of one batch, driven by hand: the Send/Sleep actions it yields and what it makes of each reply."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import RerankServiceError, RerankStats, RerankTimeout
from vllm_ranker.core.ordering import Batch
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import RerankSpec, parse_ranker
from vllm_ranker.transport.balancer import EndpointPool
from vllm_ranker.transport.exchange import Answer, Broken, Send, Sleep, exchange

INFO = CollectionInfo("docs", "id", {"id": FieldInfo("id", DataType.INT64), "doc": FieldInfo("doc", DataType.VARCHAR)})
BATCH = Batch(query_index=0, query="q", start=0, documents=["a", "b"])
OK_BODY = orjson.dumps({"results": [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.7}]})


def spec(*endpoints: str, **params: Any) -> RerankSpec:
    merged = {
        "reranker": "model",
        "provider": "vllm",
        "endpoint": ",".join(endpoints) or "http://a:1",
        "queries": ["q"],
    }
    return parse_ranker(
        Function(name="r", input_field_names=["doc"], function_type=FunctionType.RERANK, params=merged | params), INFO
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(s: RerankSpec, replies: list[Answer | Broken], clock: Clock | None = None) -> tuple[list[Any], Any]:
    """Run the exchange, answering each Send with the next reply; returns the actions and the result."""
    clock = clock or Clock()
    steps = exchange(s, BATCH, deadline=s.timeout, stats=RerankStats(), pool=EndpointPool(), clock=clock)
    actions: list[Any] = []
    reply: Any = None
    feed = iter(replies)
    while True:
        try:
            action = steps.send(reply)
        except StopIteration as done:
            return actions, done.value
        actions.append(action)
        if isinstance(action, Sleep):
            clock.now += action.seconds
            reply = None
        else:
            reply = next(feed)


def test_a_2xx_answer_returns_scores_in_document_order() -> None:
    actions, scores = drive(spec(), [Answer(200, OK_BODY, None, 0.01)])
    assert [type(a) for a in actions] == [Send]
    send = actions[0]
    assert send.url == "http://a:1/rerank" and orjson.loads(send.body)["documents"] == ["a", "b"]
    assert scores == pytest.approx([0.7, 0.2])


def test_a_503_is_retried_after_a_backoff_sleep() -> None:
    actions, scores = drive(spec(), [Answer(503, b"{}", None, 0.01), Answer(200, OK_BODY, None, 0.01)])
    assert [type(a) for a in actions] == [Send, Sleep, Send]
    assert 0 < actions[1].seconds <= 5
    assert scores == pytest.approx([0.7, 0.2])


def test_retry_after_is_honoured() -> None:
    actions, _ = drive(spec(), [Answer(429, b"{}", "2", 0.01), Answer(200, OK_BODY, None, 0.01)])
    assert actions[1] == Sleep(2.0) or actions[1].seconds >= 2.0


def test_a_400_is_not_retried() -> None:
    with pytest.raises(RerankServiceError, match="HTTP 400") as raised:
        drive(spec(), [Answer(400, b'{"error": {"message": "bad"}}', None, 0.01)])
    assert raised.value.kind == "http" and raised.value.status == 400


def test_a_connect_failure_fails_over_to_the_other_endpoint_without_sleeping() -> None:
    actions, scores = drive(
        spec("http://a:1", "http://b:2"), [Broken("connect", "refused", 0.0), Answer(200, OK_BODY, None, 0.01)]
    )
    assert [type(a) for a in actions] == [Send, Send]
    assert {actions[0].url, actions[1].url} == {"http://a:1/rerank", "http://b:2/rerank"}
    assert scores == pytest.approx([0.7, 0.2])


def test_retries_stop_at_max_retries() -> None:
    replies: list[Answer | Broken] = [Answer(503, b"{}", None, 0.01)] * 3
    with pytest.raises(RerankServiceError, match="after 2 tries"):
        drive(spec(max_retries=1), replies)


def test_a_timeout_reply_is_a_rerank_timeout() -> None:
    with pytest.raises(RerankTimeout, match="deadline"):
        drive(spec(), [Broken("timeout", "read timed out", 1.0)])


def test_the_deadline_stops_the_next_try() -> None:
    clock = Clock()
    clock.now = 100.0  # already past the spec's 30 s deadline
    with pytest.raises(RerankTimeout):
        drive(spec(), [], clock)


def test_a_malformed_answer_names_the_provider() -> None:
    with pytest.raises(RerankServiceError, match="malformed vllm rerank response") as raised:
        drive(spec(), [Answer(200, b'{"nope": 1}', None, 0.01)])
    assert raised.value.kind == "malformed"
