"""Carrying a flow's steps out (core/flow.py): the loop every driver runs, blocking or awaited.

A driver gives its performers: ``describe(collection_name)`` -> the describe dict, ``searches(calls)`` -> one
result per call in the same order, ``rerank(step)`` -> one list of scores per batch, and ``tokenize(step)`` -> each
text's token strings (only flows of ``chunk.tokens`` yield that step). ``rerank`` and ``tokenize`` may raise the
``RerankServiceError`` that ended them, which is thrown into the flow. ``MilvusClient`` performs them with pymilvus
and its transport, the gateway with protos over its backend channel (``drive``); ``AsyncMilvusClient`` awaits them
(``drive_async``). The two loops are the same but for ``await``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from vllm_ranker.core.flow import Describe, Flow, Rerank, Searches
from vllm_ranker.core.token_chunks import Tokenize
from vllm_ranker.errors import RerankServiceError

Describer = Callable[[str], Any]
Searcher = Callable[[list[dict[str, Any]]], Sequence[Any]]
Reranker = Callable[[Rerank], list[list[float]]]
Tokenizer = Callable[[Tokenize], list[list[str]]]


def _no_tokenizer(step: Tokenize) -> Any:  # pragma: no cover - every driver of the package gives one
    raise TypeError("this driver does not carry Tokenize steps out: give drive() a tokenize performer")


def drive(
    flow: Flow, describe: Describer, searches: Searcher, rerank: Reranker, tokenize: Tokenizer = _no_tokenizer
) -> Any:
    """Run ``flow`` to its end, blocking; returns its result (or raises what it raised)."""
    reply: Any = None
    failure: RerankServiceError | None = None
    while True:
        try:
            step = flow.send(reply) if failure is None else flow.throw(failure)
        except StopIteration as done:
            return done.value
        reply, failure = None, None
        if isinstance(step, Describe):
            reply = describe(step.collection_name)
        elif isinstance(step, Searches):
            reply = list(searches(step.calls))
        elif isinstance(step, (Rerank, Tokenize)):
            try:
                reply = rerank(step) if isinstance(step, Rerank) else tokenize(step)
            except RerankServiceError as failed:  # thrown into the flow: it raises or falls back
                failure = failed
        else:  # pragma: no cover - the flow yields nothing else
            raise TypeError(step)


async def drive_async(
    flow: Flow,
    describe: Callable[[str], Awaitable[Any]],
    searches: Callable[[list[dict[str, Any]]], Awaitable[Sequence[Any]]],
    rerank: Callable[[Rerank], Awaitable[list[list[float]]]],
    tokenize: Callable[[Tokenize], Awaitable[list[list[str]]]] | None = None,
) -> Any:
    """``drive``, awaiting each performer."""
    reply: Any = None
    failure: RerankServiceError | None = None
    while True:
        try:
            step = flow.send(reply) if failure is None else flow.throw(failure)
        except StopIteration as done:
            return done.value
        reply, failure = None, None
        if isinstance(step, Describe):
            reply = await describe(step.collection_name)
        elif isinstance(step, Searches):
            reply = list(await searches(step.calls))
        elif isinstance(step, (Rerank, Tokenize)):
            try:
                reply = await (rerank(step) if isinstance(step, Rerank) else (tokenize or _no_tokenizer)(step))
            except RerankServiceError as failed:
                failure = failed
        else:  # pragma: no cover - the flow yields nothing else
            raise TypeError(step)
