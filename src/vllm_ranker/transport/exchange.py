"""One batch's exchange with a rerank service, written once as a generator for both drivers (and, through
``attempts``, any other request to the service: the tokenizer's, tokenize.py).

``exchange()`` yields what to do (``Send`` a request, ``Sleep``) and is sent what happened (an ``Answer`` or a
reply that ``Broken`` off); it returns the batch's scores or raises the error that ended it. It holds every rule
of a try: retries and backoff, failover between endpoints, the call's deadline, error messages and hints,
reading the answer's JSON. The drivers (sync_driver.py, async_driver.py) only carry the actions out.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson

from vllm_ranker.core.endpoint_checks import basic_token
from vllm_ranker.core.ordering import Batch
from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.errors import FailureKind, RerankServiceError, RerankTimeout
from vllm_ranker.providers import Provider, Target
from vllm_ranker.providers.base import error_message
from vllm_ranker.stats import RerankStats
from vllm_ranker.transport.answers import read_answer, secrets_of, snippet
from vllm_ranker.transport.balancer import FAILED, NEUTRAL, OK, EndpointPool
from vllm_ranker.values.redaction import redact

log = logging.getLogger(__name__)

TLS_HINT = (
    "the service's TLS certificate could not be verified: give it a certificate from a trusted CA, or point the "
    "SSL_CERT_FILE environment variable at a bundle holding its CA; params['tls_verify']=false turns "
    "verification off (unsafe: anyone on the path can read the documents and the API key)"
)
REDIRECT_HINT = (
    "redirects are not followed (the Authorization header could go to another host): set params['endpoint'] "
    "to the URL the service redirects to"
)


def basic_auth_header(target: Target) -> dict[str, str]:
    """``Authorization: Basic`` from the endpoint's user-info, else nothing (spec.py refuses it with an API key)."""
    if target.userinfo is None:
        return {}
    return {"Authorization": f"Basic {basic_token(target.userinfo).reveal()}"}


def is_tls_failure(exc: BaseException) -> bool:
    """True when an httpx error comes from a TLS handshake/certificate failure (not worth retrying)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return True
        current = current.__cause__ or current.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL:" in text


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


BrokenKind = Literal["connect", "broken", "timeout", "tls"]


@dataclass(frozen=True, slots=True)
class Broken:
    """No HTTP answer: ``kind`` is connect (nothing sent: safe to retry), broken (connection lost), timeout, or
    tls (the certificate did not verify: never retried)."""

    kind: BrokenKind
    detail: str
    seconds: float


Reply = Answer | Broken | None
Exchange = Generator[Send | Sleep, Reply, list[float]]
T = TypeVar("T")


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
    """Send one batch until it succeeds, fails for good, or the call's deadline (or the batch's own
    ``timeout_ms``, whichever comes first) passes; return its scores (the rules of a try: ``attempts``)."""
    # Endpoints of one spec share model and options: one body serves every try on every endpoint.
    body = encode_body(spec.provider.build_body(spec.targets[0], batch.query, batch.documents))
    last = batch.start + len(batch.documents) - 1
    return (
        yield from attempts(
            spec,
            body,
            lambda target: target.url,
            lambda target, reply: _scores(spec, target, reply, len(batch.documents), stats),
            deadline,
            stats,
            pool,
            clock,
            what=f"rerank retry %d of %d for query {batch.query_index}, documents {batch.start}-{last}",
        )
    )


def attempts(
    spec: RerankSpec,
    body: bytes,
    url_of: Callable[[Target], str],
    read: Callable[[Target, Answer], T],
    deadline: float,
    stats: RerankStats,
    pool: EndpointPool | None = None,
    clock: Callable[[], float] = time.monotonic,
    *,
    what: str,
    counter: str = "requests",
    timer: str | None = "service_seconds",
    hint: Callable[[int], str] | None = None,
) -> Generator[Send | Sleep, Reply, T]:
    """POST ``body`` to ``url_of`` an endpoint until a 2xx answer, which ``read`` turns into the result; a failure
    for good, or the deadline, raises. ``what``: the debug line of a retry (``%d`` the try, ``%d`` the most);
    ``counter`` and ``timer``: the stats fields counting the requests sent and summing their time (None: not
    summed); ``hint``: what to change after an HTTP status (the provider's ``status_hint`` when None).

    With several endpoints, each try goes to the least loaded healthy one; after a retriable failure the next
    try goes at once to an endpoint this request has not tried yet (no backoff: a different server), and once all
    were tried, to another one after the backoff. A request may try each endpoint once even when ``max_retries``
    is lower.
    """
    pool = pool or EndpointPool()
    targets = spec.targets
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
    if spec.api_key is not None:
        headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
    allowed_retries = max(spec.max_retries, len(targets) - 1)
    attempt = 0
    backoffs = 0
    tried: set[str] = set()
    avoid: set[str] = set()
    # Milvus's timeout_ms bounds one batch, its retries included (as Milvus's context does), from its first try;
    # the call's deadline still bounds everything, so it can only come sooner.
    limit = deadline if spec.request_timeout is None else min(deadline, clock() + spec.request_timeout)
    while True:
        remaining = limit - clock()
        if remaining <= 0:
            raise _expired(spec, limit, deadline)
        target = pool.acquire(targets, avoid)
        tried.add(target.url)
        reply: Reply = None
        try:
            url = url_of(target)
            reply = yield Send(url, body, headers | basic_auth_header(target), remaining, spec.tls_verify)
        finally:  # also when the call is cancelled while this request is out
            pool.release(targets, target.url, endpoint_health(reply), spec.eject_after, spec.eject_seconds)
        assert reply is not None
        stats.add(**{counter: 1}, **({timer: reply.seconds} if timer else {}))
        if isinstance(reply, Answer) and 200 <= reply.status < 300:
            return read(target, reply)
        if isinstance(reply, Broken) and (reply.kind == "timeout" or clock() >= limit):
            raise _expired(spec, limit, deadline)  # also a connect that the deadline cut short: say why
        if attempt >= allowed_retries or not is_retriable(reply):
            raise _failure(spec, target, reply, attempt, url=url, status_advice=hint)
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
        if clock() + delay >= limit:
            passed = "the call's deadline" if limit >= deadline else "params['timeout_ms']"
            raise _failure(spec, target, reply, attempt, f"the next try would pass {passed}", url, hint)
        stats.add(retries=1)
        attempt += 1
        log.debug(
            what + ": %s from %s; %s",
            attempt,
            allowed_retries,
            _what(reply),
            redact(url),
            "failing over to another endpoint" if untried else f"next try in {delay:.2f} s",
        )
        if delay:
            yield Sleep(delay)


def _what(reply: Answer | Broken) -> str:
    return f"HTTP {reply.status}" if isinstance(reply, Answer) else f"{reply.kind} error"


def _scores(spec: RerankSpec, target: Target, reply: Answer, n_docs: int, stats: RerankStats) -> list[float]:
    parse = spec.provider.parse_scores
    answer, scores = read_answer(spec, target, reply.status, reply.body, lambda a: parse(a, n_docs), "rerank response")
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(usage, dict):
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            stats.add(prompt_tokens=tokens)
    return scores


_HINTS = {
    413: "lower params['maxBatch'] or truncate the documents",
    429: "the service is rate limiting: lower max_concurrency or raise max_retries/timeout",
    **dict.fromkeys((301, 302, 303, 307, 308), REDIRECT_HINT),
}


def status_hint(provider: Provider, status: int) -> str:
    """What to change after an HTTP ``status`` from ``provider``: its routes, key variables and model names, never
    another provider's (a 404 from Cohere must not say what vLLM serves)."""
    label = provider.label or provider.name
    keys = " or ".join(["params['credential']", *provider.key_env])
    model = f" (e.g. '{provider.model_hint}')" if provider.model_hint else ""
    if status == 400:
        old_vllm = " (an old vLLM needs params['model_name'])" if provider.name == "vllm" else ""
        return f"{label} rejected the request; check the documents and options{old_vllm}"
    if status == 401:
        started = " (the server's --api-key)" if provider.self_hosted else ""
        return f"check the {label} API key{started}: {keys}"
    if status == 403:
        return f"check the {label} API key's permissions ({keys})"
    if status == 404:
        where = f"{label} serves {provider.serves or provider.route}"
        if provider.name == "tei":  # TEI has no model in the request: the path is all a 404 can mean
            return f"check params['endpoint'] ({where})"
        return f"check params['endpoint'] ({where}) and params['model_name']{model}"
    if status >= 500:
        return f"{label} failed; " + ("see its log" if provider.self_hosted else "try again later")
    return _HINTS.get(status, "")


def _failure(
    spec: RerankSpec,
    target: Target,
    reply: Answer | Broken,
    attempt: int,
    note: str = "",
    url: str = "",
    status_advice: Callable[[int], str] | None = None,
) -> RerankServiceError:
    where = f"call service failed: {spec.provider.name} at {redact(url or target.url)}"
    tries = f" after {attempt + 1} tries" if attempt else ""
    if isinstance(reply, Broken):
        hint = "is the rerank service running and reachable at this address?" if reply.kind == "connect" else ""
        message = f"{where}: {reply.kind} error{tries}: {reply.detail}"
        status = None
        kind: FailureKind = reply.kind
    else:
        try:
            own = error_message(orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            own = None
        text = own if own is not None else snippet(reply.body)
        message = f"{where}: HTTP {reply.status}{tries}: {text}"
        hint = status_advice(reply.status) if status_advice else status_hint(spec.provider, reply.status)
        status = reply.status
        kind = "http"
    if note:
        message += f" ({note})"
    if hint:
        message += f" — {hint}"
    return RerankServiceError(redact(message, secrets_of(spec.api_key, target)), status=status, kind=kind)


def deadline_error(spec: RerankSpec) -> RerankTimeout:
    return RerankTimeout(
        f"call service failed: {spec.provider.name} rerank did not finish within the call's deadline of "
        f"{spec.timeout:g} s — raise params['timeout'] or lower the number of candidates"
    )


def _expired(spec: RerankSpec, limit: float, deadline: float) -> RerankTimeout:
    if limit >= deadline or spec.request_timeout is None:
        return deadline_error(spec)
    return RerankTimeout(
        f"call service failed: {spec.provider.name} did not answer one rerank request (a batch of up to "
        f"{spec.batch_size} documents, its retries included) within params['timeout_ms'] = "
        f"{spec.request_timeout * 1000:g} ms — raise params['timeout_ms'] or lower params['maxBatch']"
    )
