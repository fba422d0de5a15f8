"""Reading a service's answer: its JSON (NaN and Infinity literals too), what a provider's parser reads from it,
and the error when either fails, with every secret of the request masked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from vllm_ranker.core.endpoint_checks import basic_token
from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.errors import RerankServiceError
from vllm_ranker.providers import MalformedAnswer, Target
from vllm_ranker.values.redaction import Secret, redact

T = TypeVar("T")

_NON_FINITE = re.compile(rb"-?Infinity|NaN")


def loads_answer(body: bytes) -> Any:
    """The decoded answer; raises ``orjson.JSONDecodeError`` when it is not JSON (even with NaN/Infinity)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if not _NON_FINITE.search(body):
            raise
        failure = error
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise failure from None


def secrets_of(api_key: Secret | None, target: Target) -> list[Secret | None]:
    """Everything that must be masked in a message about a request to ``target``."""
    if target.userinfo is None:
        return [api_key]
    password = target.userinfo.reveal().partition(":")[2]
    return [api_key, target.userinfo, basic_token(target.userinfo), Secret(password) if password else None]


def read_answer(
    spec: RerankSpec, target: Target, status: int, body: bytes, parse: Callable[[Any], T], what: str, url: str = ""
) -> tuple[Any, T]:
    """The decoded answer and what ``parse`` reads from it; a ``malformed`` RerankServiceError naming ``what``
    (e.g. "rerank response") when the body is not JSON or ``parse`` raises ``MalformedAnswer``."""
    where = f"call service failed: {spec.provider.name} at {redact(url or target.url)}"
    # Errors are raised outside the ``except`` blocks: the decoder's and parser's exceptions hold the body,
    # which may echo the key, and would otherwise stay reachable as ``__context__``.
    problem: str | None = None
    answer: Any = None
    try:
        answer = loads_answer(body)
    except orjson.JSONDecodeError:
        problem = f"answered HTTP {status} with a body that is not JSON: {snippet(body)}"
    if problem is None:
        try:
            return answer, parse(answer)
        except MalformedAnswer as exc:
            problem = f"answered with a malformed {spec.provider.name} {what}: {exc}"
    raise RerankServiceError(
        redact(f"{where} {problem}", secrets_of(spec.api_key, target)), status=status, kind="malformed"
    )


def snippet(body: bytes, limit: int = 300) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "..."
