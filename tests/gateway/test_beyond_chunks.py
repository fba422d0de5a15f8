"""Issue 29's params through the gateway: plain pymilvus (which sends the dict params as JSON text) answers what
vllm_ranker.MilvusClient answers on the same backend: chunks and the winning chunk, a template over several fields
with a null one, both scores, both fusions; a bad param refused with the same message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest

from tests.conftest import DIM, rerank_function
from tests.milvus.test_beyond_chunks import QUERY, ROWS, SEARCH
from vllm_ranker import DataType, MilvusClient
from vllm_ranker.testing import RerankServer
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

NAME = "gw_long_docs"


@pytest.fixture(scope="module")
def gw_long(plain: pymilvus.MilvusClient, server: RerankServer) -> Iterator[str]:
    schema = plain.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("subtitle", DataType.VARCHAR, max_length=64, nullable=True)
    schema.add_field("year", DataType.INT64)
    add_text_fields(schema, embeddings_url=server.endpoint + "/v1", model="loopback", dim=DIM, send_dimensions=True)
    plain.create_collection(NAME, schema=schema, index_params=text_index_params(plain, dense_index="FLAT"))
    plain.insert(
        NAME,
        [{"id": i, "title": t, "document": d, "subtitle": s, "year": 2000 + i} for i, (t, d, s) in enumerate(ROWS)],
    )
    plain.flush(NAME)
    plain.load_collection(NAME)
    yield NAME
    plain.drop_collection(NAME)


def rows(result: Any) -> list[tuple[Any, float, dict[str, Any]]]:
    return [(h["id"], h["distance"], dict(h["entity"])) for h in result[0]]


@pytest.mark.parametrize(
    ("params", "output_fields"),
    [
        ({"chunk": {"words": 6, "overlap": 2, "max_chunks": 3, "return": True}, "maxBatch": 4}, ["title"]),
        ({"document_template": "{title}\n{document} ({subtitle})"}, ["year"]),
        ({"keep_first_stage": True}, ["title"]),
        ({"fuse": {"method": "rrf", "k": 10}, "keep_first_stage": True}, []),
        ({"fuse": {"method": "weighted", "weight": 0.7}}, ["subtitle"]),
    ],
)
def test_gateway_equals_client(
    plain: pymilvus.MilvusClient,
    ours: MilvusClient,
    server: RerankServer,
    gw_long: str,
    params: dict[str, Any],
    output_fields: list[str],
) -> None:
    fn = rerank_function(server.endpoint, [QUERY], **params)
    expected = rows(ours.search(gw_long, data=[QUERY], ranker=fn, output_fields=output_fields, **SEARCH))
    got = rows(plain.search(gw_long, data=[QUERY], ranker=fn, output_fields=output_fields, **SEARCH))
    assert [(pk, d) for pk, d, _ in got] == [(pk, d) for pk, d, _ in expected]
    assert [e for _, _, e in got] == [e for _, _, e in expected]
    assert any(k.startswith("$") for k in expected[0][2]) == any(k in str(params) for k in ("keep", "return"))


def test_gateway_refuses_a_bad_param(plain: pymilvus.MilvusClient, server: RerankServer, gw_long: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], chunk={"words": 4, "overlap": 4})
    with pytest.raises(pymilvus.MilvusException, match=r"chunk.overlap: 4 must be smaller than chunk.words \(4\)"):
        plain.search(gw_long, data=[QUERY], ranker=fn, **SEARCH)
