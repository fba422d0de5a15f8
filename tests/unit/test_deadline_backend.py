"""The socket-level deadline for sync httpx (vllm_ranker.transport.deadline_backend), against real loopback sockets.

Each hostile server below would hold a plain ``httpx.Client`` for as long as it likes: every byte arrives well
within httpx's per-read timeout. With the backend installed and a deadline scope, the request must fail with an
httpx timeout by the deadline. Elapsed times are asserted only as "deadline + a generous margin" (a correctness
bound: it ended, not a speed target); ``no_hang`` turns a real hang into a failure instead of a stuck run.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable

import httpcore
import httpx
import pytest
import trustme

from tests.hostile.helpers import Stopwatch, no_hang
from vllm_ranker.transport.deadline_backend import (
    CANCEL_POLL_S,
    DeadlineBackend,
    cancel_scope,
    current_cancel,
    current_deadline,
    deadline_scope,
    install,
    install_client,
)

DEADLINE_S = 1.0
SLACK_S = 0.5  # generous: thread wake-ups on a loaded 2-core CI machine
CANCEL_SLACK_S = 3.0  # a cancelled request must end long before its 60 s deadline, on any machine
GUARD_S = 10.0  # no_hang: far past the deadline, well before pytest's patience
PATIENT = httpx.Timeout(30.0)  # httpx's own per-operation timeouts must never be what stops these requests
PAUSE_S = 0.05  # between trickled bytes: each read returns long before any per-read timeout


class LoopbackServer:
    """One real listening socket; every connection gets the same behaviour (``mode``):

    fast: answers each request on the connection with 200 "ok" (keep-alive);
    trickle_headers: a status line, then an endless header one byte at a time;
    trickle_body: full headers announcing a large body, then the body one byte at a time, forever;
    silent: accepts, then neither reads nor writes (a hung service; also a full receive window for writes);
    slow_reader: reads the request steadily but slowly (~12 MB/s), so every single ``send`` of a big body
    makes progress within any per-operation timeout while the whole body takes seconds.
    """

    def __init__(self, mode: str, tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.acceptor.join(5)
        self.sock.close()
        for thread in self.threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        with raw:
            if self.mode == "silent":  # not even the TLS handshake
                self.stop.wait()
                return
            raw.settimeout(5)
            if self.mode == "slow_reader":
                while not self.stop.is_set() and raw.recv(256 * 1024):
                    time.sleep(0.02)
                return
            try:
                conn = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
                with conn:
                    if self.mode == "fast":
                        while _read_request(conn):
                            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        return
                    _read_request(conn)
                    if self.mode == "trickle_headers":
                        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    else:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    while not self.stop.is_set():
                        conn.sendall(b"a")
                        time.sleep(PAUSE_S)
            except OSError:
                return  # the client gave up and closed: what the tests want


def _read_request(conn: socket.socket) -> bool:
    """Read one request (head and Content-Length body); False when the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def bounded_client(ca: trustme.CA) -> httpx.Client:
    """An httpx.Client whose transport has the deadline backend (and trusts the test CA)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    transport = httpx.HTTPTransport(verify=context)
    install(transport)
    return httpx.Client(transport=transport, timeout=PATIENT)


def fails_by_the_deadline(send: Callable[[], object], error: type[httpx.TimeoutException]) -> BaseException:
    """``send()`` in a deadline scope of DEADLINE_S must raise ``error`` within the deadline + slack."""
    with (
        no_hang(GUARD_S),
        Stopwatch() as watch,
        pytest.raises(error) as caught,
        deadline_scope(time.monotonic() + DEADLINE_S),
    ):
        send()
    assert watch.seconds < DEADLINE_S + SLACK_S, f"ended after {watch.seconds:.2f} s"
    return caught.value


# -- hostile services end at the deadline ---------------------------------------------------------------
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body", "silent"])
def test_hostile_service_ends_at_the_deadline(ca: trustme.CA, mode: str, tls: bool) -> None:
    with LoopbackServer(mode, server_tls(ca) if tls else None) as srv, bounded_client(ca) as client:
        error = fails_by_the_deadline(lambda: client.post(srv.url, content=b'{"q": 1}'), httpx.TimeoutException)
    # silent over TLS: the handshake is what hangs, so it is a connect timeout
    expected = httpx.ConnectTimeout if (mode, tls) == ("silent", True) else httpx.ReadTimeout
    assert isinstance(error, expected), repr(error)


@pytest.mark.parametrize("mode", ["silent", "slow_reader"])
def test_a_request_body_the_service_reads_slowly_or_never_ends_at_the_deadline(ca: trustme.CA, mode: str) -> None:
    # Far more than loopback's send + receive buffers hold, and ~5 s at the slow reader's pace.
    body = b"x" * (64 * 1024 * 1024)
    with LoopbackServer(mode) as srv, bounded_client(ca) as client:
        fails_by_the_deadline(lambda: client.post(srv.url, content=body), httpx.WriteTimeout)


def test_a_deadline_already_passed_fails_before_connecting(ca: trustme.CA) -> None:
    with (
        LoopbackServer("fast") as srv,
        bounded_client(ca) as client,
        deadline_scope(time.monotonic() - 1),
        pytest.raises(httpx.ConnectTimeout, match="deadline passed"),
    ):
        client.get(srv.url)
    assert srv.connections == 0


def test_proxied_requests_are_bounded_too(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """install_client keeps httpx's own transports, the proxies from the environment included, and bounds them."""
    with LoopbackServer("trickle_headers") as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with httpx.Client(timeout=PATIENT) as client:
            install_client(client)
            fails_by_the_deadline(lambda: client.get("http://rerank.invalid/v1/rerank"), httpx.ReadTimeout)
        assert proxy.connections == 1  # it went through the proxy, not to the (unresolvable) host


# -- a caller that goes away ends the request -----------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "tls"),
    # Not (silent, https): a TLS handshake in progress is one blocking call; it ends by the deadline (documented).
    [("trickle_body", False), ("trickle_body", True), ("silent", False)],
)
def test_a_cancel_ends_the_request_long_before_the_deadline(ca: trustme.CA, mode: str, tls: bool) -> None:
    gone = threading.Event()
    timer = threading.Timer(0.3, gone.set)
    with LoopbackServer(mode, server_tls(ca) if tls else None) as srv, bounded_client(ca) as client:
        timer.start()
        with (
            no_hang(GUARD_S),
            Stopwatch() as watch,
            pytest.raises(httpx.TimeoutException, match="cancelled") as caught,
            deadline_scope(time.monotonic() + 60, gone),
        ):
            client.post(srv.url, content=b'{"q": 1}')
        timer.cancel()
    # A correctness bound, not a speed target: without the cancel it would run to the 60 s deadline.
    assert watch.seconds < 0.3 + CANCEL_POLL_S + CANCEL_SLACK_S, f"ended after {watch.seconds:.2f} s"
    assert isinstance(caught.value, httpx.ReadTimeout), repr(caught.value)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_cancellable_request_reads_in_slices_without_losing_bytes(ca: trustme.CA, tls: bool) -> None:
    gone = threading.Event()
    with LoopbackServer("fast", server_tls(ca) if tls else None) as srv, bounded_client(ca) as client:
        for _ in range(3):
            with deadline_scope(time.monotonic() + 60, gone):
                assert client.post(srv.url, content=b"x" * 100_000).text == "ok"
        assert srv.connections == 1
        gone.set()
        with deadline_scope(time.monotonic() + 60, gone), pytest.raises(httpx.TimeoutException, match="cancelled"):
            client.get(srv.url)


def test_cancel_scope_reaches_the_innermost_deadline_scope() -> None:
    gone = threading.Event()
    assert current_cancel() is None
    with cancel_scope(gone):
        assert current_cancel() is gone
        with deadline_scope(time.monotonic() + 5):
            assert current_cancel() is gone  # a deadline scope without its own event keeps the caller's
    assert current_cancel() is None


# -- normal services are unaffected --------------------------------------------------------------------
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_fast_service_answers_in_and_out_of_a_scope_on_one_connection(ca: trustme.CA, tls: bool) -> None:
    with LoopbackServer("fast", server_tls(ca) if tls else None) as srv, bounded_client(ca) as client:
        assert client.get(srv.url).text == "ok"
        with deadline_scope(time.monotonic() + DEADLINE_S):
            assert client.post(srv.url, content=b"x" * 100_000).text == "ok"  # several write pieces
        assert client.get(srv.url).text == "ok"
        assert srv.connections == 1  # the pooled connection (a wrapped stream) is kept and reused


def test_outside_a_scope_httpx_timeouts_apply_unchanged(ca: trustme.CA) -> None:
    with LoopbackServer("silent") as srv, bounded_client(ca) as client:
        with no_hang(GUARD_S), pytest.raises(httpx.ReadTimeout):
            client.get(srv.url, timeout=0.2)
        # In a scope, an httpx timeout shorter than the time left still wins (the shorter of the two).
        with no_hang(GUARD_S), pytest.raises(httpx.ReadTimeout), deadline_scope(time.monotonic() + 60):
            client.get(srv.url, timeout=0.2)


# -- the scope -------------------------------------------------------------------------------------------
def test_scope_sets_and_resets_the_deadline() -> None:
    assert current_deadline() is None
    with deadline_scope(100.0):
        assert current_deadline() == 100.0
        with deadline_scope(200.0):
            assert current_deadline() == 100.0  # an inner scope cannot extend the outer deadline
        with deadline_scope(50.0):
            assert current_deadline() == 50.0
        assert current_deadline() == 100.0
    assert current_deadline() is None


def test_scope_resets_after_an_exception(ca: trustme.CA) -> None:
    with (
        LoopbackServer("silent") as srv,
        bounded_client(ca) as client,
        pytest.raises(httpx.TimeoutException),
        deadline_scope(time.monotonic() + 0.2),
    ):
        client.get(srv.url)
    assert current_deadline() is None
    with pytest.raises(ValueError), deadline_scope(1.0):
        raise ValueError
    assert current_deadline() is None


def test_scope_is_per_thread() -> None:
    seen: list[float | None] = []
    with deadline_scope(100.0):
        thread = threading.Thread(target=lambda: seen.append(current_deadline()))
        thread.start()
        thread.join()
    assert seen == [None]  # a worker thread's requests are bounded only by its own scope


# -- install ---------------------------------------------------------------------------------------------
def test_install_is_idempotent_and_wraps_the_default_backend() -> None:
    with httpx.HTTPTransport() as transport:
        install(transport)
        install(transport)
        backend = transport._pool._network_backend
        assert isinstance(backend, DeadlineBackend) and isinstance(backend.inner, httpcore.SyncBackend)


def test_install_refuses_after_the_first_request() -> None:
    with LoopbackServer("fast") as srv, httpx.Client() as client:
        client.get(srv.url)
        with pytest.raises(RuntimeError, match="before the transport's first request"):
            install(client._transport)  # type: ignore[arg-type]


def test_install_refuses_a_transport_it_does_not_understand() -> None:
    transport = httpx.HTTPTransport()
    pool = transport._pool
    transport._pool = object()  # type: ignore[assignment]  # what a future httpx/httpcore might look like
    try:
        with pytest.raises(RuntimeError, match=re.escape(f"httpcore {httpcore.__version__}")):
            install(transport)
    finally:
        transport._pool = pool
        transport.close()
    with (
        httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client,
        pytest.raises(RuntimeError, match=re.escape("only httpx.HTTPTransport is supported")),
    ):
        install_client(client)
