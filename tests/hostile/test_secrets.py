"""No secret ever shows: API keys (param or environment) and ``user:password`` in an endpoint URL.

Extends tests/providers/test_no_key_leaks.py (every provider, messages and chains) to what a user of the
clients can see around a search, on both clients: every log record of every logger at DEBUG (httpx's
"HTTP Request: POST <url>" line and httpcore's traces included), the repr and str of the Function, the spec,
its targets, the client and the result, the stats record ``result.extra['rerank']`` (also when a failure was
passed through), and each error's message, args, attributes, chain and formatted traceback; and the gateway's logs,
its audit line included, where the caller's own Milvus token is ``user:password`` too. The service echoes the
Authorization header it received, so a leak of any form of the secret would be caught; the test also checks
that the secrets did reach the service, so it can fail.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pymilvus
import pytest

from tests.conftest import CORPUS, create_docs_collection, rerank_requests
from tests.hostile.helpers import refused_port
from tests.providers.test_no_key_leaks import everything_about
from vllm_ranker import Function, FunctionType, MilvusClient, RerankError, RerankParamError
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.audit import AUDIT_LOGGER
from vllm_ranker.testing import Recorded, Reply, RerankServer, hashed_embedding

KEY = f"sk-hostile-{secrets.token_hex(12)}"
USER = f"user{secrets.token_hex(4)}"
PASSWORD = f"pw-{secrets.token_hex(12)}"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
FORBIDDEN = (KEY, PASSWORD, BASIC, f"{USER}:{PASSWORD}")
QUERY = "AI research progress"


def ranker(endpoint: str, **params: Any) -> Function:
    return Function(
        name="vllm_semantic_ranker",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "queries": [QUERY], "endpoint": endpoint, **params},
    )


def with_userinfo(endpoint: str) -> str:
    return endpoint.replace("http://", f"http://{USER}:{PASSWORD}@")


def echo(status: int, *, json_error: bool = True, also: str = "") -> Callable[[Recorded], Reply | None]:
    """The service answers ``status`` quoting the Authorization header it got (as some gateways do)."""

    def fault(recorded: Recorded) -> Reply | None:
        if not recorded.path.endswith("rerank"):
            return None
        said = f"invalid credentials: {recorded.headers.get('authorization')} ({also})"
        if json_error:
            return Reply(status=status, json_body={"error": {"message": said}, "results": said})
        return Reply(status=status, raw=f"<html><body>{said}</body></html>")

    return fault


class Seen:
    """Everything a user or an error tracker could see, gathered as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *objects: Any) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]

    def error(self, exc: BaseException) -> None:
        self.texts += everything_about(exc)

    def result(self, result: Any) -> None:
        stats = result.extra["rerank"]
        self.add(result, stats, stats.as_dict())

    def logs(self, caplog: pytest.LogCaptureFixture) -> None:
        self.texts.append(caplog.text)
        for record in caplog.records:
            self.texts += [record.getMessage(), repr(record.args), record.exc_text or "", repr(record.__dict__)]

    def leaks(self) -> list[str]:
        """Each place a secret shows, with some context (the assertion message then says where)."""
        return [
            text[max(0, text.index(secret) - 200) : text.index(secret) + 40]
            for text in self.texts
            for secret in FORBIDDEN
            if secret in text
        ]


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "vllm_ranker", "pymilvus"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def run(client: Any, function: Function, seen: Seen) -> str:
    seen.add(function)
    try:
        result = client.search(
            "docs",
            data=[hashed_embedding(QUERY, 16)],
            anns_field="dense_vector",
            limit=4,
            output_fields=["document"],
            ranker=function,
        )
    except RerankError as exc:
        seen.error(exc)
        return type(exc).__name__
    seen.result(result)
    return "ok"


def test_api_key_never_shows(
    client: Any, server: RerankServer, all_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Seen()
    outcomes = {"success": run(client, ranker(server.endpoint, credential=KEY), seen)}
    for status in (400, 401, 429, 500):
        server.fault = echo(status, also=KEY)
        outcomes[f"echo-{status}"] = run(client, ranker(server.endpoint, credential=KEY, max_retries=1), seen)
    server.fault = echo(200, also=KEY)
    outcomes["echo-malformed"] = run(client, ranker(server.endpoint, credential=KEY), seen)
    server.fault = echo(502, json_error=False, also=KEY)
    outcomes["echo-html"] = run(client, ranker(server.endpoint, credential=KEY, max_retries=0), seen)
    server.fault = echo(401, also=KEY)
    outcomes["passthrough"] = run(client, ranker(server.endpoint, credential=KEY, on_failure="passthrough"), seen)
    server.fault = lambda r: Reply(delay=1.0, raw=KEY) if r.path.endswith("rerank") else None
    outcomes["deadline"] = run(client, ranker(server.endpoint, credential=KEY, timeout=0.2), seen)
    server.fault = None
    outcomes["refused"] = run(client, ranker(f"http://127.0.0.1:{refused_port()}", credential=KEY), seen)
    outcomes["bad-param"] = run(client, ranker(server.endpoint, credential=KEY, maxBatch="many"), seen)
    outcomes["header-unsafe"] = run(client, ranker(server.endpoint, credential=KEY[:9] + "\n" + KEY[9:]), seen)
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    outcomes["env-success"] = run(client, ranker(server.endpoint), seen)
    server.fault = echo(403, also=KEY)
    outcomes["env-echo"] = run(client, ranker(server.endpoint, max_retries=0), seen)
    seen.logs(all_logs)

    assert outcomes == {
        "success": "ok",
        "echo-400": "RerankServiceError",
        "echo-401": "RerankServiceError",
        "echo-429": "RerankServiceError",
        "echo-500": "RerankServiceError",
        "echo-malformed": "RerankServiceError",
        "echo-html": "RerankServiceError",
        "passthrough": "ok",
        "deadline": "RerankTimeout",
        "refused": "RerankServiceError",
        "bad-param": "RerankParamError",
        "header-unsafe": "RerankParamError",
        "env-success": "ok",
        "env-echo": "RerankServiceError",
    }
    assert sum(r.headers.get("authorization") == f"Bearer {KEY}" for r in rerank_requests(server)) >= 2
    assert "HTTP Request: POST http://127.0.0.1" in all_logs.text  # httpx's log was captured
    assert "call service failed" in "\n".join(seen.texts)
    assert seen.leaks() == []


def test_user_and_password_in_the_endpoint_become_basic_auth_and_never_show(
    client: Any, milvus: MilvusClient, server: RerankServer, all_logs: pytest.LogCaptureFixture
) -> None:
    endpoint = with_userinfo(server.endpoint)
    seen = Seen()
    outcomes = {"success": run(client, ranker(endpoint), seen)}
    assert [r.headers.get("authorization") for r in rerank_requests(server)] == [f"Basic {BASIC}"]
    assert all("@" not in r.path for r in server.requests)
    for status in (401, 500):
        server.fault = echo(status, also=PASSWORD)
        outcomes[f"echo-{status}"] = run(client, ranker(endpoint, max_retries=1), seen)
    server.fault = echo(200, also=PASSWORD)
    outcomes["echo-malformed"] = run(client, ranker(endpoint), seen)
    outcomes["refused"] = run(client, ranker(with_userinfo(f"http://127.0.0.1:{refused_port()}")), seen)
    outcomes["with-key"] = run(client, ranker(endpoint, credential="sk-other"), seen)
    outcomes["bad-scheme"] = run(client, ranker(f"ftp://{USER}:{PASSWORD}@host"), seen)
    info = CollectionInfo.from_describe(milvus.describe_collection("docs"))
    spec = parse_ranker(ranker(endpoint), info, env={})
    seen.add(spec, spec.targets, spec.targets[0], client)
    seen.logs(all_logs)

    assert outcomes == {
        "success": "ok",
        "echo-401": "RerankServiceError",
        "echo-500": "RerankServiceError",
        "echo-malformed": "RerankServiceError",
        "refused": "RerankServiceError",
        "with-key": "RerankParamError",
        "bad-scheme": "RerankParamError",
    }
    assert f"HTTP Request: POST {server.endpoint}/rerank" in all_logs.text  # the URL, without the user-info
    assert seen.leaks() == []


def test_percent_encoded_user_info_is_decoded_for_the_header(client: Any, server: RerankServer) -> None:
    endpoint = server.endpoint.replace("http://", "http://me%40corp:p%3Ass%20word@")
    run(client, ranker(endpoint), Seen())
    expected = base64.b64encode(b"me@corp:p:ss word").decode()
    assert [r.headers.get("authorization") for r in rerank_requests(server)] == [f"Basic {expected}"]


def test_function_repr_masks_keys_and_user_info() -> None:
    function = ranker(
        with_userinfo("http://h:8000"),
        credential=KEY,
        API_KEY=KEY,
        endpoints=[with_userinfo("http://a:1"), "http://b:2"],
    )
    shown = repr(function) + str(function)
    assert not [s for s in FORBIDDEN if s in shown]
    assert "'credential': '***'" in shown and "http://***@h:8000" in shown and "http://b:2" in shown
    assert function.to_dict()["params"]["credential"] == KEY  # what a Milvus server gets is unchanged


def test_errors_are_milvus_exceptions_even_for_header_unsafe_keys(milvus: MilvusClient) -> None:
    info = CollectionInfo.from_describe(milvus.describe_collection("docs"))
    for bad in (KEY + "\r\nX-Evil: 1", "clé-" + KEY, KEY + " " + KEY):
        with pytest.raises(RerankParamError, match="credential: the API key holds characters") as caught:
            parse_ranker(ranker("http://h:1", credential=bad), info, env={})
        assert KEY not in "".join(everything_about(caught.value))
        with pytest.raises(RerankParamError, match="VLLM_API_KEY"):
            parse_ranker(ranker("http://h:1"), info, env={"VLLM_API_KEY": bad})


def test_the_gateways_logs_and_audit_lines_show_no_secret(
    milvus_server: str, server: RerankServer, all_logs: pytest.LogCaptureFixture
) -> None:
    # The caller's Milvus token is USER:PASSWORD (its base64 is BASIC), the rerank key KEY, the endpoint's user-info
    # USER:PASSWORD; the service echoes what it got. The audit line may name USER, nothing more.
    seen = Seen()
    outcomes = []
    with Gateway(milvus_server, port=0, grace=1.0) as gateway:
        caller = pymilvus.MilvusClient(uri=gateway.uri, token=f"{USER}:{PASSWORD}")
        try:
            create_docs_collection(caller, "audit_docs", server.endpoint, CORPUS)
            caller.load_collection("audit_docs")
            for function, fault in (
                (ranker(server.endpoint, credential=KEY), None),
                (ranker(with_userinfo(server.endpoint)), None),
                (ranker(server.endpoint, credential=KEY, max_retries=1), echo(401, also=KEY)),
                (ranker(with_userinfo(server.endpoint), max_retries=1), echo(500, also=PASSWORD)),
            ):
                server.fault = fault
                try:
                    caller.search(
                        "audit_docs", data=[hashed_embedding(QUERY, 16)], anns_field="dense_vector", limit=4,
                        output_fields=["document"], ranker=function,
                    )  # fmt: skip
                    outcomes.append("ok")
                except pymilvus.MilvusException as exc:
                    seen.error(exc)
                    outcomes.append("error")
        finally:
            server.fault = None
            caller.drop_collection("audit_docs")
            caller.close()
    seen.logs(all_logs)
    assert outcomes == ["ok", "ok", "error", "error"]
    audit = [r.getMessage() for r in all_logs.records if r.name == AUDIT_LOGGER]
    assert len(audit) == 4 and all(f" user={USER} auth=caller " in line for line in audit), audit
    assert [line.split(" outcome=")[1].split(" ")[0] for line in audit][:2] == ["ok", "ok"]
    assert sum(r.headers.get("authorization") == f"Bearer {KEY}" for r in rerank_requests(server)) >= 2  # it went
    assert seen.leaks() == []
