"""The form's chunking and fusion controls: the winning chunk marked in each reranked hit (offsets into the text the
model read, cut on the server), both scores, the fusion's label, the chunk counts, and bad values as plain 400s.
Over real HTTP on Milvus Lite and the loopback rerank server, plus the pure pieces (highlight.with_chunk,
shaping.Shaping)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tests.ui.collections import DOCS
from tests.ui.test_http import compare_body
from vllm_ranker.testing import RerankServer, overlap_score
from vllm_ranker.ui.highlight import with_chunk
from vllm_ranker.ui.shaping import Shaping

QUERY = "parse command line arguments"
TEXTS = {str(i): d for i, (_, d) in enumerate(DOCS)}


def joined(segments: Sequence[Sequence[Any]]) -> str:
    """A text's segments (JSON lists or the helpers' tuples) put back together."""
    return "".join(str(part[0]) for part in segments)


def f32(value: float) -> float:
    return float(np.float32(value))


def sent_documents(rerank: RerankServer) -> list[str]:
    return [d for r in rerank.requests if r.path.endswith("rerank") for d in r.body["documents"]]


def chunk_text(hit: dict[str, Any]) -> str:
    i, j = hit["chunk"]["span"]
    return joined(hit["snippet"][i:j])


# ---- the chunk marked in a text (pure) ----------------------------------------------------------------------------
def test_the_chunk_is_its_own_segments_cut_at_python_offsets_and_kept_as_text() -> None:
    # An emoji before the chunk: one code point in Python, two UTF-16 units in the page's strings. The server cuts.
    text = "😀 intro words <b>then</b> the <script>x()</script> chunk & gzip tail"
    start = text.index("<b>")
    end = text.index(" tail")
    parts, (i, j) = with_chunk(text, start, end, {"gzip"}, width=None)
    assert joined(parts) == text and joined(parts[i:j]) == text[start:end]
    assert joined(parts[i:j]).startswith("<b>then</b>") and "&lt;" not in joined(parts)  # text, never HTML
    assert [t for t, marked in parts[i:j] if marked] == ["gzip"]  # query words still marked inside the chunk
    assert not any(marked for _, marked in parts[:i] + parts[j:])


def test_a_chunk_inside_a_long_text_is_shown_with_a_little_context_and_ellipses() -> None:
    text = " ".join(f"w{n}" for n in range(300))
    start, end = text.index("w150 "), text.index(" w160")
    parts, (i, j) = with_chunk(text, start, end, set(), width=120)
    shown = joined(parts)
    assert shown.startswith("… ") and shown.endswith(" …") and len(shown) <= 120 + 4
    assert joined(parts[i:j]) == text[start:end] and " w149 " in joined(parts[:i]) + " "
    assert "w161" in joined(parts[j:])  # room left after the chunk shows what follows it


def test_a_chunk_longer_than_the_snippet_is_cut_at_a_word() -> None:
    text = "lead " + " ".join(f"c{n}" for n in range(200)) + " end"
    parts, (i, j) = with_chunk(text, 5, len(text) - 4, set(), width=60)
    kept = joined(parts[i:j])
    assert text[5:].startswith(kept) and not kept.endswith(" ") and len(kept) <= 60
    assert text[5 + len(kept)] == " " and parts[j:] == [(" …", False)]


def test_offsets_past_the_text_are_clamped() -> None:
    parts, (i, j) = with_chunk("short", 3, 99, set())
    assert joined(parts) == "short" and joined(parts[i:j]) == "rt"


# ---- the form's values as the Function's params (pure) -------------------------------------------------------------
def test_controls_become_the_functions_params_and_labels() -> None:
    shaping = Shaping.parse(
        {"chunk_words": "200", "chunk_overlap": "40", "max_chunks": "8", "fuse": "weighted", "fuse_weight": "0.7"}
        | {"fuse_k": "not read for weighted"}
    )
    assert shaping.params() == {
        "keep_first_stage": True,
        "chunk": {"words": 200, "overlap": 40, "return": True, "max_chunks": 8},
        "fuse": {"method": "weighted", "weight": 0.7},
    }
    told = shaping.describe()
    assert told["score_name"] == "fused" and "weighted (0.7 model + 0.3 first stage" in told["score_label"]
    assert told["chunking"] == "chunks of 200 words, overlap 40, at most 8 per document"
    # Empty boxes: documents whole, the model's score; the page still asks for the first stage's score and rank.
    empty = Shaping.parse({"chunk_words": "", "chunk_overlap": "", "max_chunks": "", "fuse": "none"})
    assert empty.params() == {"keep_first_stage": True}
    assert empty.describe() == {"score_name": "model", "score_label": "model score", "chunking": None}
    assert Shaping.parse({"fuse": "rrf", "fuse_k": ""}).params()["fuse"] == {"method": "rrf", "k": 60.0}


# ---- over HTTP ---------------------------------------------------------------------------------------------------
def test_each_reranked_hit_marks_its_best_chunk_and_shows_both_scores(http: Any, rerank: RerankServer) -> None:
    answer = http.post("/api/compare", json=compare_body(chunk_words="4", chunk_overlap="1", max_chunks="")).json()
    assert "error" not in answer, answer
    assert answer["score_name"] == "model" and answer["score_label"] == "model score"
    assert answer["chunking"] == "chunks of 4 words, overlap 1" and answer["kept_from"] == "the first stage"
    stats, sent = answer["stats"], sent_documents(rerank)
    assert stats["chunk_unit"] == "words" and stats["chunks"] == len(sent) > stats["candidates"]
    left = {h["key"]: h for h in answer["first"]}
    for hit in answer["reranked"]:
        text, chunk = TEXTS[hit["key"]], hit["chunk"]
        # The marked span is text[start:end] of the text field (what the model read), and it is the chunk of this
        # document that the model scored highest: the hit's score.
        assert chunk_text(hit) == text[chunk["start"] : chunk["end"]] and chunk_text(hit) in sent
        own = [d for d in sent if d in text]
        assert hit["score"] == f32(max(overlap_score(QUERY, d) for d in own))
        assert hit["score"] == f32(overlap_score(QUERY, chunk_text(hit)))
        assert joined(hit["snippet"]) == text  # short documents are shown whole around the chunk
        if hit["key"] in left:  # the first stage's own score and rank, as the left list shows them
            assert hit["first_stage"] == {"score": left[hit["key"]]["score"], "rank": left[hit["key"]]["rank"]}
    assert any(h["key"] in left for h in answer["reranked"])
    assert any(h["chunk"]["index"] > 0 for h in answer["reranked"])  # not merely every document's first words
    assert all("chunk" not in h and "first_stage" not in h for h in answer["first"])


def test_without_chunks_hits_carry_no_chunk_but_both_scores(http: Any, rerank: RerankServer) -> None:
    answer = http.post("/api/compare", json=compare_body()).json()
    assert answer["stats"]["chunks"] == 0 and answer["stats"]["chunk_unit"] == "" and answer["chunking"] is None
    assert sent_documents(rerank) and all(d in TEXTS.values() for d in sent_documents(rerank))  # whole documents
    assert all("chunk" not in h and h["first_stage"]["rank"] >= 1 for h in answer["reranked"])


def test_rrf_fusion_is_labelled_and_scores_are_the_fused_ones(http: Any, rerank: RerankServer) -> None:
    answer = http.post("/api/compare", json=compare_body(fuse="rrf", fuse_k="10", fuse_weight="ignored")).json()
    assert "error" not in answer, answer
    assert answer["score_name"] == "fused" and answer["score_label"].startswith("fused score: RRF (k = 10)")
    # Model ranks within the window (every document sent), first-stage ranks as kept: 1/(k+a) + 1/(k+b).
    by_text = {d: k for k, d in TEXTS.items()}
    model = sorted((by_text[d] for d in sent_documents(rerank)), key=lambda k: -f32(overlap_score(QUERY, TEXTS[k])))
    for hit in answer["reranked"]:
        expected = 1 / (10 + 1 + model.index(hit["key"])) + 1 / (10 + hit["first_stage"]["rank"])
        assert hit["score"] == pytest.approx(expected, rel=1e-6)


def test_weighted_fusion_is_labelled_and_mixes_min_max_normalised_scores(http: Any, rerank: RerankServer) -> None:
    # window = shown: every candidate comes back, so the first stage's best and worst are both in the answer.
    body = compare_body(window=8, shown=8, fuse="weighted", fuse_weight="0.7", fuse_k="ignored")
    answer = http.post("/api/compare", json=body).json()
    assert "error" not in answer, answer
    assert answer["score_label"].startswith("fused score: weighted (0.7 model + 0.3 first stage")
    hits = answer["reranked"]
    assert len(hits) == 8 and all(0 <= h["score"] <= 1 for h in hits)
    model = {h["key"]: f32(overlap_score(QUERY, TEXTS[h["key"]])) for h in hits}
    first = {h["first_stage"]["rank"]: h["first_stage"]["score"] for h in hits}
    best, worst = first[1], first[8]  # Milvus's order is best first, whatever its metric's direction
    low, high = min(model.values()), max(model.values())
    for hit in hits:
        mine = (model[hit["key"]] - low) / (high - low)
        theirs = (hit["first_stage"]["score"] - worst) / (best - worst)
        assert hit["score"] == pytest.approx(0.7 * mine + 0.3 * theirs, abs=1e-6)


def test_the_document_marks_the_chunk_it_is_given(http: Any) -> None:
    params = {"collection": "python_docs", "key": "0", "text_field": "document", "query": "command"}
    answer = http.get("/api/document", params=params | {"chunk_start": "21", "chunk_end": "52"}).json()
    i, j = answer["chunk"]["span"]
    assert joined(answer["text"]) == DOCS[0][1] and joined(answer["text"][i:j]) == DOCS[0][1][21:52]
    assert [t for t, marked in answer["text"][i:j] if marked] == ["command"]
    plain = http.get("/api/document", params=params).json()
    assert "chunk" not in plain and joined(plain["text"]) == DOCS[0][1]
    for bad in ({"chunk_start": "x", "chunk_end": "3"}, {"chunk_start": "9", "chunk_end": "3"}, {"chunk_end": "3"}):
        refused = http.get("/api/document", params=params | bad)
        assert refused.status_code == 400 and "chunk_start" in refused.json()["error"]
