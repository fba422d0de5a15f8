"""``chunk: {"tokens": N}``: windows of the model's tokens, counted by vLLM's ``/tokenize`` (the loopback server
speaks it with a WordPiece-like uncased tokenizer, testing/tokenize_wire.py), on Milvus Lite and both clients:
the tokenize requests (one per distinct text, vLLM's body), window boundaries, overlap, max_chunks, the best chunk
and its char offsets, the stats, the refusal for a provider without a tokenizer, a tokenizer's failure (raised, or
passthrough), retried like a rerank request, inside the call's one timeout, and a text whose tokens cannot be
placed on it (chunked by words at its tokens-per-word ratio). The alignment itself: property tests."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pymilvus
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import DIM, rerank_function, rerank_requests
from vllm_ranker import DataType, MilvusClient, RerankParamError, RerankServiceError, RerankTimeout
from vllm_ranker.core.chunking import ChunkSpec, token_chunks
from vllm_ranker.core.token_spans import fold, token_spans
from vllm_ranker.testing import Recorded, Reply, RerankServer, overlap_score
from vllm_ranker.testing.rerank_server import vllm_answer
from vllm_ranker.testing.tokenize_wire import UNK, tokenize_answer, wordpiece
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

NAME = "token_docs"
QUERY = "solar energy panels"
ROWS = [
    "The history of the region is long, with many kings and wars. Engineers now install solar panels that turn "
    "sunlight into energy for the homes of the valley.",
    "Wind turbines spin in coastal regions and produce energy for the grid during the storms of winter nights.",
    "Bread dough needs flour, water, salt and yeast, and a warm place to rise slowly overnight before baking.",
    "Ovens.",
    "Énergie solaire: the Pneumonoultramicroscopicsilicovolcanoconiosisvariant survey 😀ok found panels cheaper "
    "each year.",
]
SEARCH: dict[str, Any] = {"anns_field": "dense_vector", "limit": 5}
CHUNK: dict[str, Any] = {"tokens": 12, "overlap": 4, "return": True}


@pytest.fixture(scope="module")
def token_docs(milvus: MilvusClient, server: RerankServer) -> Iterator[str]:
    schema = milvus.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    add_text_fields(schema, embeddings_url=server.endpoint + "/v1", model="loopback", dim=DIM, send_dimensions=True)
    milvus.create_collection(NAME, schema=schema, index_params=text_index_params(milvus, dense_index="FLAT"))
    milvus.insert(NAME, [{"id": i, "title": f"row {i}", "document": d} for i, d in enumerate(ROWS)])
    milvus.flush(NAME)
    yield NAME
    milvus.drop_collection(NAME)


def token_windows(text: str, size: int, overlap: int, max_chunks: int | None = None) -> list[tuple[int, int]]:
    """The expected chunks, written out from the rule: whole words (a word's tokens: the tokenizer's of the word
    alone, as BERT splits at spaces first) while they fit in ``size``; a word of more tokens cut into ``size``-token
    pieces; the next window starting at the furthest-back word that keeps the shared tokens <= overlap and still
    reaches the word after the window."""
    units: list[tuple[int, int, int]] = []  # start, end, tokens
    for match in re.finditer(r"\S+", text):
        pieces = wordpiece(match.group())
        if len(pieces) <= size:
            units.append((match.start(), match.end(), len(pieces)))
            continue
        spans = token_spans(match.group(), pieces)
        assert spans is not None
        cuts = [match.start() + spans[i][0] for i in range(0, len(pieces), size)][1:]
        edges = [match.start(), *cuts, match.end()]
        units.extend((a, b, min(size, len(pieces) - k * size)) for k, (a, b) in enumerate(itertools.pairwise(edges)))
    out: list[tuple[int, int]] = []
    first = 0
    while True:
        last = first
        while last < len(units) and sum(u[2] for u in units[first : last + 1]) <= size:
            last += 1
        out.append((units[first][0], units[last - 1][1]))
        if last == len(units) or (max_chunks and len(out) == max_chunks):
            return out
        following = last
        while following - 1 > first:
            shared = sum(u[2] for u in units[following - 1 : last])
            if shared > overlap or shared + units[last][2] > size:
                break
            following -= 1
        first = following


def tokenize_requests(srv: RerankServer) -> list[Recorded]:
    return [r for r in srv.requests if r.path.endswith("/tokenize")]


def first_stage(milvus: MilvusClient) -> list[Any]:
    return list(pymilvus.MilvusClient.search(milvus, NAME, data=[QUERY], **SEARCH)[0])


def f32(x: float) -> float:
    return float(np.float32(x))


@pytest.mark.parametrize("max_chunks", [None, 2])
def test_token_windows_best_chunk_offsets_and_stats(
    client: Any, milvus: MilvusClient, server: RerankServer, token_docs: str, max_chunks: int | None
) -> None:
    chunk = dict(CHUNK, max_chunks=max_chunks) if max_chunks else CHUNK
    fn = rerank_function(server.endpoint, [QUERY], chunk=chunk, maxBatch=5, model_name="loopback-reranker")
    res = client.search(token_docs, data=[QUERY], ranker=fn, output_fields=["title"], **SEARCH)

    asked = tokenize_requests(server)
    assert sorted(r.body["prompt"] for r in asked) == sorted(ROWS)  # one request per distinct text
    assert all(
        r.body
        == {
            "prompt": r.body["prompt"],
            "add_special_tokens": False,
            "return_token_strs": True,
            "model": "loopback-reranker",
        }
        for r in asked
    )
    expected = {i: token_windows(t, 12, 4, max_chunks) for i, t in enumerate(ROWS)}
    sent = [d for r in rerank_requests(server) for d in r.body["documents"]]
    all_chunks = [ROWS[i][s:e] for i in expected for s, e in expected[i]]
    assert sorted(sent) == sorted(all_chunks)  # every chunk scored, nothing else
    assert all(len(wordpiece(c)) <= 12 for c in sent)  # at most N of the model's tokens each
    assert any(len(wordpiece(c)) == 12 for c in sent)
    assert len(rerank_requests(server)) == math.ceil(len(all_chunks) / 5)  # maxBatch counts chunks
    if max_chunks is None:  # neighbours overlap: the word "kings," (2 tokens) begins one and ends the one before
        assert any(a[1] > b[0] for a, b in itertools.pairwise(expected[0]))
    stats = res.extra["rerank"]
    assert (stats.candidates, stats.chunks, stats.chunk_unit, stats.chunk_fallbacks) == (
        5,
        len(all_chunks),
        "tokens",
        0,
    )
    assert stats.tokenize_requests == len(ROWS) and stats.requests == len(rerank_requests(server))
    assert stats.tokenize_seconds > 0

    best = {}
    for i, spans in expected.items():
        scores = [overlap_score(QUERY, ROWS[i][s:e]) for s, e in spans]
        top = max(range(len(scores)), key=lambda k: (scores[k], -k))
        best[i] = (f32(scores[top]), {"index": top, "start": spans[top][0], "end": spans[top][1]})
    got = [(h["id"], h["distance"], h["entity"]["$rerank_chunk"]) for h in res[0]]
    assert got == sorted([(i, s, c) for i, (s, c) in best.items()], key=lambda t: (-t[1], t[0]))
    for hit in res[0]:  # char offsets into the original text: what the model scored, accents and case kept
        won = hit["entity"]["$rerank_chunk"]
        assert ROWS[hit["id"]][won["start"] : won["end"]] in sent


def test_same_text_tokenized_once_and_v1_endpoint(client: Any, server: RerankServer, token_docs: str) -> None:
    fn = rerank_function(server.endpoint + "/v1/rerank", [QUERY, QUERY], chunk={"tokens": 30})
    res = client.search(token_docs, data=[QUERY, QUERY], ranker=fn, **SEARCH)  # two queries, the same hits
    assert {r.path for r in tokenize_requests(server)} == {"/tokenize"}  # beside /v1/rerank, at the root
    assert len(tokenize_requests(server)) == len(ROWS) == res.extra["rerank"].tokenize_requests
    assert [h["id"] for h in res[0]] == [h["id"] for h in res[1]]


@pytest.mark.parametrize(
    ("provider", "own"), [("tei", {}), ("cohere", {"credential": "not-used", "model_name": "rerank-v3.5"})]
)
def test_refused_without_a_tokenizer(
    client: Any, server: RerankServer, token_docs: str, provider: str, own: dict[str, Any]
) -> None:
    fn = rerank_function(server.endpoint, [QUERY], provider=provider, chunk={"tokens": 200, "overlap": 40}, **own)
    with pytest.raises(RerankParamError, match=rf"chunk.tokens: provider {provider} has no tokenizer endpoint") as e:
        client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH)
    assert '"words": 150, "overlap": 30' in str(e.value)
    assert server.requests == []  # refused before the first-stage search (not even the query's embedding)


def _tokenize_down(recorded: Recorded) -> Reply | None:
    if recorded.path.endswith("/tokenize"):
        return Reply(503, {"error": {"message": "tokenizer overloaded", "type": "ServiceUnavailable", "code": 503}})
    return None


def test_tokenizer_failure_raises_or_passes_through(
    client: Any, milvus: MilvusClient, server: RerankServer, token_docs: str
) -> None:
    server.fault = _tokenize_down
    fn = rerank_function(server.endpoint, [QUERY], chunk=CHUNK, max_retries=0)
    with pytest.raises(RerankServiceError, match=r"vllm at http://127\.0\.0\.1:\d+/tokenize: HTTP 503: tokenizer"):
        client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH)
    passing = rerank_function(server.endpoint, [QUERY], chunk=CHUNK, max_retries=0, on_failure="passthrough")
    res = client.search(token_docs, data=[QUERY], ranker=passing, **SEARCH)
    assert [(h["id"], h["distance"]) for h in res[0]] == [(h["id"], h["distance"]) for h in first_stage(milvus)]
    stats = res.extra["rerank"]
    assert stats.fallback and "tokenizer overloaded" in (stats.error or "")
    assert rerank_requests(server) == []  # nothing reranked once the tokenizer failed


def test_a_server_without_tokenize_says_so(client: Any, token_docs: str) -> None:
    """A vllm endpoint that is no vLLM (here a TEI, whose router answers 404 on /tokenize): the error says why."""
    with RerankServer(wire="tei") as tei:
        fn = rerank_function(tei.endpoint, [QUERY], chunk=CHUNK)
        with pytest.raises(RerankServiceError, match=r"HTTP 404.* the server does not answer /tokenize") as e:
            client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH)
        assert tei.requests and {r.path for r in tei.requests} == {"/tokenize"}  # the first 404 stops the rest
    assert "or count words (chunk.words)" in str(e.value)


def test_tokenize_retried_then_malformed(client: Any, server: RerankServer, token_docs: str) -> None:
    failed: list[Recorded] = []

    def once(recorded: Recorded) -> Reply | None:  # the first tokenize request fails, the retry is served
        if recorded.path.endswith("/tokenize") and not failed:
            failed.append(recorded)
            return Reply(503, {"error": {"message": "busy", "code": 503}})
        return None

    server.fault = once
    fn = rerank_function(server.endpoint, [QUERY], chunk=CHUNK, max_concurrency=1)
    stats = client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH).extra["rerank"]
    assert (stats.retries, stats.tokenize_requests) == (1, len(ROWS) + 1)
    server.reset()
    server.fault = lambda r: Reply(200, {"count": 1, "tokens": [7]}) if r.path.endswith("/tokenize") else None
    with pytest.raises(RerankServiceError, match="malformed vllm tokenize answer: `token_strs` is missing") as e:
        client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH)
    assert e.value.kind == "malformed"


def test_tokenize_and_rerank_share_one_timeout(client: Any, server: RerankServer, token_docs: str) -> None:
    """Each step alone answers within the timeout (3 s answers, a 5 s timeout), both together do not."""

    def slow(recorded: Recorded) -> Reply | None:
        if recorded.path.endswith("/tokenize"):
            return Reply(200, tokenize_answer(recorded.body)[1], delay=3.0)
        if recorded.path.endswith("/rerank"):
            docs = recorded.body["documents"]
            return Reply(200, vllm_answer(QUERY, docs, [0.5] * len(docs), "m"), delay=3.0)
        return None

    server.fault = slow
    fn = rerank_function(server.endpoint, [QUERY], chunk={"tokens": 500}, timeout=5, max_retries=0)
    with pytest.raises(RerankTimeout, match="did not finish within the call's deadline of 5 s"):
        client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH)
    assert len(tokenize_requests(server)) == len(ROWS) and len(rerank_requests(server)) == 1


def test_text_whose_tokens_do_not_fit_falls_back_to_words(client: Any, server: RerankServer, token_docs: str) -> None:
    """A tokenizer whose token strings do not spell the text (another normalisation, say): that text is cut by
    words, as many per chunk as its own tokens-per-word ratio allows, and counted."""
    odd = ROWS[1]

    def garbled(recorded: Recorded) -> Reply | None:
        if recorded.path.endswith("/tokenize") and recorded.body["prompt"] == odd:
            strs = ["@@"] * 36  # 36 tokens that are not its text: 18 words, 2 tokens per word
            return Reply(200, {"count": 36, "max_model_len": 512, "tokens": [5] * 36, "token_strs": strs})
        return None

    server.fault = garbled
    fn = rerank_function(server.endpoint, [QUERY], chunk={"tokens": 12, "overlap": 4})
    stats = client.search(token_docs, data=[QUERY], ranker=fn, **SEARCH).extra["rerank"]
    assert stats.chunk_fallbacks == 1
    words = odd.split()
    assert len(words) == 18
    sent = [d for r in rerank_requests(server) for d in r.body["documents"] if d in odd]
    assert sent == [" ".join(words[a : a + 6]) for a in (0, 4, 8, 12)]  # 6 words, 2 shared


# --- the alignment, pure ---


def test_spans_of_the_tokenizer_conventions() -> None:
    text = "Héllo, wörld! Tokenization😀x  ab"
    wp = token_spans(text, ["hello", ",", "world", "!", "[UNK]", "ab"])
    assert wp is not None and [text[a:b] for a, b in wp] == ["Héllo", ",", "wörld", "!", "Tokenization😀x", "ab"]
    sp = token_spans("The cat", ["▁The", "▁c", "at"])
    assert sp == [(0, 3), (4, 5), (5, 7)]
    byte_level = token_spans("a 😀 b", ["a", "Ġ", "ðŁĺ", "Ģ", "Ġb"])  # the emoji's 4 bytes in two tokens
    assert byte_level == [(0, 1), (2, 2), (2, 3), (2, 3), (4, 5)]
    assert token_spans("a 😀 b", ["▁a", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "▁b"]) == [
        (0, 1), (1, 1), (2, 3), (2, 3), (2, 3), (2, 3), (4, 5)
    ]  # fmt: skip
    assert token_spans("the cat", ["the", "dog"]) is None
    assert token_spans("the cat", ["the"]) is None  # text left over


def test_a_word_longer_than_a_window_is_cut_between_its_tokens() -> None:
    text = "supercalifragilistic x"
    cut, fell_back = token_chunks(text, wordpiece(text), ChunkSpec(3, 1, unit="tokens"))
    assert not fell_back
    assert [text[c.start : c.end] for c in cut] == ["supercalifra", "gilistic x"]


_TEXT = st.text(
    st.sampled_from([*"abcdeXYZ ,.!-'éüÅ😀中\t\n", "ﬁ", "İ", "ß"]), max_size=60
)  # accents, case, punctuation, an emoji, CJK, ligatures, characters whose case changes their length


@settings(max_examples=150, deadline=None)
@given(_TEXT)
def test_wordpiece_tokens_align_on_their_text(text: str) -> None:
    """On the loopback's uncased WordPiece (all-MiniLM-L6-v2's behaviour): every token is placed, in order, on the
    characters it was made of (an [UNK] on a whole word), and nothing but whitespace is left out."""
    tokens = wordpiece(text)
    spans = token_spans(text, tokens)
    assert spans is not None
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    for token, (start, end) in zip(tokens, spans, strict=True):
        if token == UNK:
            assert "😀" in text[start:end] or end - start > 100
        else:
            assert fold(text[start:end]) == fold(token.removeprefix("##"))
    covered = set().union(*(range(s, e) for s, e in spans)) if spans else set()
    assert all(text[i].isspace() or fold(text[i]) == "" for i in range(len(text)) if i not in covered)


@settings(max_examples=100, deadline=None)
@given(_TEXT, st.integers(1, 8), st.integers(0, 7))
def test_token_windows_hold_at_most_n_tokens(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    cut, fell_back = token_chunks(text, wordpiece(text), ChunkSpec(size, overlap, unit="tokens"))
    assert not fell_back
    assert all(len(wordpiece(text[c.start : c.end])) <= size for c in cut)
    assert cut[0].start == (len(text) - len(text.lstrip()) if text.strip() else 0)
    assert all(a.start < b.start and a.end < b.end for a, b in itertools.pairwise(cut))  # each window moves on
