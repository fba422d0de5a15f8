"""Other web sites cannot drive the page's API: DNS rebinding (Host), cross-site POSTs (content type, Origin)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ui.conftest import serve
from vllm_ranker.testing import RerankServer
from vllm_ranker.ui.app import create_app
from vllm_ranker.ui.guard import host_name

BODY = '{"collection": "python_docs"}'


def test_a_foreign_host_name_is_refused(http: Any, ui_url: str) -> None:
    for path in ("/", "/api/collections", "/static/app.js"):
        answer = httpx.get(ui_url + path, headers={"Host": "attacker.example:8765"})
        assert answer.status_code == 403 and answer.json()["kind"] == "refused"
        assert "not 'attacker.example'" in answer.json()["error"]
    port = ui_url.rsplit(":", 1)[1]
    assert httpx.get(ui_url + "/", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_posts_must_be_json(ui_url: str) -> None:
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        headers = {} if content_type is None else {"Content-Type": content_type}
        answer = httpx.post(ui_url + "/api/compare", content=BODY, headers=headers)
        assert answer.status_code == 415 and answer.json()["error"] == "send JSON, with Content-Type: application/json"


def test_posts_from_another_origin_are_refused(ui_url: str) -> None:
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    evil = httpx.post(ui_url + "/api/eval", content="{}", headers=json_type | {"Origin": "http://attacker.example"})
    assert evil.status_code == 403 and "cross-site request refused" in evil.json()["error"]
    own = httpx.post(ui_url + "/api/eval", content="{}", headers=json_type | {"Origin": ui_url})
    assert own.status_code == 400 and "no 'pipelines' list" in own.json()["error"]  # reached the endpoint


def test_any_host_when_bound_beyond_loopback(rerank: RerankServer) -> None:
    with serve(create_app("unused.db", rerank.endpoint, allowed_hosts=None)) as url:
        assert httpx.get(url + "/", headers={"Host": "gpu-box.lan:8765"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "name"),
    [("127.0.0.1:8765", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:8765", "::1"), ("::1", "::1"), ("", "")],
)
def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name
