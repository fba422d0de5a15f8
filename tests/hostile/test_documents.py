"""Hostile documents and scores, end to end on Milvus Lite and the loopback service, on both clients.

Defined behaviours (README "What it does"):
- empty documents are sent as they are and scored like any other;
- every Unicode plane, RTL and bidi controls, combining marks, emoji sequences and control characters reach the
  service byte for byte and come back unchanged; a lone surrogate cannot be stored (pymilvus refuses it), but
  one in a query is sent (as a JSON escape);
- a nullable text field is refused before any search; a non-nullable one cannot hold None (Milvus refuses the
  insert, or stores the field's default_value, which is then what is reranked);
- 1 MB documents and 10,000 candidates are reranked in the same order as scoring them directly;
- a NaN score is an error naming the provider and the result; +/-Infinity (also what a finite score beyond
  float32 becomes) are ordinary scores: +inf first, -inf last.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pymilvus
import pytest

from tests.conftest import rerank_function, rerank_requests
from vllm_ranker import DataType, Function, FunctionType, MilvusClient, RerankParamError, RerankServiceError
from vllm_ranker.testing import Recorded, Reply, RerankServer, overlap_score

DIM = 4
MB = 1 << 20
QUERY = "AI research progress"

UNICODE_DOCS = {
    "ascii": "AI research progress in plain ASCII",
    "bmp": "Ünïcödé ΑΙ έρευνα Кириллица 中文 日本語 한국어 AI research",
    "emoji": "👩‍👩‍👧‍👦 🦀 🏳️‍🌈 AI 🤖 research",
    "sip": "𠀀𪚥𫝀 AI",  # supplementary ideographic plane (CJK extension B/C/D)
    "tip": "\U00030000\U0003134a research",  # tertiary ideographic plane
    "ssp": "tags\U000e0001\U000e0041\U000e007f variation\U000e0100 progress",  # plane 14
    "private": "\ue000\U000f0000\U0010fffd AI",  # private use, planes 0, 15 and 16
    "rtl": "مرحبا بالعالم שלום עולם \u202eevil.exe\u202c \u200f AI research",
    "combining": "e\u0301\u0302\u0303 Z̴̡̛͔͊a̷l̶g̸o̵ progress",
    "controls": "".join(chr(c) for c in range(32)) + "\x7f\x85\u2028\u2029\ufeff\u200b AI",
    "nonchar": "\ufdd0\ufffe\uffff\U0001fffe AI research",
    "json-ish": '{"results": [{"index": 0}]} \\u0000 \\" AI',
    "empty": "",
    "space": " ",
}
BIG_DOCS = {
    "1mb-words": ("AI research progress " * (MB // 21 + 1))[:MB],
    "1mb-emoji": "🦀" * (MB // 4),  # 1 MB of UTF-8
    "1mb-mixed": ("x" * 1000 + " research\n") * (MB // 1010),
}


def vector(i: int) -> list[float]:
    return [1.0, (i % 7) / 7, (i % 11) / 11, (i % 13) / 13]


def truth(query: str, docs: dict[int, str]) -> list[tuple[int, float]]:
    scored = [(pk, float(np.float32(overlap_score(query, text)))) for pk, text in docs.items()]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


@pytest.fixture(scope="module")
def hostile(milvus: MilvusClient) -> Iterator[dict[int, str]]:
    """A collection of the hostile documents: pk -> document."""
    schema = milvus.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document", DataType.VARCHAR, max_length=4 * MB)
    schema.add_field("note", DataType.VARCHAR, max_length=64, nullable=True)
    schema.add_field("filled", DataType.VARCHAR, max_length=64, default_value="(no text)")
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = milvus.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="COSINE")
    milvus.create_collection("hostile_docs", schema=schema, index_params=index)
    docs = dict(enumerate([*UNICODE_DOCS.values(), *BIG_DOCS.values()]))
    rows = [
        {"id": pk, "document": text, "note": None, "filled": None if pk % 2 else f"text {pk}", "vec": vector(pk)}
        for pk, text in docs.items()
    ]
    for row in rows:  # one by one: a 1 MB row per insert keeps each gRPC message small
        milvus.insert("hostile_docs", [row])
    milvus.flush("hostile_docs")
    yield docs
    milvus.drop_collection("hostile_docs")


def search(client: Any, pks: list[int], field: str = "document", **params: Any) -> Any:
    params = {"reranker": "model", "provider": "vllm", "queries": [QUERY], **params}
    ranker = Function(name="r", input_field_names=[field], function_type=FunctionType.RERANK, params=params)
    return client.search(
        "hostile_docs",
        data=[vector(0)],
        anns_field="vec",
        filter=f"id in {pks}",
        limit=len(pks),
        output_fields=[field],
        ranker=ranker,
    )


def sent_documents(server: RerankServer) -> list[str]:
    return [doc for request in rerank_requests(server) for doc in request.body["documents"]]


def ids_of(docs: dict[str, str], hostile: dict[int, str]) -> list[int]:
    wanted = set(docs.values())
    return [pk for pk, text in hostile.items() if text in wanted]


def test_every_unicode_plane_and_control_character_arrives_intact(
    client: Any, server: RerankServer, hostile: dict[int, str]
) -> None:
    pks = ids_of(UNICODE_DOCS, hostile)
    result = search(client, pks, endpoint=server.endpoint)
    assert sorted(sent_documents(server)) == sorted(hostile[pk] for pk in pks)  # byte for byte, "" included
    assert [(h["id"], h["distance"]) for h in result[0]] == truth(QUERY, {pk: hostile[pk] for pk in pks})
    assert all(h["entity"]["document"] == hostile[h["id"]] for h in result[0])


def test_empty_documents_are_sent_and_scored(client: Any, server: RerankServer, hostile: dict[int, str]) -> None:
    pks = ids_of({"empty": "", "space": " ", "ascii": UNICODE_DOCS["ascii"]}, hostile)
    result = search(client, pks, endpoint=server.endpoint)
    assert sorted(sent_documents(server)) == ["", " ", UNICODE_DOCS["ascii"]]
    assert [h["id"] for h in result[0]] == [pk for pk, _ in truth(QUERY, {pk: hostile[pk] for pk in pks})]


def test_lone_surrogates_cannot_be_stored_but_a_query_may_hold_one(
    client: Any, milvus: MilvusClient, server: RerankServer, hostile: dict[int, str]
) -> None:
    with pytest.raises(pymilvus.MilvusException, match="surrogates not allowed"):
        milvus.insert("hostile_docs", [{"id": 999, "document": "lone \ud800", "vec": vector(999)}])
    pks = ids_of({"ascii": UNICODE_DOCS["ascii"]}, hostile)
    ranker = rerank_function(server.endpoint, ["AI \udfff research"])
    result = client.search(
        "hostile_docs", data=[vector(0)], anns_field="vec", filter=f"id in {pks}", limit=1, ranker=ranker
    )
    assert [r.body["query"] for r in rerank_requests(server)] == ["AI \udfff research"]
    assert result[0][0]["distance"] == pytest.approx(overlap_score("AI \udfff research", UNICODE_DOCS["ascii"]))


def test_one_megabyte_documents_are_reranked_in_order(
    client: Any, server: RerankServer, hostile: dict[int, str]
) -> None:
    pks = ids_of(BIG_DOCS, hostile) + ids_of({"ascii": UNICODE_DOCS["ascii"]}, hostile)
    result = search(client, pks, endpoint=server.endpoint, maxBatch=2)
    assert {len(d.encode()) for d in sent_documents(server)} >= {MB}
    assert sorted(sent_documents(server)) == sorted(hostile[pk] for pk in pks)
    assert [(h["id"], h["distance"]) for h in result[0]] == truth(QUERY, {pk: hostile[pk] for pk in pks})


def test_nullable_text_field_is_refused_before_any_search(
    client: Any, server: RerankServer, hostile: dict[int, str]
) -> None:
    with pytest.raises(RerankParamError, match="function input field cannot be nullable: field note"):
        search(client, [0, 1], field="note", endpoint=server.endpoint)
    assert rerank_requests(server) == []


def test_none_in_a_non_nullable_text_field_is_refused_or_becomes_its_default(
    client: Any, milvus: MilvusClient, server: RerankServer, hostile: dict[int, str]
) -> None:
    with pytest.raises(pymilvus.MilvusException):  # no default_value: Milvus refuses the row
        milvus.insert("hostile_docs", [{"id": 998, "document": None, "vec": vector(998)}])
    pks = [0, 1, 2, 3]
    result = search(client, pks, field="filled", endpoint=server.endpoint)
    assert sorted(sent_documents(server)) == sorted(["(no text)", "(no text)", "text 0", "text 2"])
    assert {h["id"]: h["entity"]["filled"] for h in result[0]} == {
        0: "text 0",
        1: "(no text)",
        2: "text 2",
        3: "(no text)",
    }


# -- 10,000 candidates ------------------------------------------------------------------------------------
WORDS = ["alpha", "beta", "gamma", "delta", "AI", "research", "progress", "energy", "python", "milvus", "rerank"]
TEN_K = 10_000


@pytest.fixture(scope="module")
def ten_thousand(milvus: MilvusClient) -> Iterator[dict[int, str]]:
    schema = milvus.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document", DataType.VARCHAR, max_length=200)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = milvus.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="COSINE")
    milvus.create_collection("ten_thousand", schema=schema, index_params=index)
    docs = {i: f"{WORDS[i % 11]} {WORDS[(i * 7) % 11]} {WORDS[(i * 3) % 11]} document {i}" for i in range(TEN_K)}
    vectors = np.random.default_rng(7).random((TEN_K, DIM), dtype=np.float32) + 0.01
    milvus.insert("ten_thousand", [{"id": i, "document": t, "vec": vectors[i]} for i, t in docs.items()])
    milvus.flush("ten_thousand")
    yield docs
    milvus.drop_collection("ten_thousand")


def test_ten_thousand_candidates_match_direct_scoring(
    client: Any, server: RerankServer, ten_thousand: dict[int, str]
) -> None:
    query = "AI research progress alpha"
    ranker = rerank_function(server.endpoint, [query], maxBatch=256)
    result = client.search(
        "ten_thousand",
        data=[[1.0, 0.5, 0.25, 0.125]],
        anns_field="vec",
        limit=TEN_K,
        output_fields=["document"],
        ranker=ranker,
    )
    assert len(result[0]) == TEN_K
    assert [(h["id"], h["distance"]) for h in result[0]] == truth(query, ten_thousand)
    sent = sent_documents(server)
    assert len(sent) == TEN_K and sorted(sent) == sorted(ten_thousand.values())  # each candidate once
    assert max(len(r.body["documents"]) for r in rerank_requests(server)) == 256
    assert result.extra["rerank"].candidates == TEN_K


# -- non-finite scores ------------------------------------------------------------------------------------
def answer_with(scores_for: Any) -> Any:
    """A fault that answers in vLLM's format with chosen scores, encoded by Python's json (NaN/Infinity literals)."""

    def reply(recorded: Recorded) -> Reply | None:
        if not recorded.path.endswith("rerank"):
            return None  # the collection's TEXTEMBEDDING calls /v1/embeddings on the same server
        documents = recorded.body["documents"]
        scores = scores_for(documents)
        results = [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]
        return Reply(raw=json.dumps({"results": results[::-1]}))  # allow_nan: what a Python service sends

    return reply


def plain_search(client: Any, server: RerankServer, **params: Any) -> Any:
    return client.search(
        "docs",
        data=[QUERY],
        anns_field="dense_vector",
        limit=5,
        output_fields=["document"],
        ranker=rerank_function(server.endpoint, [QUERY], **params),
    )


def test_nan_score_is_an_error_naming_provider_and_result(client: Any, server: RerankServer) -> None:
    server.fault = answer_with(lambda docs: [0.5] * (len(docs) - 1) + [math.nan])
    with pytest.raises(RerankServiceError) as caught:
        plain_search(client, server)
    message = str(caught.value)
    assert "call service failed: vllm at" in message and "score is NaN" in message
    assert "results[0].relevance_score" in message  # answered in reverse: the last document's result is first
    assert "not JSON" not in message  # NaN literals are read, not mistaken for a broken body
    assert caught.value.kind == "malformed"
    assert len(rerank_requests(server)) == 1  # a malformed 2xx answer is not retried


@pytest.mark.filterwarnings("error")  # a score beyond float32 must not raise numpy's overflow RuntimeWarning
@pytest.mark.parametrize("big", [math.inf, 1e39], ids=["infinity", "beyond-float32"])
def test_infinite_scores_sort_first_and_last(client: Any, server: RerankServer, big: float) -> None:
    def scores(docs: list[str]) -> list[float]:
        return [big if i == 1 else -big if i == 0 else 0.25 for i in range(len(docs))]

    server.fault = answer_with(scores)
    result = plain_search(client, server)
    order = rerank_requests(server)[0].body["documents"]
    hits = list(result[0])
    assert hits[0]["distance"] == math.inf and hits[0]["entity"]["document"] == order[1]
    assert hits[-1]["distance"] == -math.inf and hits[-1]["entity"]["document"] == order[0]
    assert all(h["distance"] == np.float32(0.25) for h in hits[1:-1])


@pytest.mark.parametrize(
    ("score", "shown"), [(None, "None is a NoneType"), ("0.5", "'0.5' is a str"), (True, "True is a bool")]
)
def test_non_number_scores_are_errors(client: Any, server: RerankServer, score: Any, shown: str) -> None:
    server.fault = answer_with(lambda docs: [score] * len(docs))
    with pytest.raises(RerankServiceError, match="malformed vllm rerank response") as caught:
        plain_search(client, server)
    assert shown in str(caught.value)
