"""The rerank providers' server configuration: Milvus's ``milvus.yaml`` sections, parsed once, no I/O.

Milvus takes a model ranker's API key, and a hosted provider's URL, from its own configuration when the request
does not carry them (``internal/util/function/models/common.go`` ``ParseAKAndURL``: Function param > milvus.yaml >
environment), and Milvus 3.0 function chains may carry neither (Milvus Lite's chain validator: "rerank_model
credentials must be configured on the server"). Where Milvus reads its configuration, the server is us: this is
that configuration, in Milvus's shape, so that an operator who configured Milvus recognises it::

    credential:
      apikey1:
        apikey: <the key>            # a named credential; aksk/gcp kinds are Milvus's and ignored here
    function:
      rerank:
        model:
          providers:
            cohere:
              credential: apikey1    # the name of an entry of `credential:`
              url: https://...       # the service's URL (the request's own `endpoint` wins)
              enable: true           # false: Milvus's "rerank provider: [cohere] is disabled"

plus the environment's provider keys (``MILVUS_COHERE_API_KEY``... the provider table's ``key_env``), which a
configured credential outranks, as in Milvus. docs/semantics.md "Provider configuration" has every decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pymilvus import Function

from vllm_ranker.core.endpoint_policy import ANY, EndpointPolicy
from vllm_ranker.errors import RerankParamError
from vllm_ranker.providers import PROVIDERS
from vllm_ranker.values.redaction import Secret

PROVIDERS_PATH = "function.rerank.model.providers"
POLICY_SECTION = "vllm_ranker"
KNOWN_KEYS = ("credential", "enable", "url")
# Where the filled key goes: the first name core/spec.py ``_api_key`` reads (and the name Function masks).
KEY_PARAM = "credential"


class ProviderConfigError(ValueError):
    """A value of the configuration is wrong; the message names its YAML key path and what to write there."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One provider's configuration. ``key_source`` says where ``api_key`` came from (a key path or a variable's
    name: never the key)."""

    name: str
    enabled: bool = True
    url: str | None = None
    credential: str | None = None  # the name of a `credential:` entry, as the file gives it
    api_key: Secret | None = field(default=None, repr=False)
    key_source: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Per provider: enabled, URL, API key. ``fill`` completes a model ranker's params from it."""

    providers: Mapping[str, ProviderSettings] = field(default_factory=lambda: MappingProxyType({}))
    credentials: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    ignored: tuple[str, ...] = ()  # key paths under a served provider that we do not read (a loader warns)
    # Read at each fill, not copied: a key set or removed later counts, as it does where core/spec.py reads it.
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)
    # Where documents may go (core/endpoint_policy.py): the file's `vllm_ranker.allowed_endpoints`, the gateway's
    # --allow-endpoint, a client's endpoint_policy=; the configured providers' URLs are allowed with it.
    policy: EndpointPolicy = ANY

    def with_policy(self, policy: EndpointPolicy) -> ProviderConfig:
        """This configuration with ``policy`` (the configured providers' URLs allowed too)."""
        urls = [s.url for s in self.providers.values() if s.url]
        return replace(self, policy=policy.with_urls(urls))

    def check_endpoints(self, urls: Sequence[str], provider: str) -> None:
        """Raises ``RerankParamError`` before any search when the policy does not allow one of ``urls``."""
        self.policy.check(urls, provider)

    @classmethod
    def empty(cls) -> ProviderConfig:
        return EMPTY

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any] | None, environ: Mapping[str, str]) -> ProviderConfig:
        """A parsed milvus.yaml-shaped mapping (other sections ignored) and the environment's provider keys."""
        if document is None:
            document = {}
        if not isinstance(document, Mapping):
            raise ProviderConfigError(
                f"the configuration is a {type(document).__name__}, not a mapping: write it in milvus.yaml's shape "
                f"(a top-level `credential:` and `function:` section)"
            )
        credentials = _credentials(document.get("credential"))
        section = _walk(document, ("function", "rerank", "model", "providers"))
        settings: dict[str, ProviderSettings] = {}
        ignored: list[str] = []
        for raw_name, raw in section.items():
            name = str(raw_name).strip().lower()
            path = f"{PROVIDERS_PATH}.{raw_name}"
            if name not in PROVIDERS:
                continue  # a provider only Milvus serves (zilliz...): its section is the backend's
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                kind = type(raw).__name__  # never the value: it may be a key written in the wrong place
                raise ProviderConfigError(f"{path}: give a mapping with {', '.join(KNOWN_KEYS)}, not a {kind}")
            ignored += [f"{path}.{key}" for key in raw if str(key).lower() not in KNOWN_KEYS]
            values = {str(k).lower(): v for k, v in raw.items()}
            settings[name] = _provider(name, path, values, credentials)
        config = cls(MappingProxyType(settings), MappingProxyType(credentials), tuple(ignored), environ)
        return config.with_policy(_policy(document.get(POLICY_SECTION)))

    def __bool__(self) -> bool:
        return bool(self.providers) or bool(self.credentials) or any(self.environ.get(v) for v in _KEY_VARS)

    def __repr__(self) -> str:
        shown = ", ".join(
            _describe(self.resolved(name)) for name in PROVIDERS if self.resolved(name) != ProviderSettings(name)
        )
        return f"ProviderConfig({shown or 'empty'}; credentials: {', '.join(self.credentials) or 'none'})"

    __str__ = __repr__

    def resolved(self, provider: str) -> ProviderSettings:
        """A provider's settings with its key: the configured credential's, else the first of the provider's
        environment variables that is set (Milvus: milvus.yaml > environment)."""
        name = provider.strip().lower()
        settings = self.providers.get(name) or ProviderSettings(name)
        served = PROVIDERS.get(name)
        if settings.api_key is not None or served is None:
            return settings
        for var in served.key_env:
            value = self.environ.get(var, "").strip()
            if value:
                return replace(settings, api_key=Secret(value), key_source=f"environment variable {var}")
        return settings

    def fill(self, params: Mapping[str, Any], *, chain: bool) -> dict[str, Any]:
        """A new dict of ``params`` (a model ranker's: keys in any case) with what the request does not carry taken
        from the configuration: the API key (under ``credential``) and the endpoint. A request's ``credential``
        naming an entry of ``credential:`` is replaced by that entry's key (Milvus's meaning); in a chain it can
        only be such a name. A provider the configuration disables is refused with Milvus's message."""
        out = dict(params)
        keys = {str(k).lower(): k for k in params}
        raw_provider = params.get(keys["provider"]) if "provider" in keys else None
        if not isinstance(raw_provider, str):
            return out  # the spec refuses a missing provider with Milvus's message
        settings = self.resolved(raw_provider)
        if not settings.enabled:
            name = raw_provider.strip().lower()
            raise RerankParamError(
                f"rerank provider: [{name}] is disabled: the server configuration sets {PROVIDERS_PATH}.{name}.enable "
                "to false; use another provider, or set it to true"
            )
        own = next((keys[k] for k in ("credential", "api_key") if k in keys and _given(params[keys[k]])), None)
        if own is not None:
            self._resolve_named(out, own, chain)
        carried_key = any(k in keys and _given(out.get(keys[k])) for k in ("credential", "api_key"))
        if settings.api_key is not None and not carried_key:
            out[KEY_PARAM] = settings.api_key.reveal()
        carried_endpoint = any(k in keys and _given(params[keys[k]]) for k in ("endpoint", "endpoints"))
        if settings.url is not None and not carried_endpoint:  # the request's own endpoint always wins
            out[keys.get("endpoint", "endpoint")] = settings.url
        return out

    def apply(self, function: Function) -> Function:
        """``function`` with its params filled (a 2.6 RERANK Function); the same object when nothing changes."""
        if not self:
            return function
        params = dict(function.params or {})
        filled = self.fill(params, chain=False)
        if filled == params:
            return function
        return type(function)(
            function.name,
            function.type,
            function.input_field_names,
            function.output_field_names,
            function.description,
            params=filled,
        )

    def _resolve_named(self, out: dict[str, Any], key: Any, chain: bool) -> None:
        value = out[key]
        name = value.strip() if isinstance(value, str) else None
        if name is not None and name in self.credentials:
            secret = self.credentials[name]
            if secret.reveal():
                out[key] = secret.reveal()
            else:  # an empty apikey: Milvus goes on to the next source
                del out[key]
        elif chain:
            # Never echoed: it may be a key sent where a credential's name belongs.
            known = ", ".join(self.credentials) or "none are configured"
            raise RerankParamError(
                f"rerank_model credentials must be configured on the server: params['{key}'] of a function chain "
                f"is not a apikey crediential of the server configuration; name one of its `credential:` entries "
                f"({known}), or leave it out to use the provider's configured key"
            )


EMPTY = ProviderConfig()


def _policy(section: Any) -> EndpointPolicy:
    """``vllm_ranker: {allowed_endpoints: [...], denied_addresses: [...]}`` (ours beside Milvus's sections); no
    allowed_endpoints: ANY (the gateway then decides by its bind address whether that may stand)."""
    if section is None:
        return ANY
    if not isinstance(section, Mapping):
        raise ProviderConfigError(f"{POLICY_SECTION}: give a mapping with allowed_endpoints, denied_addresses")
    allowed, denied = section.get("allowed_endpoints"), section.get("denied_addresses") or []
    if allowed is None:
        if denied:  # alone it would mean "any endpoint but these": a deny list is no allowlist
            raise ProviderConfigError(
                f"{POLICY_SECTION}.denied_addresses needs {POLICY_SECTION}.allowed_endpoints: list where documents "
                "may go (URL prefixes or addresses); the denied addresses are refused among them"
            )
        return ANY
    for key, value in (("allowed_endpoints", allowed), ("denied_addresses", denied)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProviderConfigError(f"{POLICY_SECTION}.{key}: give a list of URL prefixes or addresses")
    try:
        return EndpointPolicy.parse(allowed, denied, source=f"{POLICY_SECTION}.allowed_endpoints")
    except ValueError as exc:
        raise ProviderConfigError(str(exc)) from None


_KEY_VARS = tuple(var for provider in PROVIDERS.values() for var in provider.key_env)


def _given(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or bool(value.strip())) and value != []


def _describe(settings: ProviderSettings) -> str:
    parts = [settings.name + ("" if settings.enabled else " (disabled)")]
    if settings.url:
        parts.append(f"url {settings.url}")
    if settings.key_source:
        parts.append(f"key from {settings.key_source}")
    return " ".join(parts)


def _walk(document: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, Any]:
    node: Any = document
    for depth, key in enumerate(keys):
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            path = ".".join(keys[: depth + 1])
            raise ProviderConfigError(f"{path}: give a mapping (milvus.yaml's shape), not {type(node).__name__}")
    return node  # type: ignore[no-any-return]


def _credentials(section: Any) -> dict[str, Secret]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ProviderConfigError(f"credential: give a mapping of named credentials, not {type(section).__name__}")
    found: dict[str, Secret] = {}
    for name, entry in section.items():
        if not isinstance(entry, Mapping) or "apikey" not in entry:
            continue  # aksk / gcp credentials, or an empty entry: not an apikey credential
        value = entry["apikey"]
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ProviderConfigError(f"credential.{name}.apikey: give the key as a string, not {type(value).__name__}")
        found[str(name)] = Secret(str(value).strip())
    return found


def _provider(name: str, path: str, values: Mapping[str, Any], credentials: Mapping[str, Secret]) -> ProviderSettings:
    enabled = _enable(values.get("enable", True), f"{path}.enable")
    url = values.get("url")
    if url is not None and url != "":
        url = _url(url, f"{path}.url")
    credential = values.get("credential")
    api_key: Secret | None = None
    key_source: str | None = None
    if credential is not None and str(credential).strip():
        credential = str(credential).strip()
        if credential not in credentials:
            known = ", ".join(credentials) or "the file has none"
            raise ProviderConfigError(
                f"{path}.credential: {credential} is not a apikey crediential, can not find key: "
                f"{credential}.apikey; add credential.{credential}.apikey to the file, or name one of its "
                f"apikey credentials ({known})"
            )
        if credentials[credential].reveal():
            api_key, key_source = credentials[credential], f"credential.{credential}.apikey"
    else:
        credential = None
    return ProviderSettings(name, enabled, url or None, credential, api_key, key_source)


def _enable(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ProviderConfigError(f"{path}: {value!r} is not true or false")


def _url(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ProviderConfigError(f"{path}: give the URL as a string, not {type(value).__name__}")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = value if "@" not in value else "<a URL with credentials>"
        raise ProviderConfigError(
            f"{path}: [{shown}] is not a valid http/https link; give the service's URL, e.g. http://127.0.0.1:8000"
        )
    return value.strip()
