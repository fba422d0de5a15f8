"""The gateway's log is quiet by default: httpx's line per HTTP request (one per reranked search) shows only at
``--log-level debug``, through the function ``vllm-ranker gateway`` configures its logging with."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.cli.conftest import HTTP_LOGGERS
from vllm_ranker.gateway.command import configure_logging
from vllm_ranker.testing import RerankServer


def request_lines(caplog: pytest.LogCaptureFixture, server: RerankServer) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        httpx.post(f"{server.endpoint}/v1/rerank", json={"query": "q", "documents": ["a", "b"]}).raise_for_status()
    return [r.getMessage() for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.getMessage()]


@pytest.mark.usefixtures("restored_logging")
def test_http_requests_are_logged_only_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with RerankServer() as server:
        for level in ("info", "warning", "error"):
            configure_logging(level)
            assert request_lines(caplog, server) == [], level
            assert not any(logging.getLogger(name).isEnabledFor(logging.INFO) for name in HTTP_LOGGERS)
        configure_logging("debug")
        assert [line.split(" ", 3)[:3] for line in request_lines(caplog, server)] == [["HTTP", "Request:", "POST"]]
        assert all(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in HTTP_LOGGERS)
