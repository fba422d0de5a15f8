"""Every endpoint of the page over real HTTP (uvicorn on loopback, httpx), on Milvus Lite and the loopback rerank
server."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx
import numpy as np
import pytest

from tests.ui.collections import DOCS
from tests.ui.conftest import serve
from vllm_ranker.testing import RerankServer, overlap_score
from vllm_ranker.ui.app import create_app


def compare_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "collection": "python_docs",
        "text_field": "document",
        "query": "parse command line arguments",
        "stage": "bm25",
        "window": 20,
        "shown": 5,
        "provider": "vllm",
        "endpoint": "",
        "model": "",
        "max_batch": 8,
    }
    return {**body, **overrides}


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def model_order(query: str, keys: list[str], texts: dict[str, str]) -> list[str]:
    # The library's order: float32 score descending, primary key ascending on ties.
    return sorted(keys, key=lambda k: (-float(np.float32(overlap_score(query, texts[k]))), int(k)))


def config_of(page: str) -> dict[str, Any]:
    """The config the server gives the page's script."""
    found = re.search(r'<script id="config" type="application/json">(.*?)</script>', page)
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def joined(segments: list[list[Any]]) -> str:
    return "".join(text for text, _ in segments)


# ---- the page and its static files --------------------------------------------------------------------------
def test_page_serves_the_form_and_its_config(http: Any, rerank: RerankServer) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = config_of(page.text)
    assert config["endpoint"] == rerank.endpoint and "vllm" in config["providers"] and "cohere" in config["providers"]
    for needle in ('id="query"', 'id="first"', 'id="reranked"', 'id="timing"', 'id="eval-file"', "/static/app.js"):
        assert needle in page.text
    assert not re.search(r'(src|href)="https?://', page.text)  # nothing loaded from elsewhere: works offline


def test_static_files_are_served_from_the_package(http: Any) -> None:
    css = http.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for name in ("app.js", "common.js", "evaluation.js"):  # app.js imports the other two
        js = http.get(f"/static/{name}")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert "innerHTML" not in js.text  # server texts only ever go in through textContent
    assert "textContent" in http.get("/static/common.js").text
    assert http.get("/static/missing.js").status_code == 404


def test_page_never_shows_the_endpoints_user_info(ui_db: str, rerank: RerankServer) -> None:
    secret = rerank.endpoint.replace("http://", "http://admin:s3cr3t-pw@")
    app = create_app(f"http://root:m1lvus-pw@127.0.0.1:{dead_endpoint().rsplit(':', 1)[1]}", secret)
    with serve(app) as url:
        page = httpx.get(url + "/").text
    assert "s3cr3t-pw" not in page and "m1lvus-pw" not in page and rerank.endpoint in page


# ---- collections ----------------------------------------------------------------------------------------------
def test_collections_lists_fields_and_allowed_stages(http: Any) -> None:
    answer = http.get("/api/collections").json()
    views = {c["name"]: c for c in answer["collections"]}
    assert list(views) == ["bm25_only", "ingested", "python_docs"]
    docs = views["python_docs"]
    assert docs["stages"] == ["dense", "bm25", "hybrid"] and docs["dense_from_text"] is True
    assert docs["default_text"] == "document" and docs["title_field"] == "title" and docs["pk_int"] is True
    assert set(docs["text_fields"]) == {"title", "document"}
    ingested = views["ingested"]
    assert ingested["stages"] == ["dense", "bm25", "hybrid"] and ingested["dense_from_text"] is False
    assert ingested["pk"] == "id" and ingested["pk_int"] is False and ingested["default_text"] == "text"
    assert views["bm25_only"]["stages"] == ["bm25"] and views["bm25_only"]["default_text"] == "body"
    # Made and loaded by this very process: still loaded (test_milvus_states has the file a new process opens).
    assert {v["load_state"] for v in views.values()} == {"loaded"} and answer["exists"] is True


# ---- compare ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["bm25", "dense", "hybrid"])
def test_compare_reranks_the_first_stage_and_reports_moves(http: Any, rerank: RerankServer, stage: str) -> None:
    query = "parse command line arguments"
    answer = http.post("/api/compare", json=compare_body(stage=stage)).json()
    assert "error" not in answer, answer
    texts = {str(i): d for i, (_, d) in enumerate(DOCS)}
    first, reranked = answer["first"], answer["reranked"]
    assert [h["rank"] for h in first] == [1, 2, 3, 4, 5] and len(reranked) == 5
    assert all(joined(h["snippet"]) == texts[h["key"]] for h in first + reranked)
    assert all(h["title"] == DOCS[int(h["key"])][0] for h in reranked)
    # The reranked list is the model's order of every candidate the rerank was sent.
    sent = [d for r in rerank.requests if r.path.endswith("rerank") for d in r.body["documents"]]
    by_text = {d: k for k, d in texts.items()}
    assert [h["key"] for h in reranked] == model_order(query, [by_text[d] for d in sent], texts)[:5]
    scores = [h["score"] for h in reranked]
    assert scores == sorted(scores, reverse=True) and max(h["bar"] for h in reranked) == 1.0
    # Moves agree with the two lists.
    first_rank = {h["key"]: h["rank"] for h in first}
    for hit in reranked:
        was = first_rank.get(hit["key"])
        expected = "new" if was is None else "up" if was > hit["rank"] else "down" if was < hit["rank"] else "same"
        assert hit["move"]["kind"] == expected
    new_keys = {h["key"] for h in reranked}
    assert [h["key"] for h in answer["dropped"]] == [h["key"] for h in first if h["key"] not in new_keys]
    assert any(h["move"]["kind"] != "same" for h in reranked)
    # A marked word is a query word.
    assert any(
        marked and text.lower() in {"parse", "command", "line", "arguments"}
        for h in reranked
        for text, marked in h["snippet"]
    )
    stats, timing = answer["stats"], answer["timing_ms"]
    assert stats["requests"] >= 1 and stats["batches"] == stats["requests"] and stats["candidates"] >= 5
    assert stats["candidates"] == answer["candidates"]["reranked"] and stats["fallback"] is False
    for key in ("first_stage_search", "rerank_service", "rerank_overhead", "rerank_step", "first_stage_call", "total"):
        assert timing[key] >= 0
    assert timing["rerank_service"] > 0 and timing["total"] >= timing["rerank_step"]


def test_window_caps_what_is_reranked_and_batches_follow_max_batch(http: Any, rerank: RerankServer) -> None:
    answer = http.post("/api/compare", json=compare_body(stage="dense", window=12, shown=3, max_batch=5)).json()
    assert answer["stats"]["candidates"] == 12 and answer["stats"]["batches"] == 3
    assert sorted(len(r.body["documents"]) for r in rerank.requests if r.path.endswith("rerank")) == [2, 5, 5]


def test_ingested_collections_get_the_query_embedded_by_the_endpoint(http: Any, rerank: RerankServer) -> None:
    answer = http.post(
        "/api/compare", json=compare_body(collection="ingested", text_field="text", stage="dense")
    ).json()
    assert "error" not in answer, answer
    assert [r.path for r in rerank.requests if r.path.endswith("embeddings")] == ["/v1/embeddings"]
    assert answer["timing_ms"]["embed_query"] > 0 and answer["first"][0]["key"].startswith("doc-")
    assert "query embedded here" in answer["stage_label"]


def test_embedder_and_reranker_are_two_services_like_serve_runs_them(ui_db: str, rerank: RerankServer) -> None:
    """`vllm-ranker serve` runs the embedder on --port and the reranker on --rerank-port: queries are embedded by
    the first, the page's default rerank endpoint is the second."""
    with (
        RerankServer() as reranker,
        serve(create_app(ui_db, rerank.endpoint, rerank_endpoint=reranker.endpoint)) as url,
    ):
        page = httpx.get(url + "/").text
        assert reranker.endpoint in page
        body = compare_body(collection="ingested", text_field="text", stage="dense")
        answer = httpx.post(url + "/api/compare", json=body, timeout=60).json()
        assert "error" not in answer, answer
        assert [r.path for r in rerank.requests] == ["/v1/embeddings"]
        assert reranker.requests and all(r.path.endswith("rerank") for r in reranker.requests)


def test_score_cache_hits_are_counted(http: Any) -> None:
    body = compare_body(query="read a gzip compressed file", cache=True)
    http.post("/api/compare", json=body)
    again = http.post("/api/compare", json=body).json()
    assert again["stats"]["cache_hits"] == again["stats"]["candidates"] and again["stats"]["requests"] == 0


def test_a_query_without_hits_sends_nothing(http: Any, rerank: RerankServer) -> None:
    answer = http.post("/api/compare", json=compare_body(query="xyzzy plugh")).json()
    assert answer["first"] == answer["reranked"] == answer["dropped"] == []
    assert answer["stats"]["requests"] == 0 and not [r for r in rerank.requests if r.path.endswith("rerank")]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"query": "  "}, "missing query"),
        ({"window": "many"}, "window must be a whole number"),
        ({"window": 0}, "window must be between 1 and 1000"),
        ({"shown": 30, "window": 20}, "shown (30) must be at most the window (20)"),
        ({"collection": "bm25_only", "text_field": "body", "stage": "dense"}, "has no 'dense' first stage"),
        ({"text_field": "nope"}, "'nope' is not a text (VARCHAR) field"),
        # the chunk and fusion controls (ui/shaping.py)
        ({"chunk_words": "4", "chunk_overlap": "4"}, "overlap (4) must be smaller than chunk words (4)"),
        ({"chunk_words": "-3"}, "chunk words must be between 1 and 100000, got -3"),
        ({"chunk_words": "abc"}, "chunk words must be a whole number, got 'abc'"),
        ({"chunk_words": "2.5"}, "chunk words must be a whole number, got '2.5'"),
        ({"chunk_words": True}, "chunk words must be a whole number, got True"),
        ({"chunk_words": "4", "chunk_overlap": "-1"}, "overlap must be between 0 and 100000, got -1"),
        ({"chunk_words": "4", "max_chunks": "0"}, "max chunks must be between 1 and 10000, got 0"),
        ({"chunk_overlap": "2"}, "give chunk words (the words per chunk) too"),
        ({"fuse": "borda"}, "fusion must be one of none, rrf, weighted, got 'borda'"),
        ({"fuse": "rrf", "fuse_k": "0"}, "RRF k must be greater than 0, got 0"),
        ({"fuse": "rrf", "fuse_k": "ten"}, "RRF k must be a number, got 'ten'"),
        ({"fuse": "weighted", "fuse_weight": "1.5"}, "weight must be between 0 and 1"),
        ({"fuse": "weighted", "fuse_weight": "nan"}, "weight must be a finite number, got 'nan'"),
    ],
)
def test_bad_form_values_are_plain_400s(
    http: Any, rerank: RerankServer, override: dict[str, Any], message: str
) -> None:
    answer = http.post("/api/compare", json=compare_body(**override))
    assert answer.status_code == 400 and answer.json()["kind"] == "input"
    assert message in answer.json()["error"]
    assert not [r for r in rerank.requests if r.path.endswith("rerank")]


def test_not_json_is_a_plain_400(http: Any) -> None:
    answer = http.post("/api/compare", content=b"{not json")  # the client sends JSON's content type
    assert answer.status_code == 400 and answer.json() == {"error": "the request is not JSON", "kind": "input"}


def test_bad_params_carry_the_librarys_message(http: Any) -> None:
    answer = http.post("/api/compare", json=compare_body(provider="nosuch"))
    assert answer.status_code == 400 and answer.json()["kind"] == "params"
    assert "nosuch" in answer.json()["error"] and "Traceback" not in answer.text


def test_service_down_is_a_plain_502(http: Any) -> None:
    answer = http.post("/api/compare", json=compare_body(endpoint=dead_endpoint()))
    assert answer.status_code == 502 and answer.json()["kind"] == "service"
    assert "call service failed" in answer.json()["error"] and "Traceback" not in answer.text


def test_api_keys_never_reach_the_page(http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "co-very-secret-key-123")
    answer = http.post(
        "/api/compare", json=compare_body(provider="cohere", model="rerank-v3.5", endpoint=dead_endpoint())
    )
    assert answer.status_code == 502 and "co-very-secret-key-123" not in answer.text
    monkeypatch.delenv("COHERE_API_KEY")
    for name in ("MILVUS_COHERE_API_KEY", "CO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    missing = http.post("/api/compare", json=compare_body(provider="cohere", model="rerank-v3.5"))
    assert missing.status_code == 400 and "COHERE_API_KEY" in missing.json()["error"]


def test_unknown_collection_is_milvus_in_words(http: Any) -> None:
    answer = http.post("/api/compare", json=compare_body(collection="nope"))
    assert answer.status_code == 502 and answer.json()["kind"] == "milvus"
    assert answer.json()["error"].startswith("Milvus: ") and "nope" in answer.json()["error"]
    assert "<MilvusException" not in answer.text


def test_unexpected_errors_show_only_their_type(rerank: RerankServer) -> None:
    def broken(uri: str) -> Any:
        raise RuntimeError("details that may hold data: token=abc")

    with serve(create_app(dead_endpoint(), rerank.endpoint, client_factory=broken)) as url:
        answer = httpx.get(url + "/api/collections")
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal error (RuntimeError); the server's log has the details"


# ---- documents --------------------------------------------------------------------------------------------------
def test_document_in_full_with_the_query_marked(http: Any) -> None:
    answer = http.get(
        "/api/document",
        params={"collection": "python_docs", "key": "0", "text_field": "document", "query": "command line"},
    ).json()
    assert joined(answer["text"]) == DOCS[0][1] and answer["fields"] == {"title": "argparse"}
    assert [t for t, marked in answer["text"] if marked] == ["command", "line"]
    by_str = http.get("/api/document", params={"collection": "ingested", "key": "doc-3"}).json()
    assert joined(by_str["text"]) == DOCS[3][1] and by_str["text_field"] == "text"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"collection": "python_docs"}, 400, "give collection and key"),
        ({"collection": "python_docs", "key": "x"}, 400, "is not a whole number"),
        ({"collection": "python_docs", "key": "999"}, 400, "no document with id = '999'"),
        ({"collection": "nope", "key": "1"}, 502, "Milvus: "),
    ],
)
def test_document_errors_are_plain(http: Any, params: dict[str, str], status: int, message: str) -> None:
    answer = http.get("/api/document", params=params)
    assert answer.status_code == status and message in answer.json()["error"]
