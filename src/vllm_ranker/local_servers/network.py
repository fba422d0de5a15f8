"""Loopback checks and free ports: every room that starts or exposes a server asks the same questions."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """True when *host* only accepts connections from this machine. ``localhost`` in any case (host names are
    case-insensitive); any other name is one we cannot vouch for."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def connect_host(host: str) -> str:
    """The address to connect to for a server bound to *host*: a wildcard bind is reached through loopback."""
    if host in ("", "0.0.0.0"):
        return LOOPBACK
    if host in ("::", "[::]"):
        return "::1"
    return host


def url_host(host: str) -> str:
    """*host* as it goes into a URL (an IPv6 address in brackets)."""
    host = connect_host(host)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in connect_host(host) else socket.AF_INET


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on *host* right now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((connect_host(host), 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something already listens on host:port."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((connect_host(host), port)) == 0
