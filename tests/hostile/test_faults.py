"""Broken services, through the loopback server and real sockets, on both clients: every fault ends in a clear
``RerankServiceError`` (or ``RerankTimeout``), or in the documented fallback (``on_failure=passthrough``), within
the call's deadline.

Elapsed times are asserted only as an upper bound of deadline + a generous margin (a correctness bound: "it
ended", not a speed target); a hard guard (``no_hang``) turns a real hang into a failure instead of a stuck run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pymilvus
import pytest

from tests.conftest import CORPUS, rerank_function, rerank_requests
from tests.hostile.helpers import Stopwatch, no_hang, refused_port
from vllm_ranker import MilvusClient, RerankServiceError, RerankTimeout
from vllm_ranker.testing import Recorded, Reply, RerankServer, hashed_embedding

QUERY = "AI research progress"
LIMIT = 5
MARGIN = 10.0  # seconds beyond the deadline still counted as "ended": slow CI, thread start-up, Milvus Lite
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>"
    + "body{margin:0}" * 100
    + "</style></head><body><h1>502 Bad Gateway</h1><p>nginx/1.25.3</p></body></html>"
)


def search(client: Any, endpoint: str, **params: Any) -> Any:
    """A plain search with vector data (text data would call the server's /v1/embeddings, eating the script)."""
    ranker = rerank_function(endpoint, [QUERY], **params)
    return client.search(
        "docs",
        data=[hashed_embedding(QUERY, 16)],
        anns_field="dense_vector",
        limit=LIMIT,
        output_fields=["document"],
        ranker=ranker,
    )


def fails_within(
    client: Any, endpoint: str, timeout: float = 5.0, error: type[Exception] = RerankServiceError, **params: Any
) -> RerankServiceError:
    with no_hang(timeout + 3 * MARGIN), Stopwatch() as watch, pytest.raises(error) as caught:
        search(client, endpoint, timeout=timeout, **params)
    assert watch.seconds < timeout + MARGIN, f"ended after {watch.seconds:.1f} s, deadline {timeout} s"
    message = str(caught.value)
    assert message.startswith("call service failed: vllm"), message
    return caught.value  # type: ignore[return-value]


def answer(documents: list[str], results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if results is None:
        results = [{"index": i, "relevance_score": 1.0 / (i + 1)} for i in range(len(documents))]
    return {"id": "x", "model": "m", "results": results}


def on_rerank(make: Callable[[list[str]], Reply]) -> Callable[[Recorded], Reply | None]:
    def fault(recorded: Recorded) -> Reply | None:
        return make(recorded.body["documents"]) if recorded.path.endswith("rerank") else None

    return fault


# -- no service, broken connections ----------------------------------------------------------------------
def test_connection_refused(client: Any) -> None:
    error = fails_within(client, f"http://127.0.0.1:{refused_port()}")
    assert error.kind == "connect" and "after 3 tries" in str(error)
    assert "is the rerank service running" in str(error)


def test_connection_reset_every_time(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda _docs: Reply(action="reset"))
    error = fails_within(client, server.endpoint)
    assert error.kind == "broken" and "after 3 tries" in str(error)
    assert len(rerank_requests(server)) == 3


def test_one_reset_is_retried(client: Any, server: RerankServer) -> None:
    server.script = [Reply(action="reset")]
    result = search(client, server.endpoint)
    assert len(result[0]) == LIMIT and result.extra["rerank"].retries == 1


def test_reset_mid_body(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda docs: Reply(action="truncate", json_body=answer(docs)))
    error = fails_within(client, server.endpoint, max_retries=1)
    assert error.kind == "broken" and "RemoteProtocolError" in str(error)


# -- slow services ---------------------------------------------------------------------------------------
def test_slow_loris_headers_then_nothing(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda docs: Reply(action="hang", json_body=answer(docs)))
    error = fails_within(client, server.endpoint, timeout=1.0, error=RerankTimeout)
    assert "within the call's deadline of 1 s" in str(error)


def test_service_slower_than_the_deadline(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda docs: Reply(delay=3.0, json_body=answer(docs)))
    fails_within(client, server.endpoint, timeout=0.5, error=RerankTimeout)


class TrickleServer:
    """Answers every request by sending the response a few bytes at a time: each read returns data well
    within any per-read timeout, so only a whole-call deadline can stop it."""

    def __init__(self, *, headers_too: bool, pause: float = 0.05, total: float = 6.0) -> None:
        self.headers_too = headers_too
        self.pause = pause
        self.total = total
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            body = b'{"results": [' + b" " * 4000 + b"]}"
            # Padded so that trickling the headers alone outlasts the deadline + MARGIN many times over.
            pad = b"X-Padding: " + b"p" * 400 + b"\r\n"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (
                pad,
                len(body),
            )
            trickled = head + body if self.headers_too else body
            if not self.headers_too:
                conn.sendall(head)
            started = time.monotonic()
            try:
                for i in range(0, len(trickled), 4):
                    if self.stop.is_set() or time.monotonic() - started > self.total:
                        return
                    conn.sendall(trickled[i : i + 4])
                    time.sleep(self.pause)
            except OSError:
                return  # the client gave up and closed: what the test wants

    def __enter__(self) -> TrickleServer:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def trickling_body() -> Iterator[TrickleServer]:
    with TrickleServer(headers_too=False) as srv:
        yield srv


def test_body_trickled_past_the_deadline(client: Any, trickling_body: TrickleServer) -> None:
    error = fails_within(client, trickling_body.endpoint, timeout=1.0, error=RerankTimeout)
    assert "deadline of 1 s" in str(error)


def test_headers_trickled_past_the_deadline(client: Any) -> None:
    # A few bytes every 0.3 s: every socket read returns well within httpx's per-read timeout, for 30 s.
    with TrickleServer(headers_too=True, pause=0.3, total=30.0) as srv:
        fails_within(client, srv.endpoint, timeout=1.0, error=RerankTimeout)


# -- error answers ---------------------------------------------------------------------------------------
def test_5xx_storm_is_retried_then_reported(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda _d: Reply(status=503, json_body={"error": {"message": "engine overloaded"}}))
    error = fails_within(client, server.endpoint)
    assert error.status == 503 and "HTTP 503 after 3 tries: engine overloaded" in str(error)
    assert len(rerank_requests(server)) == 3


def test_5xx_storm_with_many_retries_stops_at_the_deadline(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda _d: Reply(status=500, raw="Internal Server Error"))
    error = fails_within(client, server.endpoint, timeout=1.5, max_retries=1000)
    assert "the next try would pass the call's deadline" in str(error) or isinstance(error, RerankTimeout)
    assert 2 <= len(rerank_requests(server)) < 1000


def test_429_retry_after_is_honoured(client: Any, server: RerankServer) -> None:
    server.script = [Reply(status=429, json_body={"error": {"message": "slow down"}}, headers={"Retry-After": "0.3"})]
    with Stopwatch() as watch:
        result = search(client, server.endpoint)
    assert len(result[0]) == LIMIT and result.extra["rerank"].retries == 1
    assert watch.seconds >= 0.3  # the service asked for 0.3 s; a sleep never ends early


@pytest.mark.parametrize("retry_after", [formatdate(time.time() - 60, usegmt=True), "soon", ""])
def test_429_with_a_past_date_or_unreadable_retry_after_backs_off_normally(
    client: Any, server: RerankServer, retry_after: str
) -> None:
    server.script = [Reply(status=429, json_body={}, headers={"Retry-After": retry_after})]
    result = search(client, server.endpoint)
    assert result.extra["rerank"].retries == 1


def test_429_retry_after_beyond_the_deadline_fails_at_once(client: Any, server: RerankServer) -> None:
    quota = Reply(status=429, json_body={"message": "quota"}, headers={"Retry-After": "120"})
    server.fault = on_rerank(lambda _d: quota)
    with Stopwatch() as watch:
        error = fails_within(client, server.endpoint, timeout=3.0)
    assert "HTTP 429" in str(error) and "the next try would pass the call's deadline" in str(error)
    assert "rate limiting" in str(error)
    assert watch.seconds < 3.0 + MARGIN and len(rerank_requests(server)) == 1


@pytest.mark.parametrize("status", [502, 200])
def test_html_error_page(client: Any, server: RerankServer, status: int) -> None:
    server.fault = on_rerank(lambda _d: Reply(status=status, raw=HTML_PAGE, headers={"Content-Type": "text/html"}))
    error = fails_within(client, server.endpoint, max_retries=0)
    message = str(error)
    assert "502 Bad Gateway" in message and len(message) < 1000  # a snippet of the page, not all of it
    if status == 200:
        assert "with a body that is not JSON" in message and error.kind == "malformed"


@pytest.mark.parametrize(
    "raw", ['{"results": [{"index": 0, "relevance_score": 0.5}, {"index"', "", "{", '{"results": [1, 2,]}', "\x00"]
)
def test_truncated_or_broken_json(client: Any, server: RerankServer, raw: str) -> None:
    server.fault = on_rerank(lambda _d: Reply(raw=raw))
    error = fails_within(client, server.endpoint)
    assert "with a body that is not JSON" in str(error)
    assert len(rerank_requests(server)) == 1  # a 2xx that cannot be read is not retried


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (lambda n: [{"index": i, "relevance_score": 0.5} for i in range(n - 1)], "missing index [4]"),
        (lambda n: [{"index": i, "relevance_score": 0.5} for i in range(n + 2)], "index out of range [5, 6]"),
        (lambda n: [], f"sent {LIMIT} documents, got 0 results"),
        (lambda n: [{"index": i % 2, "relevance_score": 0.5} for i in range(n)], "duplicate index [0, 1, 0]"),
        (lambda n: [{"index": str(i), "relevance_score": 0.5} for i in range(n)], "index out of range ['0'"),
        (lambda n: [{"index": i, "relevance_score": str(0.5)} for i in range(n)], "score '0.5' is a str"),
        (lambda n: [{"index": i, "relevance_score": None} for i in range(n)], "score None is a NoneType"),
        (lambda n: [{"index": i} for i in range(n)], "score None is a NoneType"),
        (lambda n: {"index": 0}, "results is a dict, expected a list"),
        (lambda n: "ok", "results is a str"),
    ],
    ids=[
        "too-few",
        "too-many",
        "none",
        "duplicates",
        "index-as-string",
        "score-as-string",
        "score-null",
        "score-missing",
        "results-object",
        "results-string",
    ],
)
def test_wrong_answers_name_the_problem(
    client: Any, server: RerankServer, results: Callable[[int], Any], expected: str
) -> None:
    server.fault = on_rerank(lambda docs: Reply(json_body={"results": results(len(docs))}))
    error = fails_within(client, server.endpoint)
    assert "malformed vllm rerank response" in str(error) and expected in str(error), str(error)
    assert error.kind == "malformed"


# -- the documented fallback -----------------------------------------------------------------------------
def test_passthrough_answers_in_first_stage_order_when_the_service_is_down(client: Any, milvus: MilvusClient) -> None:
    with no_hang(3 * MARGIN), Stopwatch() as watch:
        result = search(client, f"http://127.0.0.1:{refused_port()}", on_failure="passthrough", timeout=2)
    assert watch.seconds < 2 + MARGIN
    stats = result.extra["rerank"]
    assert stats.fallback and "connect error" in (stats.error or "")
    plain = pymilvus.MilvusClient.search(
        milvus, "docs", data=[hashed_embedding(QUERY, 16)], anns_field="dense_vector", limit=LIMIT
    )
    assert [h["id"] for h in result[0]] == [h["id"] for h in plain[0]]
    assert all(h["entity"]["document"] == CORPUS[h["id"]] for h in result[0])


def test_passthrough_on_a_hanging_service_ends_at_the_deadline(client: Any, server: RerankServer) -> None:
    server.fault = on_rerank(lambda docs: Reply(action="hang", json_body=answer(docs)))
    with no_hang(3 * MARGIN), Stopwatch() as watch:
        result = search(client, server.endpoint, on_failure="passthrough", timeout=1)
    assert watch.seconds < 1 + MARGIN
    assert result.extra["rerank"].fallback and len(result[0]) == LIMIT
