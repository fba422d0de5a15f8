"""Small network helpers of the managed server: loopback checks, free ports, health and model probes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """True when *host* only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or interface we cannot vouch for


def _connect_host(host: str) -> str:
    # A wildcard bind is reached locally through the loopback address.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host


def _url_host(host: str) -> str:
    host = _connect_host(host)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on *host* right now."""
    family = socket.AF_INET6 if ":" in _connect_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((_connect_host(host), 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    family = socket.AF_INET6 if ":" in _connect_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((_connect_host(host), port)) == 0


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
