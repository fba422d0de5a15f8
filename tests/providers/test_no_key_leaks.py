"""No API key ever shows outside the Authorization header.

Every provider is driven through each way a rerank can end (success, HTTP errors whose body echoes the key,
malformed answers echoing it, deadline, unreachable service, bad params, missing model). Everything a user
could see is captured — error messages, reprs and args of the errors, the whole exception chain
(``__cause__``/``__context__``, formatted tracebacks), the spec's repr, and every log record at DEBUG — and
searched for the test keys. The test also checks that the keys did reach the server, so it can fail.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.providers.cases import CASES, KEYS, Case
from tests.providers.test_contract import collection_info, dense_search, ranker
from vllm_ranker import MilvusClient, RerankParamError, RerankServiceError
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.testing import Reply, RerankServer
from vllm_ranker.testing import wire_formats as wf


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def everything_about(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for link in chain(exc):
        texts += [str(link), repr(link), repr(link.args), repr(getattr(link, "message", ""))]
        texts += [repr(vars(link)) if hasattr(link, "__dict__") else ""]
        texts += [repr(note) for note in getattr(link, "__notes__", [])]
    return texts


def scenarios(case: Case, srv: RerankServer) -> list[tuple[str, Callable[[], Any]]]:
    key = case.key
    echo = f"Incorrect API key provided: {key} (Bearer {key})"

    def http(status: int) -> Callable[[], Any]:
        def arm() -> Any:
            raw, _ = wf.error_answer(case.provider, status, echo)
            if not raw:  # a service that sends no body cannot echo; send the echo raw instead
                raw = echo.encode()
            srv.fault = lambda _r: Reply(status=status, raw=raw)
            return ranker(case, srv, max_retries=0)

        return arm

    def answer(reply: Reply) -> Callable[[], Any]:
        def arm() -> Any:
            srv.fault = lambda _r: reply
            return ranker(case, srv, max_retries=0)

        return arm

    def deadline() -> Any:
        srv.fault = lambda _r: Reply(delay=1.0, raw=echo.encode())
        return ranker(case, srv, timeout=0.2)

    return [
        ("success", lambda: ranker(case, srv)),
        ("400", http(400)),
        ("401", http(401)),
        ("429", http(429)),
        ("500", http(500)),
        ("not-json-echo", answer(Reply(raw=f"<html>{echo}</html>".encode()))),
        ("wrong-shape-echo", answer(Reply(json_body={"message": echo, "results": key}))),
        ("deadline", deadline),
        ("unreachable", lambda: ranker(case, None, endpoint="http://127.0.0.1:9", max_retries=0)),
        # user:password in the URL and an API key both want the Authorization header: refused (endpoint_security)
        ("userinfo-and-key", lambda: ranker(case, None, endpoint=f"http://user:{key}@127.0.0.1:9")),
        ("bad-endpoint", lambda: ranker(case, None, endpoint=f"ftp://user:{key}@host")),
        ("bad-batch", lambda: ranker(case, srv, maxBatch="zero")),
    ]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.provider) for c in CASES])
def test_no_key_in_any_error_log_repr_or_chain(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer], caplog: pytest.LogCaptureFixture
) -> None:
    srv = servers[case.provider]
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    outcomes: dict[str, str] = {}
    sent_key = False
    for name, arm in scenarios(case, srv):
        srv.reset()
        function = arm()
        try:
            seen.append(repr(parse_ranker(function, collection_info(), env={})))
        except RerankParamError as exc:
            seen += everything_about(exc)
        try:
            result = dense_search(lite, function)
            seen += [repr(result), str(result)]
            outcomes[name] = "ok"
        except (RerankServiceError, RerankParamError) as exc:
            seen += everything_about(exc)
            outcomes[name] = type(exc).__name__
        sent_key = sent_key or any(r.headers.get("authorization") == f"Bearer {case.key}" for r in srv.requests)

    # The suite exercised what it claims: failures failed, and the key was really sent.
    assert outcomes["success"] == "ok"
    assert all(
        outcomes[n] == "RerankServiceError"
        for n in ("400", "401", "429", "500", "not-json-echo", "wrong-shape-echo", "unreachable")
    )
    assert outcomes["deadline"] == "RerankTimeout"
    assert outcomes["bad-endpoint"] == outcomes["bad-batch"] == outcomes["userinfo-and-key"] == "RerankParamError"
    assert sent_key

    # Missing key and missing model fail before anything is sent, and say nothing secret either.
    for drop in (("credential",), ("model_name",)):
        try:
            dense_search(lite, ranker(case, srv, drop=drop))
        except RerankParamError as exc:
            seen += everything_about(exc)

    seen.append(caplog.text)
    for record in caplog.records:
        seen += [record.getMessage(), repr(record.args), record.exc_text or "", repr(record.__dict__)]
    blob = "\n".join(seen)
    for key in KEYS.values():
        assert key not in blob
    assert "call service failed" in blob  # the capture did capture the failures
