"""Keeps other web sites out of the page's API.

The page can read every document and can be told to send documents to any rerank endpoint, so a site open in the
same browser must not drive it:

- DNS rebinding (a site whose name resolves to 127.0.0.1 is same-origin with itself): the Host header must be one
  of the names the server answers to (the loopback names by default);
- cross-site POSTs (a form or a ``fetch`` without preflight): a POST must be ``application/json``, which a
  cross-site request can only send after a CORS preflight this server never grants, and a POST that says where it
  comes from (``Origin``) must come from this very host.

Refusals are plain-words JSON like every other error of the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def host_name(host: str) -> str:
    """``host`` (a Host header or URL netloc) without its port; IPv6 brackets removed; lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LocalOnly:
    """ASGI middleware; ``allowed_hosts`` None accepts any Host (a bind beyond loopback, which was warned about)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] | None = LOOPBACK_NAMES) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {host_name(h) for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope["method"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = json.dumps({"error": message, "kind": "refused"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.allowed is not None and host_name(host) not in self.allowed:
            return 403, f"this server answers to {', '.join(sorted(self.allowed))} only, not {host_name(host)!r}"
        if method != "POST":
            return None
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return 415, "send JSON, with Content-Type: application/json"
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, "cross-site request refused: use the page itself"
        return None
