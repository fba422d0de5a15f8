"""Plain pymilvus through the gateway: search_iterator and pymilvus 3's new search arguments beside a model ranker
are answered as ``vllm_ranker.MilvusClient`` answers them (tests/milvus/test_search_args.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymilvus
import pytest
from pymilvus import FunctionChain, FunctionChainStage, LexicalHighlighter, MilvusException, SearchAggregation
from pymilvus.function_chain import col, fn

from tests.conftest import rerank_function, rerank_requests
from vllm_ranker import MilvusClient
from vllm_ranker.testing import RerankServer

DENSE: dict[str, Any] = {"anns_field": "dense_vector", "output_fields": ["document"]}
QUERY = "AI research progress"
ITERATOR_REFUSED = "function rerank is not supported with search iterator v2"


def raised(call: Callable[[], Any]) -> MilvusException:
    with pytest.raises(MilvusException) as info:
        call()
    return info.value


def iterate(client: pymilvus.MilvusClient, **kwargs: Any) -> Any:
    return client.search_iterator("docs", data=[QUERY], batch_size=3, limit=6, **DENSE, **kwargs)


def test_search_iterator_with_a_model_ranker_is_refused(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer
) -> None:
    # Was reranked page by page: batch_size=3, limit=6 gave 3 hits and stopped.
    ranker = rerank_function(server.endpoint, [QUERY])
    got = raised(lambda: iterate(plain, ranker=ranker))
    assert ITERATOR_REFUSED in got.message and "rerank_window" in got.message
    assert got.message == raised(lambda: iterate(ours, ranker=ranker)).message
    assert rerank_requests(server) == []


def test_search_iterator_with_a_rerank_model_chain_is_refused(
    plain: pymilvus.MilvusClient, server: RerankServer
) -> None:
    chain = FunctionChain(FunctionChainStage.L2_RERANK).map(
        "$score", fn.rerank_model(col("document"), queries=[QUERY], provider="vllm", endpoint=server.endpoint)
    )
    assert ITERATOR_REFUSED in raised(lambda: iterate(plain, function_chains=chain)).message
    assert rerank_requests(server) == []


def test_search_iterator_without_a_ranker_passes_through(plain: pymilvus.MilvusClient) -> None:
    iterator = iterate(plain)
    pages = [iterator.next(), iterator.next()]
    iterator.close()
    assert [len(page) for page in pages] == [3, 3]


@pytest.mark.parametrize("queries", [[QUERY], [QUERY, QUERY]], ids=["one-query-two-ids", "one-query-per-id"])
def test_search_by_ids_as_the_python_client(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, queries: list[str]
) -> None:
    # nq = number of ids; with one query per id the ids reach the first stage, which Milvus Lite refuses.
    kwargs: dict[str, Any] = dict(ids=[1, 2], limit=3, ranker=rerank_function(server.endpoint, queries), **DENSE)
    got = raised(lambda: plain.search("docs", **kwargs))
    assert got.message == raised(lambda: ours.search("docs", **kwargs)).message
    assert ("nq [2], queries size [1]" in got.message) == (len(queries) == 1)
    assert rerank_requests(server) == []


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"order_by_fields": [{"field": "year", "order": "asc"}]}, "order_by and function_score cannot be used"),
        ({"search_aggregation": SearchAggregation(fields=["category"], size=2)}, "cannot be combined with search_agg"),
        (
            {
                "highlighter": LexicalHighlighter(
                    highlight_query=[{"type": "TextMatch", "field": "document", "text": "AI"}]
                )
            },
            "cannot be combined with highlighter",
        ),
    ],
    ids=["order_by_fields", "search_aggregation", "highlighter"],
)
def test_arguments_a_model_ranker_refuses(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, argument: dict[str, Any], message: str
) -> None:
    # Each reached the backend and was lost in the reranked answer.
    kwargs: dict[str, Any] = dict(data=[QUERY], limit=3, ranker=rerank_function(server.endpoint), **DENSE, **argument)
    got = raised(lambda: plain.search("docs", **kwargs))
    assert message in got.message
    assert got.message == raised(lambda: ours.search("docs", **kwargs)).message
    assert rerank_requests(server) == []
