"""Where documents and keys may go: endpoint URL checks, credentials inside a URL, TLS and redirect policy.

- Only ``http``/``https`` URLs with a host that httpx can send to are accepted; anything else (``file:``,
  ``ftp:``, ``javascript:``, no scheme, a bad port, control characters) is a ``RerankParamError`` naming
  ``endpoint``, raised before any search.
- ``user:password@`` in an endpoint is taken out of the URL (httpx logs the URL at INFO, errors show it) and
  sent as an ``Authorization: Basic`` header instead. Together with an API key it is refused: both would need
  the one ``Authorization`` header.
- TLS certificates are verified unless the params say ``tls_verify: false`` (unsafe). A certificate that does
  not verify is its own failure kind (``tls``): never retried, and the message says what to change.
- Redirects are never followed (the transport's clients use ``follow_redirects=False``): a redirect to another
  host would carry the ``Authorization`` header there. A 3xx answer is an error saying to use the final URL.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import httpx

from vllm_ranker.errors import RerankParamError
from vllm_ranker.providers.base import Provider, Target
from vllm_ranker.values import coercion as values
from vllm_ranker.values.redaction import Secret

ALLOWED_SCHEMES = ("http", "https")


def _shown(endpoint: str) -> str:
    # Never echo credentials, and keep control characters visible instead of breaking the message.
    if "@" in endpoint:
        return "<url with credentials>"
    return endpoint if endpoint.isprintable() else ascii(endpoint)[1:-1]


def _invalid(endpoint: str, reason: str, key: str) -> RerankParamError:
    return RerankParamError(
        f"{key}: [{_shown(endpoint)}] is not a valid http/https link ({reason}): give a URL like 'http://host:8000'"
    )


def checked_endpoint(raw: str, key: str = "endpoint") -> str:
    """``raw`` stripped, if it is an http/https URL with a host that can be sent to; else RerankParamError."""
    endpoint = raw.strip()
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises ValueError when not a number in 0..65535
    except ValueError as exc:
        raise _invalid(endpoint, str(exc), key) from None
    if parts.scheme not in ALLOWED_SCHEMES:
        found = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        raise _invalid(endpoint, f"{found}; only http and https are accepted", key)
    if not parts.hostname:
        raise _invalid(endpoint, "no host", key)
    if any(ch.isspace() for ch in parts.hostname):
        raise _invalid(endpoint, "Invalid host: it holds a space", key)
    if port == 0:
        raise _invalid(endpoint, "port 0", key)
    try:
        httpx.URL(endpoint)
    except httpx.InvalidURL as exc:
        raise _invalid(endpoint, str(exc).replace(endpoint, "<url>"), key) from None
    return endpoint


def split_userinfo(endpoint: str) -> tuple[str, Secret | None]:
    """The endpoint without ``user:password@``, and that user-info (percent-decoded ``user:password``)."""
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, Secret(f"{unquote(user)}:{unquote(password)}")


def basic_token(userinfo: Secret) -> Secret:
    return Secret(base64.b64encode(userinfo.reveal().encode("utf-8", "surrogatepass")).decode("ascii"))


def make_targets(
    provider: Provider,
    endpoints: Sequence[str],
    model: str | None,
    options: Mapping[str, Any],
    api_key: Secret | None,
) -> tuple[Target, ...]:
    """One Target per endpoint, user-info moved out of the URL; the final URL is checked as the endpoint is."""
    targets = []
    for endpoint in endpoints:
        clean, userinfo = split_userinfo(endpoint)
        if userinfo is not None and api_key is not None:
            raise RerankParamError(
                "endpoint: [<url with credentials>] holds a user:password and an API key is set too (params"
                f"['credential'] or one of {', '.join(provider.key_env)}); both would use the Authorization "
                "header: keep only one"
            )
        url = provider.build_url(clean, model)
        try:
            httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise RerankParamError(
                f"endpoint: the request URL built from params['endpoint'] and params['model_name'] is not "
                f"valid ({exc}): check both for spaces and control characters"
            ) from None
        targets.append(Target(url, model, options, userinfo))
    return tuple(targets)


def parse_tls_verify(params: Mapping[str, Any]) -> bool:
    """``tls_verify`` (default true). Only an explicit false turns verification off."""
    if "tls_verify" not in params:
        return True
    try:
        return values.as_bool(params["tls_verify"])
    except ValueError as exc:
        raise RerankParamError(
            f"tls_verify: {params['tls_verify']!r} is not a valid bool ({exc}): give true (the default) or "
            "false (unsafe: only for a test server with a self-signed certificate)"
        ) from None


def checked_api_key(api_key: Secret | None, provider: Provider) -> Secret | None:
    """An API key goes in an HTTP header: only visible ASCII can (a pasted newline or a non-ASCII character
    would otherwise fail deep in the HTTP library, with the key in the exception's text)."""
    if api_key is None:
        return None
    if not all("!" <= ch <= "~" for ch in api_key.reveal()):
        raise RerankParamError(
            "credential: the API key holds characters an HTTP header cannot carry (spaces, control or non-ASCII "
            "characters; the key itself is not shown): check params['credential'] or the environment variables "
            + ", ".join(provider.key_env)
        )
    return api_key
