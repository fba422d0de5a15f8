"""``chunk.tokens`` through the gateway (its own driver of the flow carries the Tokenize step out): plain pymilvus
answers what vllm_ranker.MilvusClient answers on the same backend, the loopback vLLM's tokenizer asked as often."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest

from tests.conftest import DIM, rerank_function
from tests.milvus.test_token_chunks import QUERY, ROWS, SEARCH, token_windows, tokenize_requests
from vllm_ranker import DataType, MilvusClient
from vllm_ranker.testing import RerankServer
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

NAME = "gw_token_docs"


@pytest.fixture(scope="module")
def gw_tokens(plain: pymilvus.MilvusClient, server: RerankServer) -> Iterator[str]:
    schema = plain.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    add_text_fields(schema, embeddings_url=server.endpoint + "/v1", model="loopback", dim=DIM, send_dimensions=True)
    plain.create_collection(NAME, schema=schema, index_params=text_index_params(plain, dense_index="FLAT"))
    plain.insert(NAME, [{"id": i, "title": f"row {i}", "document": d} for i, d in enumerate(ROWS)])
    plain.flush(NAME)
    plain.load_collection(NAME)
    yield NAME
    plain.drop_collection(NAME)


def test_gateway_equals_client(
    plain: pymilvus.MilvusClient, ours: MilvusClient, server: RerankServer, gw_tokens: str
) -> None:
    chunk: dict[str, Any] = {"tokens": 12, "overlap": 4, "max_chunks": 3, "return": True}
    fn = rerank_function(server.endpoint, [QUERY], chunk=chunk, maxBatch=4)
    expected = ours.search(gw_tokens, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)[0]
    asked_by_client = len(tokenize_requests(server))
    server.reset()
    got = plain.search(gw_tokens, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)[0]
    assert asked_by_client == len(tokenize_requests(server)) == len(ROWS)
    assert [(h["id"], h["distance"], dict(h["entity"])) for h in got] == [
        (h["id"], h["distance"], dict(h["entity"])) for h in expected
    ]
    for hit in got:  # the winner is one of the token windows, as char offsets into the stored text
        won = hit["entity"]["$rerank_chunk"]
        assert (won["start"], won["end"]) == token_windows(ROWS[hit["id"]], 12, 4, 3)[won["index"]]
