"""The only place that does HTTP: pooled clients, one deadline per call, bounded concurrency, retries, errors.

The exchange of one batch (send, judge the answer, maybe back off and send again) is written once, as a
generator that yields what to do (``Send``/``Sleep``); the sync and async transports only carry those actions
out. So both clients share one implementation of the retry, deadline and error rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .answer_json import loads_answer
from .deadline_backend import deadline_scope, install_client
from .endpoint_security import REDIRECT_HINT, TLS_HINT, basic_auth_header, is_tls_failure, secrets_of
from .endpoints import FAILED, NEUTRAL, OK, EndpointPool
from .engine import Batch
from .errors import RerankServiceError, RerankTimeout
from .providers import MalformedAnswer, Target
from .providers.base import error_message
from .redaction import redact
from .spec import RerankSpec
from .stats import RerankStats

log = logging.getLogger(__name__)

DEFAULT_CLIENT_LIMIT = 64  # requests in flight per client, across all its concurrent searches
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
USER_AGENT = "vllm-ranker/0.1"


@dataclass(frozen=True, slots=True)
class Send:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float
    verify: bool = True  # TLS certificate verification (params['tls_verify'])


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Broken:
    """No HTTP answer: ``kind`` is connect (nothing sent: safe to retry), broken (connection lost), timeout."""

    kind: str
    detail: str
    seconds: float


Reply = Answer | Broken | None
Exchange = Generator[Send | Sleep, Reply, list[float]]


def encode_body(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:
        # orjson refuses lone surrogates; escaped JSON text is still valid JSON.
        return json.dumps(payload, ensure_ascii=True).encode("ascii")


def is_retriable(reply: Answer | Broken) -> bool:
    if isinstance(reply, Broken):
        return reply.kind in ("connect", "broken")
    return reply.status == 429 or (reply.status >= 500 and reply.status != 501)


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    text = header.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with up to 25% jitter (attempt 0 is the first retry)."""
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * (1 + 0.25 * rng()))


def endpoint_health(reply: Answer | Broken | None) -> str:
    """What one reply says about its endpoint: a 4xx or 429 is the request's or the quota's fault, not the
    endpoint's; no reply at all (the call was cancelled) says nothing."""
    if reply is None:
        return NEUTRAL
    if isinstance(reply, Broken):
        return FAILED
    if reply.status >= 500 and reply.status != 501:
        return FAILED
    return OK if reply.status < 400 else NEUTRAL


def exchange(
    spec: RerankSpec,
    batch: Batch,
    deadline: float,
    stats: RerankStats,
    pool: EndpointPool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Exchange:
    """Send one batch until it succeeds, fails for good, or the call's deadline passes; return its scores.

    With several endpoints, each try goes to the least loaded healthy one; after a retriable failure the next
    try goes at once to an endpoint this batch has not tried yet (no backoff: a different server), and once all
    were tried, to another one after the backoff. A batch may try each endpoint once even when ``max_retries``
    is lower.
    """
    pool = pool or EndpointPool()
    targets = spec.targets
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
    if spec.api_key is not None:
        headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
    # Endpoints of one spec share model and options: one body serves every try on every endpoint.
    body = encode_body(spec.provider.build_body(targets[0], batch.query, batch.documents))
    allowed_retries = max(spec.max_retries, len(targets) - 1)
    attempt = 0
    backoffs = 0
    tried: set[str] = set()
    avoid: set[str] = set()
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise _timeout(spec)
        target = pool.acquire(targets, avoid)
        tried.add(target.url)
        reply: Reply = None
        try:
            reply = yield Send(target.url, body, headers | basic_auth_header(target), remaining, spec.tls_verify)
        finally:  # also when the call is cancelled while this request is out
            pool.release(targets, target.url, endpoint_health(reply), spec.eject_after, spec.eject_seconds)
        assert reply is not None
        stats.add(requests=1, service_seconds=reply.seconds)
        if isinstance(reply, Answer) and 200 <= reply.status < 300:
            return _scores(spec, target, reply, len(batch.documents), stats)
        if isinstance(reply, Broken) and (reply.kind == "timeout" or clock() >= deadline):
            raise _timeout(spec)  # also a connect that the deadline cut short: say why
        if attempt >= allowed_retries or not is_retriable(reply):
            raise _failure(spec, target, reply, attempt)
        untried = {t.url for t in targets} - tried
        if untried:
            avoid = tried.copy()
            delay = 0.0
            stats.add(failovers=1)
        else:
            avoid = {target.url} if len(targets) > 1 else set()
            delay = backoff_seconds(backoffs)
            backoffs += 1
            if isinstance(reply, Answer):
                delay = max(delay, retry_after_seconds(reply.retry_after) or 0.0)
        if clock() + delay >= deadline:
            raise _failure(spec, target, reply, attempt, note="the next try would pass the call's deadline")
        stats.add(retries=1)
        attempt += 1
        log.debug(
            "rerank retry %d of %d for query %d, documents %d-%d: %s from %s; %s",
            attempt, allowed_retries, batch.query_index, batch.start, batch.start + len(batch.documents) - 1,
            _what(reply), redact(target.url),
            "failing over to another endpoint" if untried else f"next try in {delay:.2f} s",
        )
        if delay:
            yield Sleep(delay)


def _what(reply: Answer | Broken) -> str:
    return f"HTTP {reply.status}" if isinstance(reply, Answer) else f"{reply.kind} error"


def _scores(spec: RerankSpec, target: Target, reply: Answer, n_docs: int, stats: RerankStats) -> list[float]:
    where = f"call service failed: {spec.provider.name} at {redact(target.url)}"
    # Errors are raised outside the ``except`` blocks: the decoder's and parser's exceptions hold the body,
    # which may echo the key, and would otherwise stay reachable as ``__context__``.
    problem: str | None = None
    answer: Any = None
    try:
        answer = loads_answer(reply.body)  # NaN/Infinity literals too (answer_json.py)
    except orjson.JSONDecodeError:
        problem = f"answered HTTP {reply.status} with a body that is not JSON: {_snippet(reply.body)}"
    scores: list[float] = []
    if problem is None:
        try:
            scores = spec.provider.parse_scores(answer, n_docs)
        except MalformedAnswer as exc:
            problem = f"answered with a malformed {spec.provider.name} rerank response: {exc}"
    if problem is not None:
        raise RerankServiceError(redact(f"{where} {problem}", secrets_of(spec.api_key, target)), status=reply.status,
                                 kind="malformed")
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(usage, dict):
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            stats.add(prompt_tokens=tokens)
    return scores


_HINTS = {
    400: "the service rejected the request; check the documents and options (an old vLLM needs params['model_name'])",
    401: "check the API key (params['credential'] or the provider's environment variable)",
    403: "check the API key's permissions",
    404: "check params['endpoint'] (vLLM serves /rerank, /v1/rerank, /v2/rerank) and params['model_name']",
    413: "lower params['maxBatch'] or truncate the documents",
    429: "the service is rate limiting: lower max_concurrency or raise max_retries/timeout",
    **dict.fromkeys((301, 302, 303, 307, 308), REDIRECT_HINT),
}


def _failure(
    spec: RerankSpec, target: Target, reply: Answer | Broken, attempt: int, note: str = ""
) -> RerankServiceError:
    where = f"call service failed: {spec.provider.name} at {redact(target.url)}"
    tries = f" after {attempt + 1} tries" if attempt else ""
    if isinstance(reply, Broken):
        hint = (
            "is the rerank service running and reachable at this address?" if reply.kind == "connect" else ""
        )
        message = f"{where}: {reply.kind} error{tries}: {reply.detail}"
        status = None
        kind = reply.kind
    else:
        try:
            own = error_message(orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            own = None
        text = own if own is not None else _snippet(reply.body)
        message = f"{where}: HTTP {reply.status}{tries}: {text}"
        hint = _HINTS.get(reply.status, "the service failed; see its log" if reply.status >= 500 else "")
        status = reply.status
        kind = "http"
    if note:
        message += f" ({note})"
    if hint:
        message += f" — {hint}"
    return RerankServiceError(redact(message, secrets_of(spec.api_key, target)), status=status, kind=kind)


def _timeout(spec: RerankSpec) -> RerankTimeout:
    return RerankTimeout(
        f"call service failed: {spec.provider.name} rerank did not finish within the call's deadline of "
        f"{spec.timeout:g} s — raise params['timeout'] or lower the number of candidates"
    )


def _snippet(body: bytes, limit: int = 300) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "..."


class _Work:
    """The batches of one call, handed out to workers one at a time; the first failure stops the rest."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        self.batches = batches
        self.results: list[list[float] | None] = [None] * len(batches)
        self.error: BaseException | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.error is not None or self._next >= len(self.batches):
                return None
            index = self._next
            self._next += 1
            return index

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error


class SyncTransport:
    """Blocking transport: one pooled ``httpx.Client`` and a shared worker pool; the calling thread works too,
    so a lone batch is sent with no thread hop at all."""

    def __init__(self, client_limit: int = DEFAULT_CLIENT_LIMIT, verify: bool = True) -> None:
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
        self._gate = threading.BoundedSemaphore(client_limit)
        self._pool = ThreadPoolExecutor(max_workers=client_limit, thread_name_prefix="vllm-ranker")
        self.client_limit = client_limit
        self.pool = EndpointPool()  # endpoint health, shared by every call of this client
        self._closed = False

    def rerank(self, spec: RerankSpec, batches: Sequence[Batch], stats: RerankStats) -> list[list[float]]:
        deadline = time.monotonic() + spec.timeout
        work = _Work(batches)
        helpers = [
            self._pool.submit(self._worker, spec, work, deadline, stats)
            for _ in range(min(spec.max_concurrency, len(batches)) - 1)
        ]
        self._worker(spec, work, deadline, stats)
        for future in helpers:
            future.result()
        if work.error is not None:
            raise work.error
        return [r for r in work.results if r is not None]

    def _worker(self, spec: RerankSpec, work: _Work, deadline: float, stats: RerankStats) -> None:
        while (index := work.take()) is not None:
            try:
                work.results[index] = self._drive(
                    exchange(spec, work.batches[index], deadline, stats, self.pool), deadline
                )
            except BaseException as exc:  # handed to the calling thread, which re-raises it
                work.fail(exc)
                return

    def _drive(self, steps: Exchange, deadline: float) -> list[float]:
        reply: Reply = None
        try:
            while True:
                try:
                    action = steps.send(reply)
                except StopIteration as done:
                    scores: list[float] = done.value
                    return scores
                if isinstance(action, Sleep):
                    time.sleep(action.seconds)
                    reply = None
                else:
                    reply = self._send(action, deadline)
        finally:
            steps.close()

    def _send(self, action: Send, deadline: float) -> Answer | Broken:
        started = time.monotonic()
        if not self._gate.acquire(timeout=max(0.0, deadline - started)):
            return Broken("timeout", "client-wide request limit still full at the deadline", 0.0)
        try:
            with deadline_scope(deadline), (self._http if action.verify else self._http_unverified).stream(
                "POST", action.url, content=action.body, headers=action.headers, timeout=action.timeout
            ) as response:
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
SHARD_CONNECTIONS = 8


class _AsyncShards:
    """``ceil(limit / SHARD_CONNECTIONS)`` AsyncClients splitting ``limit`` connections between them. A request goes
    to the shard with the most free connections (ties: the first), so sequential calls stay on shard 0's warm
    connections, heavy load spreads evenly, and no request waits in a full shard while another has room.
    One SSL context serves all shards (building one costs ~25 ms)."""

    def __init__(self, limit: int, verify: bool) -> None:
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

    def __init__(self, client_limit: int = DEFAULT_CLIENT_LIMIT, verify: bool = True) -> None:
        self._http = _AsyncShards(client_limit, verify)
        self._http_unverified: _AsyncShards | None = None  # for params['tls_verify']=false, made on first use
        self._gate = asyncio.Semaphore(client_limit)
        self.client_limit = client_limit
        self.pool = EndpointPool()  # endpoint health, shared by every call of this client

    async def rerank(
        self, spec: RerankSpec, batches: Sequence[Batch], stats: RerankStats
    ) -> list[list[float]]:
        deadline = time.monotonic() + spec.timeout
        work = _Work(batches)
        try:
            async with asyncio.timeout(spec.timeout):
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(spec.max_concurrency, len(batches))):
                        group.create_task(self._worker(spec, work, deadline, stats))
        except TimeoutError:
            raise _timeout(spec) from None
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        return [r for r in work.results if r is not None]

    async def _worker(self, spec: RerankSpec, work: _Work, deadline: float, stats: RerankStats) -> None:
        while (index := work.take()) is not None:
            steps = exchange(spec, work.batches[index], deadline, stats, self.pool)
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
            self._http_unverified = _AsyncShards(self.client_limit, verify=False)
        return self._http_unverified

    async def _send(self, action: Send) -> Answer | Broken:
        async with self._gate:
            shards = self._shards(action.verify)
            shard = shards.pick()
            started = time.monotonic()
            try:
                response = await shards.clients[shard].post(
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


_SPENT = httpx.ByteStream(b"")


def _unlink(response: httpx.Response) -> None:
    """Cut the cycle between an httpx Response and its stream (they point at each other), which only the
    cyclic GC would free, and which holds the request with its body: a whole batch of documents. Cut, the body
    goes as soon as the answer is read, so memory stays at the batches in flight (tests/unit/test_memory.py)."""
    response.stream = _SPENT


def _broken(exc: httpx.HTTPError, seconds: float) -> Broken:
    if is_tls_failure(exc):  # a certificate that does not verify will not verify on a retry either
        return Broken("tls", f"{type(exc).__name__}: {exc} — {TLS_HINT}", seconds)
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        kind = "connect"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "broken"
    # The exception text never holds headers; the URL's user-info is redacted by the caller's message.
    return Broken(kind, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, seconds)
