"""Issue 29's params end to end on Milvus Lite and the loopback stand-in (score: word overlap), both clients:
chunk (boundaries, overlap, max_chunks, best chunk, maxBatch counting chunks, $rerank_chunk), document_template
(several fields, a null one rendered as ""), keep_first_stage, fuse (rrf, weighted) and their validation."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pymilvus
import pytest

from tests.conftest import DIM, rerank_function, rerank_requests
from vllm_ranker import DataType, MilvusClient, RerankParamError
from vllm_ranker.core.chunking import ChunkSpec, chunks
from vllm_ranker.testing import RerankServer, overlap_score
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

NAME = "long_docs"
QUERY = "solar energy panels"
OTHER = "bread dough rises overnight"  # a second text for a dense sub-request
ROWS = [
    (
        "Solar power",
        "The history of the region is long with many kings and wars. Engineers now install solar panels "
        "that turn sunlight into energy for homes.",
        "roofs",
    ),
    ("Wind", "Wind turbines spin in coastal regions and produce energy for the grid during storms at night.", None),
    ("Cooking", "Bread dough needs flour water salt and yeast and a warm place to rise slowly overnight.", "bread"),
    ("Solar cooking", "Ovens.", None),
    ("Grid", "Energy storage keeps the grid stable when solar output falls in the evening hours.", None),
]
SEARCH: dict[str, Any] = {"anns_field": "dense_vector", "limit": 5}


@pytest.fixture(scope="module")
def long_docs(milvus: MilvusClient, server: RerankServer) -> Iterator[str]:
    schema = milvus.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("subtitle", DataType.VARCHAR, max_length=64, nullable=True)
    schema.add_field("year", DataType.INT64)
    add_text_fields(schema, embeddings_url=server.endpoint + "/v1", model="loopback", dim=DIM, send_dimensions=True)
    milvus.create_collection(NAME, schema=schema, index_params=text_index_params(milvus, dense_index="FLAT"))
    milvus.insert(
        NAME,
        [{"id": i, "title": t, "document": d, "subtitle": s, "year": 2000 + i} for i, (t, d, s) in enumerate(ROWS)],
    )
    milvus.flush(NAME)
    yield NAME
    milvus.drop_collection(NAME)


def first_stage(milvus: MilvusClient, **kwargs: Any) -> list[Any]:
    return list(pymilvus.MilvusClient.search(milvus, NAME, data=[QUERY], **SEARCH, **kwargs)[0])


def f32(x: float) -> float:
    return float(np.float32(x))


def windows(text: str, words: int, overlap: int, max_chunks: int | None = None) -> list[tuple[int, int]]:
    """The expected chunks, written out independently: word spans stepping words - overlap."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    out, first = [], 0
    while True:
        last = min(first + words, len(spans)) - 1
        out.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1 or (max_chunks and len(out) == max_chunks):
            return out
        first += words - overlap


def test_chunk_boundaries_overlap_and_max_chunks() -> None:
    text = "a b  c d e f g h i j"
    cut = [text[c.start : c.end] for c in chunks(text, ChunkSpec(4, 1))]
    assert cut == ["a b  c d", "d e f g", "g h i j"]  # the last chunk ends at the last word; spacing kept
    assert [text[c.start : c.end] for c in chunks(text, ChunkSpec(4, 1, max_chunks=2))] == ["a b  c d", "d e f g"]
    assert [text[c.start : c.end] for c in chunks(text, ChunkSpec(20))] == [text]
    assert [(c.start, c.end) for c in chunks("", ChunkSpec(3))] == [(0, 0)]


@pytest.mark.parametrize("max_chunks", [None, 2])
def test_chunks_scored_in_batches_and_best_chunk_wins(
    client: Any, milvus: MilvusClient, server: RerankServer, long_docs: str, max_chunks: int | None
) -> None:
    chunk: dict[str, Any] = {"words": 6, "overlap": 2, "return": True}
    if max_chunks:
        chunk["max_chunks"] = max_chunks
    fn = rerank_function(server.endpoint, [QUERY], chunk=chunk, maxBatch=4)
    res = client.search(long_docs, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)
    texts = {h["id"]: ROWS[h["id"]][1] for h in first_stage(milvus)}
    expected_chunks = {pk: windows(t, 6, 2, max_chunks) for pk, t in texts.items()}
    sent = [d for r in rerank_requests(server) for d in r.body["documents"]]
    all_chunks = [texts[pk][s:e] for pk in texts for s, e in expected_chunks[pk]]
    assert sorted(sent) == sorted(all_chunks)  # every chunk scored, nothing else
    assert len(rerank_requests(server)) == math.ceil(len(all_chunks) / 4)  # maxBatch counts chunks
    stats = res.extra["rerank"]
    assert (stats.candidates, stats.chunks, stats.chunk_unit) == (5, len(all_chunks), "words")
    best = {}
    for pk, spans in expected_chunks.items():
        scores = [overlap_score(QUERY, texts[pk][s:e]) for s, e in spans]
        top = max(range(len(scores)), key=lambda i: (scores[i], -i))
        best[pk] = (f32(scores[top]), {"index": top, "start": spans[top][0], "end": spans[top][1]})
    got = [(h["id"], h["distance"], h["entity"]["$rerank_chunk"]) for h in res[0]]
    assert got == sorted([(pk, s, c) for pk, (s, c) in best.items()], key=lambda t: (-t[1], t[0]))
    assert all(set(h["entity"]) == {"title", "$rerank_chunk"} for h in res[0])


def test_chunk_winner_hidden_unless_asked(client: Any, server: RerankServer, long_docs: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], chunk='{"words": 5}')  # the JSON text pymilvus sends
    res = client.search(long_docs, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)
    assert all(set(h["entity"]) == {"title"} for h in res[0])
    assert res.extra["rerank"].chunks > 5


def test_template_over_several_fields_with_a_null(client: Any, server: RerankServer, long_docs: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], document_template="{title}\n{document} ({subtitle})")
    res = client.search(long_docs, data=[QUERY], ranker=fn, output_fields=["year"], **SEARCH)
    rendered = {i: f"{t}\n{d} ({s or ''})" for i, (t, d, s) in enumerate(ROWS)}
    sent = sorted(d for r in rerank_requests(server) for d in r.body["documents"])
    assert sent == sorted(rendered.values())
    expected = sorted(((i, f32(overlap_score(QUERY, t))) for i, t in rendered.items()), key=lambda p: (-p[1], p[0]))
    assert [(h["id"], h["distance"]) for h in res[0]] == expected
    assert all(h["entity"] == {"year": 2000 + h["id"]} for h in res[0])  # fetched fields dropped unless asked
    asked = client.search(long_docs, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)
    assert all(h["entity"] == {"title": ROWS[h["id"]][0]} for h in asked[0])


def test_keep_first_stage(client: Any, milvus: MilvusClient, server: RerankServer, long_docs: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], keep_first_stage=True)
    res = client.search(long_docs, data=[QUERY], ranker=fn, **SEARCH)
    plain = first_stage(milvus)
    where = {h["id"]: (h["distance"], rank) for rank, h in enumerate(plain, start=1)}
    for hit in res[0]:
        assert (hit["entity"]["$first_stage_score"], hit["entity"]["$first_stage_rank"]) == where[hit["id"]]
        assert hit["distance"] == f32(overlap_score(QUERY, ROWS[hit["id"]][1]))  # distance stays the model's


def _model_scores(plain: list[Any]) -> list[float]:
    return [overlap_score(QUERY, ROWS[h["id"]][1]) for h in plain]


def _minmax(xs: list[float]) -> list[float]:
    low, high = min(xs), max(xs)
    return [(x - low) / (high - low) if high > low else 1.0 for x in xs]


def test_fuse_rrf(client: Any, milvus: MilvusClient, server: RerankServer, long_docs: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], fuse={"method": "rrf", "k": 10})
    res = client.search(long_docs, data=[QUERY], ranker=fn, **SEARCH)
    plain = first_stage(milvus)
    model = _model_scores(plain)
    model_rank = {i: r for r, i in enumerate(sorted(range(5), key=lambda i: (-model[i], i)), start=1)}
    fused = [(h["id"], f32(1 / (10 + model_rank[i]) + 1 / (10 + i + 1))) for i, h in enumerate(plain)]
    assert [(h["id"], h["distance"]) for h in res[0]] == sorted(fused, key=lambda p: (-p[1], p[0]))


def test_fuse_weighted(client: Any, milvus: MilvusClient, server: RerankServer, long_docs: str) -> None:
    fn = rerank_function(server.endpoint, [QUERY], fuse={"method": "weighted", "weight": 0.7})
    res = client.search(long_docs, data=[QUERY], ranker=fn, **SEARCH)
    plain = first_stage(milvus)
    distances = [h["distance"] for h in plain]
    assert distances[0] >= distances[-1]  # the dense field's metric: larger is better, so no turning around
    first = _minmax(distances)
    model = _minmax(_model_scores(plain))
    fused = [(h["id"], f32(0.7 * m + 0.3 * f)) for h, m, f in zip(plain, model, first, strict=True)]
    assert [(h["id"], h["distance"]) for h in res[0]] == sorted(fused, key=lambda p: (-p[1], p[0]))


def test_fuse_weighted_turns_smaller_is_better_around() -> None:
    from vllm_ranker.core.fusion import first_stage_scores

    assert first_stage_scores([0.5, 1.0, 2.5]) == [1.0, 0.75, 0.0]  # L2: Milvus's best-first order ascends
    assert first_stage_scores([0.9, 0.5, 0.1]) == [1.0, 0.5, 0.0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chunk": {"words": 10, "size": 3}}, "chunk: unknown key size: use only words, overlap, max_chunks"),
        ({"chunk": {"words": 10, "overlap": 10}}, "chunk.overlap: 10 must be smaller than chunk.words (10)"),
        ({"chunk": {"words": 0}}, "chunk.words: 0 must be >= 1"),
        ({"chunk": {"words": 5, "max_chunks": 0}}, "chunk.max_chunks: 0 must be >= 1"),
        ({"chunk": {"overlap": 2}}, "chunk: words is missing"),
        ({"chunk": "ten"}, "chunk: ten is not a JSON object"),
        ({"chunk": {"tokens": 100, "words": 80}}, "chunk: both words and tokens are given: give one"),
        ({"document_template": "{title} {abstract}"}, "document_template: field abstract not found"),
        ({"document_template": "{year}: {document}"}, "document_template: field year is INT64, not VARCHAR"),
        ({"document_template": "plain text"}, "document_template: 'plain text' names no field"),
        ({"document_template": "{title!r}"}, "is not a field name"),
        ({"fuse": {"method": "borda"}}, "fuse.method: borda is not supported: use rrf or weighted"),
        ({"fuse": {"method": "rrf", "k": 0}}, "fuse.k: 0 must be greater than 0"),
        ({"fuse": {"method": "weighted", "weight": 1.5}}, "fuse.weight: 1.5 must be between 0 and 1"),
        ({"fuse": {"method": "rrf", "weight": 0.5}}, "fuse.weight does not apply to method rrf"),
        ({"fuse": {"method": "rrf", "x": 1}}, "fuse: unknown key x"),
        ({"keep_first_stage": "maybe"}, "keep_first_stage: maybe is not a valid bool"),
    ],
)
def test_validation_before_any_search(
    client: Any, server: RerankServer, long_docs: str, params: dict[str, Any], message: str
) -> None:
    fn = rerank_function(server.endpoint, [QUERY], **params)
    with pytest.raises(RerankParamError) as raised:
        client.search(long_docs, data=[QUERY], ranker=fn, **SEARCH)
    assert message in str(raised.value)
    assert server.requests == []  # not even the query's embedding: refused before the first-stage search


def test_fuse_and_keep_first_stage_in_hybrid_search(
    client: Any, milvus: MilvusClient, server: RerankServer, long_docs: str
) -> None:
    """The first stage of hybrid_search is the union of its sub-requests (first occurrence wins): its rank is the
    position in that union and its score the distance of the sub-request the hit came first from."""
    # BM25 on the query (only the documents sharing a word), then dense on another text: the union's order is
    # neither list's, and its dense-only hits keep their (cosine) distance.
    subs = [
        (QUERY, {"anns_field": "sparse_vector", "search_params": {"metric_type": "BM25"}, "limit": 5}),
        (OTHER, {"anns_field": "dense_vector", "search_params": {"metric_type": "COSINE"}, "limit": 5}),
    ]
    reqs = [pymilvus.AnnSearchRequest([t], k["anns_field"], k["search_params"], limit=5) for t, k in subs]
    fn = rerank_function(server.endpoint, [QUERY], keep_first_stage=True, fuse={"method": "rrf", "k": 10})
    res = client.hybrid_search(long_docs, reqs, ranker=fn, limit=5)

    union: dict[int, float] = {}
    lists = []
    for text, kwargs in subs:
        hits = pymilvus.MilvusClient.search(milvus, NAME, data=[text], **kwargs)[0]
        lists.append([h["id"] for h in hits])
        for hit in hits:
            union.setdefault(hit["id"], hit["distance"])
    order = list(union)
    assert len(order) == 5 and order not in lists, (order, lists)
    model = [overlap_score(QUERY, ROWS[pk][1]) for pk in order]
    model_rank = {i: r for r, i in enumerate(sorted(range(5), key=lambda i: (-model[i], i)), start=1)}
    fused = [(pk, f32(1 / (10 + model_rank[i]) + 1 / (10 + i + 1))) for i, pk in enumerate(order)]
    assert [(h["id"], h["distance"]) for h in res[0]] == sorted(fused, key=lambda p: (-p[1], p[0]))
    for hit in res[0]:
        kept = (hit["entity"]["$first_stage_score"], hit["entity"]["$first_stage_rank"])
        assert kept == (union[hit["id"]], 1 + order.index(hit["id"]))
