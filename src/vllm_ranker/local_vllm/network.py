"""The managed server's defaults and its probes: ``/health`` and ``/v1/models`` (loopback checks and free ports are
``local_servers``', shared with every room that starts a server)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


# Health checks go straight to the server: never through an HTTP(S)_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float) -> object:
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def is_healthy(endpoint: str, timeout: float = 2.0) -> bool:
    """True when ``GET {endpoint}/health`` answers 200."""
    try:
        with _OPENER.open(endpoint.rstrip("/") + "/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def served_models(endpoint: str, timeout: float = 5.0) -> list[str]:
    """Model names a running OpenAI-compatible server lists under /v1/models."""
    body = _get_json(endpoint.rstrip("/") + "/v1/models", timeout)
    if not isinstance(body, dict):
        return []
    return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]
