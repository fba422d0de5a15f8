"""The loop every driver of the flow runs (core/driver.py), blocking and awaited, with performers of plain data:
each step goes to its performer, a rerank failure is thrown into the flow, any other failure ends the search."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.test_flow_protocol import DESCRIBED, HITS, ranker
from vllm_ranker import RerankServiceError
from vllm_ranker.core.driver import drive, drive_async
from vllm_ranker.core.flow import Rerank, search_flow
from vllm_ranker.core.schema import SchemaCache

DOWN = RerankServiceError("call service failed: down", kind="connect")


class Performers:
    """Answers each step from data and records the order of the steps."""

    def __init__(self, scores: list[float] | None = None, search_error: Exception | None = None) -> None:
        self.steps: list[str] = []
        self.scores, self.search_error = scores, search_error

    def describe(self, name: str) -> dict[str, Any]:
        self.steps.append(f"describe {name}")
        return DESCRIBED

    def searches(self, calls: list[dict[str, Any]]) -> list[Any]:
        self.steps.append(f"{len(calls)} search")
        if self.search_error is not None:
            raise self.search_error
        return [[HITS]]

    def rerank(self, step: Rerank) -> list[list[float]]:
        self.steps.append(f"rerank {len(step.batches)} batch")
        if self.scores is None:
            raise DOWN
        return [self.scores]


def both(performers: Performers, **params: Any) -> list[Any]:
    """The flow's result by ``drive`` and by ``drive_async`` (each with a flow of its own)."""

    def flow() -> Any:
        return search_flow(SchemaCache(), "docs", ranker(**params), {"data": [[0.1, 0.2]], "limit": 3})

    async def awaited() -> Any:
        async def describe(name: str) -> Any:
            return performers.describe(name)

        async def searches(calls: list[dict[str, Any]]) -> Any:
            return performers.searches(calls)

        async def rerank(step: Rerank) -> Any:
            return performers.rerank(step)

        return await drive_async(flow(), describe, searches, rerank)

    blocking = drive(flow(), performers.describe, performers.searches, performers.rerank)
    return [blocking, asyncio.run(awaited())]


def ids(result: Any) -> list[Any]:
    return [h["id"] for h in result[0]]


def test_each_step_goes_to_its_performer() -> None:
    performers = Performers(scores=[0.1, 0.9, 0.5])
    results = both(performers)
    assert [ids(r) for r in results] == [[2, 3, 1]] * 2
    assert performers.steps == ["describe docs", "1 search", "rerank 1 batch"] * 2


def test_a_rerank_failure_is_thrown_into_the_flow() -> None:
    results = both(Performers(), on_failure="passthrough")  # the flow falls back: first-stage order
    assert [ids(r) for r in results] == [[1, 2, 3]] * 2
    assert all(r.extra["rerank"].fallback for r in results)
    with pytest.raises(RerankServiceError) as raised:
        drive(search_flow(SchemaCache(), "docs", ranker(), {"data": [[0.1]], "limit": 3}), *_performers(Performers()))
    assert raised.value is DOWN  # the flow raised it (on_failure: error)


def test_a_search_failure_ends_the_search_even_as_a_service_error() -> None:
    performers = Performers(scores=[0.1, 0.9, 0.5], search_error=DOWN)
    with pytest.raises(RerankServiceError):  # not thrown into the flow: passthrough does not hide it
        drive(
            search_flow(SchemaCache(), "docs", ranker(on_failure="passthrough"), {"data": [[0.1]], "limit": 3}),
            *_performers(performers),
        )
    assert performers.steps == ["describe docs", "1 search"]


def _performers(performers: Performers) -> tuple[Any, Any, Any]:
    return performers.describe, performers.searches, performers.rerank
