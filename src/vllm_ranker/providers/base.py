"""What a provider is: one row of the provider table.

A provider knows its parameters (names, types, defaults), the URL and JSON body of one rerank request, and
how to read scores (and the service's own error message) out of the answer. Nothing here does I/O.

The endpoint-path rule, one for every provider (``Provider.build_url``, ``api_url``): each provider has a
``route``, the path its service answers on (vllm and tei ``/rerank``, cohere ``/v2/rerank``, voyageai and
siliconflow ``/v1/rerank``, ali ``/api/v1/services/rerank/text-rerank/text-rerank``, huggingface
``/hf-inference/models/<model_name>/pipeline/sentence-similarity``).

- An endpoint whose path ends in ``rerank`` or in the route's own last segment (``text-rerank``,
  ``sentence-similarity``) is the full request URL: it is POSTed to as given.
- Any other endpoint is a base URL (a bare host, a version such as ``/v1``, a gateway prefix): the route is
  appended, less the leading part of it that the path already ends with (``https://host/v2`` + ``/v2/rerank``
  gives ``https://host/v2/rerank``, not ``.../v2/v2/rerank``).
- Segments compare case-insensitively; a trailing slash is ignored, a query string kept, a fragment dropped.

So ``http://h:8000/v1/rerank`` stays, ``https://gw/team/cohere`` gets ``/v2/rerank`` appended, and
``https://gw/v9/rerank`` is used as given for every provider alike. (Milvus replaces a vllm/tei endpoint's path
with ``/rerank``, which breaks gateways with a path prefix.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vllm_ranker.values import coercion as values
from vllm_ranker.values.redaction import Secret, redact

Json = Any


class MalformedAnswer(ValueError):
    """The service answered 2xx with a body that does not match its wire format."""


@dataclass(frozen=True, slots=True)
class Option:
    """A provider-specific param: parsed from the Function params and sent on the wire under ``wire``."""

    key: str  # lower-case param name
    parse: Callable[[Any], Any]
    wire: str
    # Milvus's message for an invalid value; {value} is the raw value.
    error: str
    hint: str
    choices: tuple[str, ...] = ()


# ``error`` overrides the message template (Milvus words it differently per provider); ``{value}`` is the raw value.
def int_option(
    key: str, *, wire: str | None = None, minimum: int | None = None, hint: str, error: str | None = None
) -> Option:
    def parse(raw: Any) -> int:
        number = values.as_int(raw)
        if minimum is not None and number < minimum:
            raise ValueError(f"it must be >= {minimum}")
        return number

    return Option(key, parse, wire or key, error=error or f"{key}: {{value}} is not a number", hint=hint)


def bool_option(key: str, *, wire: str | None = None, hint: str, error: str | None = None) -> Option:
    return Option(key, values.as_bool, wire or key, error=error or f"{key}: {{value}} is not a valid bool", hint=hint)


def choice_option(
    key: str, choices: tuple[str, ...], *, wire: str | None = None, hint: str, error: str | None = None
) -> Option:
    def parse(raw: Any) -> str:
        text = values.as_str(raw)
        if text not in choices:
            raise ValueError(f"it must be one of {', '.join(choices)}; case matters")
        return text

    return Option(
        key,
        parse,
        wire or key,
        error=error or f"{key}: {{value}} is not supported",
        hint=hint,
        choices=choices,
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one spec's requests go: everything a provider needs to build a request."""

    url: str
    model: str | None
    options: Mapping[str, Any] = field(default_factory=dict)  # wire name -> parsed value
    # ``user:password`` taken out of the endpoint URL, sent as Basic auth (endpoint_security.py); never shown.
    userinfo: Secret | None = None

    def __repr__(self) -> str:  # an endpoint may carry ``user:password@``: never show it
        return f"Target(url={redact(self.url)!r}, model={self.model!r}, options={dict(self.options)!r})"


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    default_batch_size: int
    default_endpoint: str | None  # None: the user must give `endpoint`
    model_required: bool
    key_required: bool
    key_env: tuple[str, ...]  # looked up in this order after the `credential` param
    options: tuple[Option, ...]
    # The path the service answers on; ``{model}`` stands for the model id (see the rule in the docstring).
    route: str
    build_body: Callable[[Target, str, Sequence[str]], Json]
    parse_scores: Callable[[Json, int], list[float]]  # (answer, number of documents) -> score per document
    model_hint: str = ""
    label: str = ""  # how the service is called in hints ("Cohere"); the name when empty
    serves: str = ""  # what a 404 hint says the service answers on; the route when empty
    # The model id as path segments, for a route with ``{model}``; refuses ids that would change the path.
    model_in_route: Callable[[str | None], str] | None = None

    def option(self, key: str) -> Option | None:
        for option in self.options:
            if option.key == key:
                return option
        return None

    def build_url(self, endpoint: str, model: str | None) -> str:
        """The request URL for ``endpoint``, by the one rule of this module's docstring."""
        route = self.route
        if "{model}" in route:
            segments = self.model_in_route(model) if self.model_in_route else (model or "")
            route = route.replace("{model}", segments)
        return api_url(endpoint, route)

    @property
    def self_hosted(self) -> bool:
        """vllm and tei: no cloud default, so the user runs the service (and can read its log)."""
        return self.default_endpoint is None


def check_score(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedAnswer(f"{where}: score {value!r} is a {type(value).__name__}, not a number")
    score = float(value)
    if math.isnan(score):
        raise MalformedAnswer(f"{where}: score is NaN")
    return score


def scores_by_index(items: Any, n_docs: int, *, score_key: str, container: str) -> list[float]:
    """Map ``[{"index": i, score_key: s}, ...]`` onto documents by index (never by position).

    A missing, duplicate or out-of-range index is an error naming the counts: Milvus maps by position and
    silently gives a missing document 0.0.
    """
    if not isinstance(items, list):
        raise MalformedAnswer(f"{container} is a {type(items).__name__}, expected a list of results")
    scores: list[float | None] = [None] * n_docs
    duplicates: list[int] = []
    out_of_range: list[Any] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedAnswer(f"{container}[{position}] is a {type(item).__name__}, expected an object")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_docs:
            out_of_range.append(index)
            continue
        if scores[index] is not None:
            duplicates.append(index)
            continue
        scores[index] = check_score(item.get(score_key), f"{container}[{position}].{score_key}")
    missing = [i for i, s in enumerate(scores) if s is None]
    if duplicates or out_of_range or missing:
        details = []
        if missing:
            details.append(f"missing index {_few(missing)}")
        if duplicates:
            details.append(f"duplicate index {_few(duplicates)}")
        if out_of_range:
            details.append(f"index out of range {_few(out_of_range)} (valid 0..{n_docs - 1})")
        raise MalformedAnswer(f"sent {n_docs} documents, got {len(items)} results: " + "; ".join(details))
    return [s for s in scores if s is not None]


def scores_in_order(items: Any, n_docs: int, *, container: str) -> list[float]:
    """A bare array of scores in input order (Hugging Face sentence-similarity)."""
    if not isinstance(items, list):
        raise MalformedAnswer(f"{container} is a {type(items).__name__}, expected a list of scores")
    if len(items) != n_docs:
        raise MalformedAnswer(f"sent {n_docs} documents, got {len(items)} scores")
    return [check_score(v, f"{container}[{i}]") for i, v in enumerate(items)]


def _few(items: list[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def error_message(body: Any) -> str | None:
    """The service's own error text from the usual JSON error shapes.

    ``{"error": {"message"}}`` (vLLM/OpenAI), ``{"error": str, "error_type"}`` (TEI, Hugging Face),
    ``{"message"}`` (Cohere), ``{"code": str, "message"}`` (DashScope: the code is kept, it names the cause),
    ``{"code": int, "message", "data"}`` (SiliconFlow), ``{"detail": str | [{"msg"}]}`` (Voyage, FastAPI).
    """
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    message = body.get("message")
    if isinstance(message, str):
        code = body.get("code")
        return f"{code}: {message}" if isinstance(code, str) and code else message
    for key in ("error", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            texts = [str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value]
            return "; ".join(texts)
    return None


def api_url(endpoint: str, route: str) -> str:
    """The request URL for ``endpoint`` and a provider's ``route``: the module docstring's rule, never repeating
    a part of the route. Segments compare case-insensitively; a query string is kept, a fragment dropped."""
    parts = urlsplit(endpoint.strip())
    path = [s for s in parts.path.split("/") if s]
    api = [s for s in route.split("/") if s]
    folded, api_folded = [s.lower() for s in path], [s.lower() for s in api]
    if path and folded[-1] in ("rerank", api_folded[-1]):
        rest: list[str] = []  # the full URL already
    else:
        rest = api
        for k in range(min(len(path), len(api) - 1), 0, -1):
            if folded[-k:] == api_folded[:k]:
                rest = api[k:]
                break
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(path + rest), parts.query, ""))
