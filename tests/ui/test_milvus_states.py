"""The Milvus the page finds: a Milvus Lite file opened by a new process (every collection released), a server
with a released collection, a file that is not there (never created), an empty one, one another process holds.
Over real HTTP, on Milvus Lite files made by another process and on ``milvus-lite server``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.ui.collections import NAMES, build_elsewhere
from tests.ui.conftest import serve
from tests.ui.test_http import compare_body, config_of
from vllm_ranker.testing import RerankServer
from vllm_ranker.ui.app import create_app


def page_config(url: str) -> dict[str, Any]:
    return config_of(httpx.get(url + "/").text)


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60)


def states(url: str) -> dict[str, str]:
    return {c["name"]: c["load_state"] for c in httpx.get(url + "/api/collections", timeout=60).json()["collections"]}


def test_a_file_reopened_by_a_new_process_is_searched_once_its_collection_is_loaded(
    reopened_db: str, rerank: RerankServer
) -> None:
    with serve(create_app(reopened_db, rerank.endpoint)) as url:
        assert page_config(url)["lite"] is True
        assert states(url) == dict.fromkeys(NAMES, "released")
        refused = post(url, "/api/compare", compare_body())
        assert refused.status_code == 409 and refused.json()["kind"] == "not_loaded"
        assert refused.json()["error"].startswith("collection 'python_docs' is released: Milvus searches only loaded")
        document = httpx.get(url + "/api/document", params={"collection": "python_docs", "key": "0"})
        assert document.status_code == 409 and document.json()["kind"] == "not_loaded"

        loaded = post(url, "/api/load", {"collection": "python_docs"})
        assert loaded.status_code == 200 and loaded.json()["name"] == "python_docs"
        assert loaded.json()["load_state"] == "loaded" and loaded.json()["stages"] == ["dense", "bm25", "hybrid"]
        assert states(url) == {"bm25_only": "released", "ingested": "released", "python_docs": "loaded"}
        for stage in ("bm25", "dense", "hybrid"):
            answer = post(url, "/api/compare", compare_body(stage=stage))
            assert answer.status_code == 200 and len(answer.json()["reranked"]) == 5, answer.text
        document = httpx.get(url + "/api/document", params={"collection": "python_docs", "key": "0"})
        assert document.status_code == 200 and document.json()["fields"] == {"title": "argparse"}

        assert post(url, "/api/load", {}).json() == {"error": "give the collection to load", "kind": "input"}
        gone = post(url, "/api/load", {"collection": "nope"})
        assert gone.status_code == 502 and gone.json()["kind"] == "milvus" and "nope" in gone.json()["error"]


def test_a_released_collection_on_a_server_is_loaded_on_request(released_server: str, rerank: RerankServer) -> None:
    with serve(create_app(released_server, rerank.endpoint)) as url:
        assert page_config(url)["lite"] is False  # the page asks before loading (the Load button: test_browser)
        assert states(url)["ingested"] == "released"
        body = compare_body(collection="ingested", text_field="text")
        assert post(url, "/api/compare", body).json()["kind"] == "not_loaded"
        assert post(url, "/api/load", {"collection": "ingested"}).json()["load_state"] == "loaded"
        answer = post(url, "/api/compare", body)
        assert answer.status_code == 200 and answer.json()["first"][0]["key"].startswith("doc-")


def test_a_missing_file_is_never_created_and_the_page_says_how_to_make_one(
    tmp_path: Path, rerank: RerankServer
) -> None:
    build_elsewhere(tmp_path / "other.db", None)
    (tmp_path / "sqlite.db").write_text("not a folder: not Milvus Lite")
    before = sorted(tmp_path.iterdir())
    for missing in (tmp_path / "nope.db", tmp_path / "no-such-folder" / "x.db"):
        with serve(create_app(str(missing), rerank.endpoint)) as url:
            assert httpx.get(url + "/").status_code == 200 and page_config(url)["lite"] is True
            listed = httpx.get(url + "/api/collections").json()
            assert listed["collections"] == [] and listed["exists"] is False
            assert listed["neighbours"] == ([str(tmp_path / "other.db")] if missing.parent == tmp_path else [])
            for answer in (
                post(url, "/api/compare", compare_body()),
                post(url, "/api/load", {"collection": "python_docs"}),
                httpx.get(url + "/api/document", params={"collection": "python_docs", "key": "0"}),
            ):
                assert answer.status_code == 404 and answer.json()["kind"] == "no_database"
                assert answer.json()["error"] == (
                    f"there is no Milvus Lite file at {missing}, and the page creates none: make it with "
                    f"`vllm-ranker demo --uri {missing}` or `vllm-ranker ingest DIR --uri {missing}`, or start "
                    "vllm-ranker ui with --uri of an existing one"
                )
        assert sorted(tmp_path.iterdir()) == before
    with serve(create_app(str(tmp_path / "sqlite.db"), rerank.endpoint)) as url:
        answer = httpx.get(url + "/api/collections")
    assert answer.status_code == 502 and answer.json() == {
        "error": f"{tmp_path / 'sqlite.db'} is a file, not a Milvus Lite database (Milvus Lite keeps a folder)",
        "kind": "milvus",
    }


def test_an_empty_file_lists_no_collections(tmp_path: Path, rerank: RerankServer) -> None:
    empty = build_elsewhere(tmp_path / "empty.db", None)
    with serve(create_app(empty, rerank.endpoint)) as url:
        listed = httpx.get(url + "/api/collections").json()
    assert listed == {"uri": empty, "exists": True, "collections": [], "neighbours": []}


def test_a_file_another_process_holds_is_one_plain_sentence(tmp_path: Path, rerank: RerankServer) -> None:
    held = build_elsewhere(tmp_path / "held.db", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from pymilvus import MilvusClient; c = MilvusClient({held!r}); "
         "print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with serve(create_app(held, rerank.endpoint)) as url:
            answer = httpx.get(url + "/api/collections")
    finally:
        holder.communicate(timeout=30)
    assert answer.status_code == 502 and answer.json()["kind"] == "milvus"
    assert answer.json()["error"] == (
        f"Milvus Lite could not open {held} (Open local milvus failed): Milvus Lite lets one process at a time open "
        "a file; stop the one using it (vllm-ranker ingest, demo or gateway, a script), then reload this page"
    )
