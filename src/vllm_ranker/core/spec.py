"""The model ranker's params, parsed and validated once into a typed, frozen spec.

Validation follows Milvus 2.6 (facts/milvus-model-ranker.md, section 2): same order, same message substrings,
then what to change. Keys match case-insensitively except ``queries``; unknown keys are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pymilvus import DataType, Function, FunctionType

from vllm_ranker.core.endpoint_checks import checked_api_key, checked_endpoint, make_targets, parse_tls_verify
from vllm_ranker.core.extra_params import (
    DEFAULT_EJECT_AFTER,
    DEFAULT_EJECT_SECONDS,
    beyond_milvus,
    int_at_least,
    positive_float,
    request_timeout,
)
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.core.shaping import NO_SHAPING, Shaping
from vllm_ranker.errors import RerankParamError
from vllm_ranker.providers import PROVIDERS, UNREACHABLE, Provider, Target
from vllm_ranker.values import coercion as values
from vllm_ranker.values.redaction import Secret

T = TypeVar("T")

RERANKER_KINDS = ("decay", "model", "rrf", "weighted", "boost")
BATCH_KEYS = ("max_client_batch_size", "max_batch", "maxbatch")

DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 86400.0
DEFAULT_MAX_RETRIES = 2  # three tries in all, like Milvus, but only for retriable failures
DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class RerankSpec:
    provider: Provider
    text_field: str
    queries: tuple[str, ...] | None  # None: the search texts are the queries
    batch_size: int
    targets: tuple[Target, ...]  # one per endpoint
    api_key: Secret | None = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT_S
    request_timeout: float | None = None  # seconds per batch (Milvus's timeout_ms), within ``timeout``
    max_retries: int = DEFAULT_MAX_RETRIES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    tls_verify: bool = True  # False only by params['tls_verify']=false (unsafe; README "Security")
    # Beyond Milvus (README "Beyond Milvus"); Milvus ignores these keys, and these defaults are its behaviour.
    cache: bool = False
    cache_ttl: float | None = None  # seconds; None: entries live until evicted
    rerank_window: int | None = None
    score_normalization: str = "raw"
    min_score: float | None = None
    on_failure: str = "error"
    eject_after: int = DEFAULT_EJECT_AFTER
    eject_seconds: float = DEFAULT_EJECT_SECONDS
    shaping: Shaping = NO_SHAPING  # chunk, document_template, keep_first_stage, fuse (core/shaping.py)

    def queries_for(self, nq: int, texts: Sequence[Any] | None) -> list[str]:
        """The query text of each of the ``nq`` searched vectors/texts; raises before any search on mismatch."""
        if self.queries is None:
            if texts is None or not all(isinstance(t, str) for t in texts):
                raise _lost_queries()
            queries: list[str] = list(texts)
        else:
            queries = list(self.queries)
        if len(queries) != nq:
            raise RerankParamError(
                f"nq must equal to queries size, but got nq [{nq}], queries size [{len(queries)}]: "
                f"give one entry in params['queries'] per searched vector/text ({nq} here)"
            )
        return queries


def _rerank_param(ranker: Any, name: str) -> str | None:
    """The stripped ``name`` param (any case) of a RERANK Function; None when absent or not such a Function."""
    if not isinstance(ranker, Function) or ranker.type != FunctionType.RERANK:
        return None
    for key, value in (ranker.params or {}).items():
        if isinstance(key, str) and key.lower() == name:
            return str(value).strip()
    return None


def ranker_kind(ranker: Any) -> str | None:
    """The lower-cased ``reranker`` param of a RERANK Function, else None (legacy rankers, FunctionScore...)."""
    kind = _rerank_param(ranker, "reranker")
    return None if kind is None else kind.lower()


def foreign_provider(ranker: Any) -> str | None:
    """The provider of a model ranker (``reranker: model``) when this package does not serve it, as written;
    else None. Such a ranker goes to Milvus untouched: a newer Milvus, or a custom build, may serve it."""
    if ranker_kind(ranker) != "model":
        return None
    provider = _rerank_param(ranker, "provider")
    return provider if provider and provider.lower() not in (PROVIDERS.keys() | UNREACHABLE.keys()) else None


def is_model_ranker(ranker: Any) -> bool:
    """True for what this package handles: a RERANK Function whose reranker is `model` with a provider we serve
    (or a missing one, or a reranker of no known kind, so the Milvus error for it is ours to give); every other
    ranker goes to the server untouched, a provider we do not serve included (``foreign_provider``).

    A Function naming a ``provider`` with no ``reranker`` key is ours too, so that it fails before any search
    with the fix: Milvus refuses it (``unsupported rerank function: []``), and Milvus Lite would instead run it
    through its own provider table (cohere only, other params), failing with "Unknown rerank provider: 'vllm'"
    or calling Cohere in a way a Milvus server never would.
    """
    kind = ranker_kind(ranker)
    if kind is None:
        return bool(_rerank_param(ranker, "provider"))
    return kind not in ("decay", "rrf", "weighted", "boost") and foreign_provider(ranker) is None


# How a Milvus server refuses a provider (``unknown rerank model provider:x``) and how Milvus Lite does
# (``Unknown rerank provider: 'x'. Supported: 'cohere'``), and where Milvus Lite lists what it serves.
_REFUSED_AS_UNKNOWN = re.compile(r"unknown rerank (?:model )?provider", re.IGNORECASE)
_BACKEND_LIST = re.compile(r"supported:\s*(.*)", re.IGNORECASE | re.DOTALL)


def unknown_everywhere(provider: str, backend_reason: str) -> str | None:
    """Milvus's message for a provider that neither this package nor the Milvus backend serves, naming what
    both serve; None when ``backend_reason`` (the backend's error) is not a refusal of a provider as unknown."""
    if not _REFUSED_AS_UNKNOWN.search(backend_reason):
        return None
    if "vllm_ranker serves" in backend_reason:  # made by a gateway in front of the backend: already says it all
        return backend_reason
    listed = _BACKEND_LIST.search(backend_reason)
    names = sorted(set(re.findall(r"'([^']+)'", listed.group(1)))) if listed else []
    backend = (
        "the Milvus backend serves " + ", ".join(names)
        if names
        else f"the Milvus backend does not serve it either ({backend_reason.strip()})"
    )
    return f"unknown rerank model provider:{provider}: vllm_ranker serves {', '.join(sorted(PROVIDERS))}; {backend}"


def parse_ranker(function: Function, collection: CollectionInfo, env: Mapping[str, str] | None = None) -> RerankSpec:
    env = os.environ if env is None else env
    raw_params: Mapping[str, Any] = function.params or {}
    params = {str(k).lower(): v for k, v in raw_params.items() if k != "queries"}

    # 1. reranker
    kind = str(params.get("reranker", "")).strip().lower()
    if kind not in RERANKER_KINDS:
        missing = ""
        if "reranker" not in params and "provider" in params:
            missing = f"the params name provider '{params['provider']}' but no reranker; "
        raise RerankParamError(
            f"unsupported rerank function: [{params.get('reranker', '')}] , list of supported "
            f"[decay,model,rrf,weighted]: {missing}set params['reranker'] = 'model' for a model ranker"
        )

    # 2. input field
    text_field = _check_input_field(list(function.input_field_names or []), collection)

    # 3. provider
    if "provider" not in params:
        raise RerankParamError(
            "lost rerank params:provider: set params['provider'] to one of " + ", ".join(sorted(PROVIDERS))
        )
    provider_name = str(params["provider"]).strip().lower()
    provider = PROVIDERS.get(provider_name)
    if provider_name in UNREACHABLE:  # ours to refuse: the backend could not reach it either
        raise RerankParamError(UNREACHABLE[provider_name])
    if provider is None:
        raise RerankParamError(
            f"unknown rerank model provider:{params['provider']}: use one of " + ", ".join(sorted(PROVIDERS))
        )

    # 4. provider-specific
    endpoints = _endpoints(provider, params)
    model = _model(provider, params)
    options = _options(provider, params)
    batch_size = _batch_size(provider, params, {str(k).lower(): str(k) for k in raw_params})
    api_key = checked_api_key(_api_key(provider, params, env), provider)  # header-safe (endpoint_security)
    targets = make_targets(provider, endpoints, model, options, api_key)  # user:password -> Basic auth
    timeout = positive_float(params, "timeout", DEFAULT_TIMEOUT_S, "seconds for the whole rerank of a call, e.g. 30")
    if timeout > MAX_TIMEOUT_S:  # socket and event-loop timeouts overflow far above this
        raise RerankParamError(
            f"timeout: {params['timeout']} is more than {MAX_TIMEOUT_S:g} seconds (a day): give the seconds for "
            "the whole rerank of a call, e.g. 30"
        )
    per_request = request_timeout(params, timeout)
    max_retries = int_at_least(params, "max_retries", DEFAULT_MAX_RETRIES, 0, "e.g. 2 (0 turns retries off)")
    max_concurrency = int_at_least(
        params, "max_concurrency", DEFAULT_MAX_CONCURRENCY, 1, "requests in flight per call, e.g. 8"
    )
    beyond = beyond_milvus(params, collection)
    tls_verify = parse_tls_verify(params)

    # 5. queries
    queries = _queries(raw_params)

    return RerankSpec(
        provider=provider,
        text_field=text_field,
        queries=queries,
        batch_size=batch_size,
        targets=targets,
        api_key=api_key,
        timeout=timeout,
        request_timeout=per_request,
        max_retries=max_retries,
        max_concurrency=max_concurrency,
        tls_verify=tls_verify,
        **beyond,
    )


def _check_input_field(names: list[str], collection: CollectionInfo) -> str:
    for name in names:
        if not name:
            raise RerankParamError(
                "rerank input field name cannot be empty string: set input_field_names to the VARCHAR field "
                "holding the text, e.g. ['document']"
            )
        if name not in collection.fields:
            raise RerankParamError(
                f"function input field not found: {name}: collection '{collection.name}' has fields "
                + ", ".join(collection.fields)
            )
        if collection.fields[name].nullable:
            raise RerankParamError(
                f"function input field cannot be nullable: field {name}: rerank on a non-nullable VARCHAR field"
            )
    if len(names) != 1:
        raise RerankParamError(
            f"rerank model only supports single input, got {len(names)} fields {names}: "
            "give exactly one VARCHAR field in input_field_names"
        )
    dtype = collection.fields[names[0]].dtype
    if dtype != DataType.VARCHAR:
        raise RerankParamError(
            f"rerank model only support varchar, bug got [{_type_name(dtype)}]: "
            f"field {names[0]} is not VARCHAR; pick the VARCHAR field holding the text"
        )
    return names[0]


def _type_name(dtype: DataType) -> str:
    return str(
        {
            DataType.INT64: "Int64",
            DataType.INT32: "Int32",
            DataType.FLOAT: "Float",
            DataType.JSON: "JSON",
        }.get(dtype, dtype.name.title().replace("_", ""))
    )


def _endpoints(provider: Provider, params: Mapping[str, Any]) -> list[str]:
    # ``endpoints`` (several, Milvus ignores the key) wins over ``endpoint`` (Milvus reads it): README "Beyond Milvus".
    key = "endpoints" if _given(params.get("endpoints")) else "endpoint"
    raw = params.get(key)
    if raw is None and key in params:
        # pymilvus sends None as "None", which Milvus refuses as a URL for every provider.
        raise RerankParamError(
            f"{key}: [None] is not a valid http/https link: params['{key}'] is None"
            + (
                " (rerank function lost params endpoint); set it to the service address, e.g. 'http://localhost:8000'"
                if provider.default_endpoint is None
                else f"; leave it out to use {provider.default_endpoint}, or give the service's URL"
            )
        )
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if provider.default_endpoint is None:
            # TEI's endpoint is checked by Milvus as a URL, SGLang's by name (their messages); vLLM's as a param.
            milvus = "endpoint: [] is not a valid http/https link: " if provider.name == "tei" else ""
            milvus = "sglang rerank endpoint is required: " if provider.name == "sglang" else milvus
            raise RerankParamError(
                f"{milvus}rerank function lost params endpoint: set params['endpoint'] to the service address, "
                "e.g. 'http://localhost:8000'"
            )
        return [provider.default_endpoint]
    try:
        endpoints = _split_endpoints(raw)
    except ValueError:
        endpoints = [repr(raw)]
    if not endpoints:
        raise RerankParamError(
            "rerank function lost params endpoint: the endpoint list is empty; give at least one URL"
        )
    endpoints = [checked_endpoint(e, key) for e in endpoints]  # scheme, host, port, sendable (endpoint_security)
    for endpoint in endpoints:
        parts = urlsplit(endpoint.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = endpoint if "@" not in endpoint else "<url with credentials>"
            raise RerankParamError(
                f"{key}: [{shown}] is not a valid http/https link: give a URL like 'http://host:8000'"
                + (" (several endpoints: a list, or one string with commas)" if key == "endpoints" else "")
            )
    return list(dict.fromkeys(e.strip() for e in endpoints))  # a repeated endpoint is one endpoint


def _given(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, (str, list, tuple)) and not raw)


def _split_endpoints(raw: Any) -> list[str]:
    """A list, its JSON text (how pymilvus sends a list), or one string of comma-separated URLs."""
    if isinstance(raw, str) and not raw.strip().startswith("["):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return [e for e in values.as_str_or_list(raw) if e.strip()]


def _model(provider: Provider, params: Mapping[str, Any]) -> str | None:
    raw = params.get("model_name")
    model = str(raw).strip() if raw is not None else ""
    if not model and provider.model_required:
        raise RerankParamError(
            f"{provider.name} rerank model name is required (rerank function lost params model_name): "
            f"provider {provider.name} needs params['model_name']"
            + (f", e.g. '{provider.model_hint}'" if provider.model_hint else "")
        )
    return model or None


def _options(provider: Provider, params: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for option in provider.options:
        if option.key not in params:
            continue
        raw = params[option.key]
        try:
            parsed[option.wire] = option.parse(raw)
        except ValueError as exc:
            message = option.error.format(value=raw)
            raise RerankParamError(f"{message}{values.because(message, exc)}: {option.hint}") from None
    return parsed


def _batch_size(provider: Provider, params: Mapping[str, Any], spelled: Mapping[str, str]) -> int:
    present = [k for k in BATCH_KEYS if k in params]
    if not present:
        return provider.default_batch_size
    raw = params[present[0]]
    # Milvus's text names max_client_batch_size (users grep for it); the fix names the key the user wrote.
    written = spelled.get(present[0], present[0])
    alias = "" if present[0] == "max_client_batch_size" else " (Milvus's max_client_batch_size)"
    fix = f"set params['{written}']{alias} to a positive integer, e.g. {provider.default_batch_size}"
    try:
        size = values.as_int(raw)
    except ValueError:
        raise RerankParamError(f"[max_client_batch_size param's value: {raw}] is not a valid number: {fix}") from None
    if size <= 0:
        raise RerankParamError(f"[max_client_batch_size param's value: {raw}] must be greater than 0: {fix}")
    return size


def _api_key(provider: Provider, params: Mapping[str, Any], env: Mapping[str, str]) -> Secret | None:
    for key in ("credential", "api_key"):
        raw = params.get(key)
        if isinstance(raw, str) and raw.strip():
            return Secret(raw.strip())
    for name in provider.key_env:
        value = env.get(name, "").strip()
        if value:
            return Secret(value)
    if provider.key_required:
        raise RerankParamError(
            f"rerank function lost params credential: provider {provider.name} needs an API key; set "
            f"params['credential'] or one of the environment variables {', '.join(provider.key_env)}"
        )
    return None


def _lost_queries() -> RerankParamError:
    return RerankParamError(
        "rerank function lost params queries: set params['queries'] to a list with one query text per "
        "searched vector (or search with text data, whose texts are then the queries)"
    )


def _queries(raw_params: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "queries" not in raw_params:
        return None
    raw = raw_params["queries"]
    try:
        queries = values.as_str_list(raw)
    except ValueError as exc:
        raise RerankParamError(
            f"parse rerank params [queries] failed, err: {exc}: give a list of strings, e.g. ['what is AI']"
        ) from None
    if not queries:
        raise _lost_queries()
    return tuple(queries)
