"""A whole-call deadline for blocking httpx requests, enforced at the socket.

httpx's timeouts are per socket operation: a service that sends its answer (headers included) a few bytes at a
time never trips the read timeout, so a blocking request can outlive any deadline. The async transport is bounded
by ``asyncio.timeout``; threads cannot be cancelled, so the sync transport needs every socket operation itself to
stop at the deadline.

This module wraps httpcore's network backend: while a :func:`deadline_scope` is active in the calling thread,
every connect, TLS handshake, read and write gets at most the time left before the deadline, and fails at once
(``httpcore.ConnectTimeout``/``ReadTimeout``/``WriteTimeout``, which httpx turns into its ``TimeoutException``s)
once it has passed. httpcore's sync connections do all their I/O in the thread that sends the request, so a
``ContextVar`` set around the request reaches every socket operation of that request and no other's, even on a
pooled connection shared over time by many threads. Outside a scope the backend is the wrapped one, unchanged.

A scope may also carry a cancel event (the gateway sets it when its gRPC caller cancels or disconnects): every
operation then fails at once once it is set, and a read in progress notices it within ``CANCEL_POLL_S``, because a
scope with an event reads in slices of that length (a recv that times out has consumed nothing, so the next slice
picks up where it left off). The request's connection is closed by httpcore on that failure, so the service sees
the caller go. A TLS handshake or a connect already in progress is one blocking call: it ends by the deadline,
and the request fails right after it.

Known residue (outside the socket calls this can bound): the DNS lookup, and ``socket.create_connection`` trying
several resolved addresses each with the clamped timeout; a request on such a host fails at the first operation
after the deadline instead.
"""

from __future__ import annotations

import contextvars
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

# The absolute deadline (time.monotonic()) of the request the current thread/task is sending, or None.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("vllm_ranker_deadline", default=None)
# Set when the caller of the request has gone (see cancel_scope); None when nobody can cancel it.
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("vllm_ranker_cancel", default=None)
CANCEL_POLL_S = 0.1

# Writes are handed to httpcore in pieces of at most this size, each with the time left at its start: httpcore's
# SyncStream.write gives *every* partial ``send`` the full timeout, so one big write to a service that reads
# slowly could otherwise wait the timeout many times over. A piece this small usually goes in one ``send``.
WRITE_PIECE = 16 * 1024


@contextmanager
def deadline_scope(deadline: float, cancel: threading.Event | None = None) -> Iterator[None]:
    """Bound every socket operation in this block (in this thread or task) by ``deadline``, a
    ``time.monotonic()`` value, and end them once ``cancel`` is set. Nested scopes keep the earlier deadline: an
    inner caller cannot extend the time its outer caller promised."""
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    cancel_token = _CANCEL.set(cancel or _CANCEL.get())
    try:
        yield
    finally:
        _CANCEL.reset(cancel_token)
        _DEADLINE.reset(token)


@contextmanager
def cancel_scope(cancel: threading.Event) -> Iterator[None]:
    """Rerank calls made in this block (in this thread or task) stop their HTTP requests once ``cancel`` is set:
    for a server whose caller can go away before the call ends (the gateway's gRPC callers)."""
    token = _CANCEL.set(cancel)
    try:
        yield
    finally:
        _CANCEL.reset(token)


def current_deadline() -> float | None:
    """The deadline of the innermost active :func:`deadline_scope`, or None outside any."""
    return _DEADLINE.get()


def current_cancel() -> threading.Event | None:
    """The cancel event of the innermost active scope, or None: the sync driver hands it to its worker threads,
    which do not inherit the caller's context."""
    return _CANCEL.get()


def _clamp(timeout: float | None, expired: type[httpcore.TimeoutException], what: str) -> float | None:
    """``timeout`` cut to the time left before the scope's deadline; ``expired`` at once when none is left or
    the caller has cancelled."""
    cancel = _CANCEL.get()
    if cancel is not None and cancel.is_set():
        raise expired(f"the caller cancelled the call before the {what}")
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired(f"the call's deadline passed before the {what}")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the current scope's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # One read is one recv (or one SSL read, which CPython bounds as a whole), so each read is bounded by
        # the time left and a trickle of small reads cannot add up past the deadline.
        if _CANCEL.get() is None:
            return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout, "answer was read"))
        # Cancellable: wait in slices, so that a cancel is seen while the service is still thinking.
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _clamp(None if until is None else until - time.monotonic(), httpcore.ReadTimeout, "answer was read")
            if left is not None and left <= 0:
                raise httpcore.ReadTimeout("timed out")
            piece = CANCEL_POLL_S if left is None else min(left, CANCEL_POLL_S)
            try:
                return self._inner.read(max_bytes, piece)
            except httpcore.ReadTimeout:
                if left is not None and left <= CANCEL_POLL_S:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if _DEADLINE.get() is None or len(buffer) <= WRITE_PIECE:
            self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout, "request was sent"))
            return
        view = memoryview(buffer)
        for start in range(0, len(view), WRITE_PIECE):
            piece = bytes(view[start : start + WRITE_PIECE])
            self._inner.write(piece, _clamp(timeout, httpcore.WriteTimeout, "request was sent"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # The TLS stream replaces this one in httpcore's connection: it must be wrapped too, or every read
        # after the handshake would escape the deadline.
        clamped = _clamp(timeout, httpcore.ConnectTimeout, "TLS handshake")
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, clamped))

    def get_extra_info(self, info: str) -> Any:
        # httpcore asks for "is_readable" (idle connection check), "ssl_object" (HTTP/2 via ALPN), "socket", ...
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """``inner`` (httpcore's SyncBackend by default) with connects bounded by the scope's deadline and
    connections wrapped in :class:`DeadlineStream`."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self.inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        clamped = _clamp(timeout, httpcore.ConnectTimeout, "connection was made")
        return DeadlineStream(self.inner.connect_tcp(host, port, clamped, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        clamped = _clamp(timeout, httpcore.ConnectTimeout, "connection was made")
        return DeadlineStream(self.inner.connect_unix_socket(path, clamped, socket_options))

    def sleep(self, seconds: float) -> None:
        # httpcore sleeps between connect retries (HTTPTransport(retries=...)): no use sleeping past the
        # deadline, the next connect would fail at once anyway.
        deadline = _DEADLINE.get()
        if deadline is not None:
            seconds = max(0.0, min(seconds, deadline - time.monotonic()))
        self.inner.sleep(seconds)


def install(transport: httpx.HTTPTransport) -> None:
    """Put a :class:`DeadlineBackend` into ``transport``'s connection pool (also a proxy's pool).

    httpx has no public way to choose the backend, so this sets httpcore 1.x's private ``_network_backend``;
    it refuses loudly if that attribute is gone (a future httpcore) rather than silently dropping the deadline.
    Connections copy the backend when they are made: install before the first request."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.ConnectionPool) or not isinstance(backend, httpcore.NetworkBackend):
        raise RuntimeError(
            f"cannot bound sync requests by the call's deadline: httpcore {httpcore.__version__} / httpx "
            f"{httpx.__version__} no longer keep the network backend at HTTPTransport._pool._network_backend "
            "(written for httpcore 1.0.x); update vllm_ranker.transport.deadline_backend for this version"
        )
    if isinstance(backend, DeadlineBackend):
        return
    if getattr(pool, "_connections", None):
        raise RuntimeError(
            "install the deadline backend before the transport's first request: "
            "its open connections keep the old backend"
        )
    pool._network_backend = DeadlineBackend(backend)


def install_client(client: httpx.Client) -> None:
    """:func:`install` into every transport of ``client``: its default one and those it mounted (the proxies
    it took from HTTP(S)_PROXY/ALL_PROXY), so the client keeps httpx's own choice of transports and settings."""
    default = getattr(client, "_transport", None)
    mounts = getattr(client, "_mounts", None)
    if not isinstance(default, httpx.BaseTransport) or not isinstance(mounts, dict):
        raise RuntimeError(
            f"cannot bound sync requests by the call's deadline: httpx {httpx.__version__} no longer keeps its "
            "transports at Client._transport/_mounts; update vllm_ranker.transport.deadline_backend for this version"
        )
    for transport in (default, *mounts.values()):
        if transport is None:  # a mount of None means "no proxy for these URLs": the default transport serves
            continue
        if not isinstance(transport, httpx.HTTPTransport):
            raise RuntimeError(
                f"cannot bound requests through {type(transport).__name__} by the call's deadline: "
                "only httpx.HTTPTransport is supported"
            )
        install(transport)
