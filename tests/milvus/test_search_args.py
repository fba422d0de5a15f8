"""search_iterator and pymilvus 3's new search arguments beside a model ranker, on both clients (Milvus Lite and
the loopback vLLM server): what keeps its meaning (ids=) and what is refused before any search."""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import (
    Function,
    FunctionChain,
    FunctionChainStage,
    FunctionScore,
    FunctionType,
    LexicalHighlighter,
    MilvusException,
    SearchAggregation,
)
from pymilvus.function_chain import col, fn

from tests.conftest import rerank_function, rerank_requests
from vllm_ranker import MilvusClient, RerankParamError
from vllm_ranker.testing import RerankServer

DENSE: dict[str, Any] = {"anns_field": "dense_vector", "output_fields": ["document"]}
QUERY = "AI research progress"


def iterate(milvus: MilvusClient, **kwargs: Any) -> Any:
    return milvus.search_iterator("docs", data=[QUERY], batch_size=3, limit=6, **DENSE, **kwargs)


def test_search_iterator_with_a_model_ranker_is_refused(milvus: MilvusClient, server: RerankServer) -> None:
    # Was handed to Milvus Lite, whose Cohere-only table answered "Unknown rerank provider".
    with pytest.raises(RerankParamError, match="function rerank is not supported with search iterator v2") as info:
        iterate(milvus, ranker=rerank_function(server.endpoint, [QUERY]))
    assert "offset" in str(info.value) and "rerank_window" in str(info.value)  # what to do instead
    assert rerank_requests(server) == []


def test_search_iterator_with_a_rerank_model_chain_is_refused(milvus: MilvusClient, server: RerankServer) -> None:
    chain = FunctionChain(FunctionChainStage.L2_RERANK).map(
        "$score", fn.rerank_model(col("document"), queries=[QUERY], provider="vllm", endpoint=server.endpoint)
    )
    with pytest.raises(RerankParamError, match="function rerank is not supported with search iterator v2"):
        iterate(milvus, function_chains=chain)
    assert rerank_requests(server) == []


def test_search_iterator_with_boosts_and_a_model_is_refused(milvus: MilvusClient, server: RerankServer) -> None:
    boost = Function(
        name="boost",
        input_field_names=[],
        function_type=FunctionType.RERANK,
        params={"reranker": "boost", "filter": "year > 2005", "weight": 2.0},
    )
    ranker = FunctionScore(functions=[boost, rerank_function(server.endpoint, [QUERY])])
    with pytest.raises(RerankParamError, match="function rerank is not supported with search iterator v2"):
        iterate(milvus, ranker=ranker)
    assert rerank_requests(server) == []


def test_search_iterator_without_a_ranker_still_pages(milvus: MilvusClient) -> None:
    iterator = iterate(milvus)
    pages = [iterator.next(), iterator.next()]
    iterator.close()
    ids = [hit["id"] for page in pages for hit in page]
    assert [len(page) for page in pages] == [3, 3] and len(set(ids)) == 6


def test_search_by_ids_has_one_query_per_id(client: Any, server: RerankServer) -> None:
    # nq is the number of ids (pymilvus sends nq=len(ids)): one query text in params['queries'] for two ids.
    with pytest.raises(RerankParamError, match=r"nq must equal to queries size, but got nq \[2\], queries size \[1\]"):
        client.search("docs", ids=[1, 2], limit=3, ranker=rerank_function(server.endpoint, [QUERY]), **DENSE)
    assert rerank_requests(server) == []


def test_search_by_ids_reaches_the_first_stage(client: Any, server: RerankServer) -> None:
    # With one query per id the ids go to the first-stage search as they are; Milvus Lite cannot search by
    # primary keys and says so in its own words (a Milvus server searches them, and the model reranks the hits).
    ranker = rerank_function(server.endpoint, [QUERY, QUERY])
    with pytest.raises(MilvusException, match="missing placeholder_group"):
        client.search("docs", ids=[1, 2], limit=3, ranker=ranker, **DENSE)
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
    client: Any, server: RerankServer, argument: dict[str, Any], message: str
) -> None:
    # Each went to the first stage and was silently lost (or reordered away) by the rerank.
    with pytest.raises(RerankParamError, match=message):
        client.search("docs", data=[QUERY], limit=3, ranker=rerank_function(server.endpoint), **DENSE, **argument)
    assert rerank_requests(server) == []
