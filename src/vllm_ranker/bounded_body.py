"""Reading an HTTP answer's body within the call's deadline (sync transport).

httpx's timeouts are per socket operation: a service that sends its body a few bytes at a time never trips
the read timeout, and a blocking client would wait for the whole body however long it takes. The async
transport is bounded by ``asyncio.timeout``; the sync one reads the body in chunks and gives up at the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def read_body(response: httpx.Response, deadline: float, clock: Callable[[], float] = time.monotonic) -> bytes:
    """The whole body, or ``httpx.ReadTimeout`` once the deadline passes between two chunks."""
    chunks: list[bytes] = []
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        if clock() > deadline:
            raise httpx.ReadTimeout("the answer was still arriving at the call's deadline", request=response.request)
    return b"".join(chunks)
