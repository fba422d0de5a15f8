"""The only HTTP in the library: one batch's exchange (exchange.py) and its two drivers.

- ``exchange.py``: the exchange protocol, a generator that yields ``Send``/``Sleep`` and holds every rule of a
  try (retries, failover, deadline, errors, hints, reading the answer).
- ``sync_driver.py`` / ``async_driver.py``: carry those actions out with httpx, blocking or awaiting.
- ``deadline_backend.py``: every socket operation of the sync driver bounded by the call's deadline, and ended
  when a server's caller goes (``cancel_scope``, used by the gateway).
- ``balancer.py``: spreads a spec's requests over its endpoints, ejects failing ones.
"""

from vllm_ranker.transport.async_driver import AsyncTransport
from vllm_ranker.transport.deadline_backend import cancel_scope
from vllm_ranker.transport.exchange import DEFAULT_CLIENT_LIMIT
from vllm_ranker.transport.sync_driver import SyncTransport

__all__ = ["DEFAULT_CLIENT_LIMIT", "AsyncTransport", "SyncTransport", "cancel_scope"]
