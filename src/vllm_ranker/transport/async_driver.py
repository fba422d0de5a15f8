"""The asyncio driver of the exchange: httpx AsyncClients in shards of a few connections each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import httpx

from vllm_ranker.core.endpoint_policy import ANY, EndpointPolicy
from vllm_ranker.core.ordering import Batch
from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.stats import RerankStats
from vllm_ranker.transport._driving import Job, _broken, _unlink, _Work
from vllm_ranker.transport.address_guard import check_resolved_async, guard_async_client, proxied
from vllm_ranker.transport.balancer import EndpointPool
from vllm_ranker.transport.exchange import (
    DEFAULT_CLIENT_LIMIT,
    Answer,
    Broken,
    Reply,
    Send,
    Sleep,
    deadline_error,
    exchange,
)
from vllm_ranker.transport.tokenize import tokenize_exchange

log = logging.getLogger(__name__)

SHARD_CONNECTIONS = 8


class _AsyncShards:
    """``ceil(limit / SHARD_CONNECTIONS)`` AsyncClients splitting ``limit`` connections between them. A request goes
    to the shard with the most free connections (ties: the first), so sequential calls stay on shard 0's warm
    connections, heavy load spreads evenly, and no request waits in a full shard while another has room.
    One SSL context serves all shards (building one costs ~25 ms)."""

    def __init__(self, limit: int, verify: bool, policy: EndpointPolicy = ANY) -> None:
        context = httpx.create_ssl_context(verify=verify)
        sizes = [SHARD_CONNECTIONS] * (limit // SHARD_CONNECTIONS)
        if limit % SHARD_CONNECTIONS:
            sizes.append(limit % SHARD_CONNECTIONS)
        self.clients = [
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                verify=context,
                follow_redirects=False,
            )
            for size in sizes
        ]
        for client in self.clients:  # with an endpoint policy, every address connected to is checked first
            guard_async_client(client, policy)
        self.sizes = sizes
        self.busy = [0] * len(sizes)

    def pick(self) -> int:
        """Index of the shard with the most free connections, counted busy until ``done``; event-loop thread only
        (no lock needed)."""
        free = [size - busy for size, busy in zip(self.sizes, self.busy, strict=True)]
        index = free.index(max(free))
        self.busy[index] += 1
        return index

    def done(self, index: int) -> None:
        self.busy[index] -= 1

    def connections(self) -> int:
        pools: list[Any] = [client._transport for client in self.clients]  # httpx.AsyncHTTPTransport
        return sum(len(transport._pool.connections) for transport in pools)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    @property
    def is_closed(self) -> bool:
        return all(client.is_closed for client in self.clients)


class AsyncTransport:
    """Asyncio transport: pooled ``httpx.AsyncClient``s (sharded, see _AsyncShards); cancelling the caller cancels
    the requests."""

    def __init__(
        self, client_limit: int = DEFAULT_CLIENT_LIMIT, verify: bool = True, policy: EndpointPolicy = ANY
    ) -> None:
        self._http = _AsyncShards(client_limit, verify, policy)
        self._policy = policy
        self._http_unverified: _AsyncShards | None = None  # for params['tls_verify']=false, made on first use
        self._gate = asyncio.Semaphore(client_limit)
        self.client_limit = client_limit
        self.pool = EndpointPool()  # endpoint health, shared by every call of this client

    async def rerank(
        self, spec: RerankSpec, batches: Sequence[Batch], stats: RerankStats, deadline: float | None = None
    ) -> list[list[float]]:
        """One list of scores per batch; ``deadline`` (monotonic) when the call's began before (a tokenize step)."""
        jobs = [partial(exchange, spec, b, stats=stats, pool=self.pool) for b in batches]
        return await self._run(spec, jobs, deadline)

    async def tokenize(
        self, spec: RerankSpec, texts: Sequence[str], stats: RerankStats, deadline: float | None = None
    ) -> list[list[str]]:
        """Each text's token strings, by the model's tokenizer (``chunk.tokens``), one request per text."""
        jobs = [partial(tokenize_exchange, spec, i, t, stats=stats, pool=self.pool) for i, t in enumerate(texts)]
        return await self._run(spec, jobs, deadline)

    async def _run(self, spec: RerankSpec, jobs: Sequence[Job], deadline: float | None) -> list[Any]:
        deadline = time.monotonic() + spec.timeout if deadline is None else deadline
        work = _Work(jobs)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(spec.max_concurrency, len(jobs))):
                        group.create_task(self._worker(work, deadline))
        except TimeoutError:
            raise deadline_error(spec) from None
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        return work.results

    async def _worker(self, work: _Work, deadline: float) -> None:
        while (index := work.take()) is not None:
            steps = work.jobs[index](deadline)
            reply: Reply = None
            try:
                while True:
                    try:
                        action = steps.send(reply)
                    except StopIteration as done:
                        work.results[index] = done.value
                        break
                    if isinstance(action, Sleep):
                        await asyncio.sleep(action.seconds)
                        reply = None
                    else:
                        reply = await self._send(action)
            finally:
                steps.close()  # on cancellation: the exchange gives its endpoint slot back now, not at GC

    def _shards(self, verify: bool) -> _AsyncShards:
        if verify:
            return self._http
        if self._http_unverified is None:
            self._http_unverified = _AsyncShards(self.client_limit, False, self._policy)
        return self._http_unverified

    async def _send(self, action: Send) -> Answer | Broken:
        async with self._gate:
            shards = self._shards(action.verify)
            shard = shards.pick()
            started = time.monotonic()
            try:
                client = shards.clients[shard]
                if not self._policy.any_endpoint and proxied(client, action.url):
                    await check_resolved_async(self._policy, action.url)  # the proxy resolves the name
                # httpx's timeout bounds each socket operation; this bounds the whole request (timeout_ms).
                async with asyncio.timeout(action.timeout):
                    response = await client.post(
                        action.url, content=action.body, headers=action.headers, timeout=action.timeout
                    )
                _unlink(response)
                return Answer(
                    response.status_code,
                    response.content,
                    response.headers.get("retry-after"),
                    time.monotonic() - started,
                )
            except httpx.HTTPError as exc:
                return _broken(exc, time.monotonic() - started)
            except TimeoutError:  # only this request's own timeout: the call's is raised outside the TaskGroup
                return Broken("timeout", f"no whole answer within {action.timeout:.3g} s", time.monotonic() - started)
            finally:
                shards.done(shard)

    def connections(self) -> int:
        """HTTP connections open now, over all pools (for tests and diagnostics)."""
        return self._http.connections() + (self._http_unverified.connections() if self._http_unverified else 0)

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed and (self._http_unverified is None or self._http_unverified.is_closed)

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._http_unverified is not None:
            await self._http_unverified.aclose()
