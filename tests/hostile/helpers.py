"""Shared helpers of the hostile-input suite: a hard no-hang guard, an unused port, and elapsed time."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Hung(BaseException):
    """The code under test was still running at the guard's limit (a BaseException: no `except Exception` in
    the code under test can swallow it)."""


@contextmanager
def no_hang(seconds: float) -> Iterator[None]:
    """Fail (instead of waiting forever) when the block runs longer than ``seconds``: a SIGALRM interrupts even
    a blocking socket read in the main thread, where the sync client does its first request."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def refused_port() -> int:
    """A loopback port with nothing listening (bound once to get a free number, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
