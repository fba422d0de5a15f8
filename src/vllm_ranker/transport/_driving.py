"""What both drivers share: the work list of one call (its rerank batches, or its texts to tokenize), and turning
httpx outcomes into exchange replies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

import httpx

from vllm_ranker.transport.exchange import (
    TLS_HINT,
    Broken,
    BrokenKind,
    Reply,
    Send,
    Sleep,
    is_tls_failure,
)

log = logging.getLogger(__name__)


# One request of a call (a batch to rerank, a text to tokenize): its exchange, made for the call's deadline.
Job = Callable[[float], Generator[Send | Sleep, Reply, Any]]


class _Work:
    """The requests of one call, handed out to workers one at a time; the first failure stops the rest."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = jobs
        self.results: list[Any] = [None] * len(jobs)
        self.error: BaseException | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.error is not None or self._next >= len(self.jobs):
                return None
            index = self._next
            self._next += 1
            return index

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error


_SPENT = httpx.ByteStream(b"")


def _unlink(response: httpx.Response) -> None:
    """Cut the cycle between an httpx Response and its stream (they point at each other), which only the
    cyclic GC would free, and which holds the request with its body: a whole batch of documents. Cut, the body
    goes as soon as the answer is read, so memory stays at the batches in flight (tests/unit/test_memory.py)."""
    response.stream = _SPENT


def _broken(exc: httpx.HTTPError, seconds: float) -> Broken:
    if is_tls_failure(exc):  # a certificate that does not verify will not verify on a retry either
        return Broken("tls", f"{type(exc).__name__}: {exc} — {TLS_HINT}", seconds)
    kind: BrokenKind
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        kind = "connect"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "broken"
    # The exception text never holds headers; the URL's user-info is redacted by the caller's message.
    return Broken(kind, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, seconds)
