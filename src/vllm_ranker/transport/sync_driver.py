"""The blocking driver of the exchange: one pooled ``httpx.Client``, a shared worker pool, the deadline backend."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx

from vllm_ranker.core.endpoint_policy import ANY, EndpointPolicy
from vllm_ranker.core.ordering import Batch
from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.stats import RerankStats
from vllm_ranker.transport._driving import Job, _broken, _unlink, _Work
from vllm_ranker.transport.address_guard import check_resolved, guard_client, proxied
from vllm_ranker.transport.balancer import EndpointPool
from vllm_ranker.transport.deadline_backend import current_cancel, deadline_scope, install_client
from vllm_ranker.transport.exchange import (
    DEFAULT_CLIENT_LIMIT,
    Answer,
    Broken,
    Reply,
    Send,
    Sleep,
    exchange,
)
from vllm_ranker.transport.tokenize import tokenize_exchange

log = logging.getLogger(__name__)


class SyncTransport:
    """Blocking transport: one pooled ``httpx.Client`` and a shared worker pool; the calling thread works too,
    so a lone batch is sent with no thread hop at all."""

    def __init__(
        self, client_limit: int = DEFAULT_CLIENT_LIMIT, verify: bool = True, policy: EndpointPolicy = ANY
    ) -> None:
        self._http = httpx.Client(
            limits=httpx.Limits(max_connections=client_limit, max_keepalive_connections=client_limit),
            verify=verify,
            follow_redirects=False,
        )
        self._http_unverified = httpx.Client(  # for params['tls_verify']=false; no socket until used
            limits=httpx.Limits(max_connections=client_limit, max_keepalive_connections=client_limit),
            verify=False,
            follow_redirects=False,
        )
        # httpx's timeouts are per socket operation; a blocking request cannot be cancelled, so every socket
        # operation itself is bounded by the call's deadline (deadline_backend.py).
        install_client(self._http)
        install_client(self._http_unverified)
        # With an endpoint policy, every address connected to is checked first (address_guard.py).
        guard_client(self._http, policy)
        guard_client(self._http_unverified, policy)
        self._policy = policy
        self._gate = threading.BoundedSemaphore(client_limit)
        self._pool = ThreadPoolExecutor(max_workers=client_limit, thread_name_prefix="vllm-ranker")
        self.client_limit = client_limit
        self.pool = EndpointPool()  # endpoint health, shared by every call of this client
        self._closed = False

    def rerank(
        self, spec: RerankSpec, batches: Sequence[Batch], stats: RerankStats, deadline: float | None = None
    ) -> list[list[float]]:
        """One list of scores per batch; ``deadline`` (monotonic) when the call's began before (a tokenize step)."""
        return self._run(spec, [partial(exchange, spec, b, stats=stats, pool=self.pool) for b in batches], deadline)

    def tokenize(
        self, spec: RerankSpec, texts: Sequence[str], stats: RerankStats, deadline: float | None = None
    ) -> list[list[str]]:
        """Each text's token strings, by the model's tokenizer (``chunk.tokens``), one request per text."""
        jobs = [partial(tokenize_exchange, spec, i, t, stats=stats, pool=self.pool) for i, t in enumerate(texts)]
        return self._run(spec, jobs, deadline)

    def _run(self, spec: RerankSpec, jobs: Sequence[Job], deadline: float | None) -> list[Any]:
        deadline = time.monotonic() + spec.timeout if deadline is None else deadline
        cancel = current_cancel()  # the pool's threads do not inherit the caller's context: handed on explicitly
        work = _Work(jobs)
        helpers = [
            self._pool.submit(self._worker, work, deadline, cancel)
            for _ in range(min(spec.max_concurrency, len(jobs)) - 1)
        ]
        self._worker(work, deadline, cancel)
        for future in helpers:
            future.result()
        if work.error is not None:
            raise work.error
        return work.results

    def _worker(self, work: _Work, deadline: float, cancel: threading.Event | None) -> None:
        while (index := work.take()) is not None:
            try:
                work.results[index] = self._drive(work.jobs[index](deadline), deadline, cancel)
            except BaseException as exc:  # handed to the calling thread, which re-raises it
                work.fail(exc)
                return

    def _drive(
        self, steps: Generator[Send | Sleep, Reply, Any], deadline: float, cancel: threading.Event | None
    ) -> Any:
        reply: Reply = None
        try:
            while True:
                try:
                    action = steps.send(reply)
                except StopIteration as done:
                    return done.value
                if isinstance(action, Sleep):
                    if cancel is None:
                        time.sleep(action.seconds)
                    else:
                        cancel.wait(action.seconds)  # a retry's back-off ends when the caller goes
                    reply = None
                else:
                    reply = self._send(action, deadline, cancel)
        finally:
            steps.close()

    def _send(self, action: Send, deadline: float, cancel: threading.Event | None) -> Answer | Broken:
        started = time.monotonic()
        # The exchange's timeout is what is left of the batch's own limit (timeout_ms) or the call's deadline.
        limit = min(deadline, started + action.timeout)
        if not self._gate.acquire(timeout=max(0.0, limit - started)):
            return Broken("timeout", "client-wide request limit still full at the deadline", 0.0)
        http = self._http if action.verify else self._http_unverified
        try:
            if not self._policy.any_endpoint and proxied(http, action.url):
                check_resolved(self._policy, action.url)  # the proxy resolves the name: checked here first
            with (
                deadline_scope(limit, cancel),
                http.stream(
                    "POST", action.url, content=action.body, headers=action.headers, timeout=action.timeout
                ) as response,
            ):
                body = response.read()  # bounded by the deadline too: every socket read is
            _unlink(response)
            return Answer(
                response.status_code,
                body,
                response.headers.get("retry-after"),
                time.monotonic() - started,
            )
        except httpx.HTTPError as exc:
            return _broken(exc, time.monotonic() - started)
        finally:
            self._gate.release()

    def connections(self) -> int:
        """HTTP connections open now, over both pools (for tests and diagnostics)."""
        pools: list[Any] = [self._http._transport, self._http_unverified._transport]  # httpx.HTTPTransport
        return sum(len(transport._pool.connections) for transport in pools)

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed and self._http_unverified.is_closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._http.close()
            self._http_unverified.close()


# httpcore's async connection pool does work proportional to its size on every request (encode/httpx#3215): one
# 64-connection AsyncClient spent most of a core on bookkeeping at 64 concurrent searches (async was 1.7x the sync
# loop instead of >= 3x). Several small pools keep that cost flat; 8 connections per pool measured best here.
