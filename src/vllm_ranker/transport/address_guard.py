"""The endpoint policy's address check (core/endpoint_policy.py), where the socket is made.

A policy allows endpoints by name, but a name resolves to whatever its DNS says, at the moment of connecting: a
name on the list that resolves to 169.254.169.254 would carry the documents to a cloud metadata service. So with a
policy in force the transport resolves each host itself, right before connecting, checks every address it got
(``EndpointPolicy.check_address``: one refused address refuses the host) and connects to a checked address, never
to the name, so a second lookup cannot answer differently. TLS still verifies the certificate against the name
(httpcore passes the URL's host as the server name whatever the socket connects to).

httpx has no public way to choose its network backend; this wraps httpcore 1.x's ``_network_backend`` the way
deadline_backend.py does (and under it, so connects stay bounded by the call's deadline).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from vllm_ranker.core.endpoint_policy import EndpointPolicy
from vllm_ranker.transport.deadline_backend import DeadlineBackend


def _checked(policy: EndpointPolicy, host: str, infos: list[Any]) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        policy.check_address(host, address)  # raises RerankParamError: nothing was sent
    if not addresses:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks, then connects ``inner`` to the first checked address that answers."""

    def __init__(self, inner: httpcore.NetworkBackend, policy: EndpointPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in _checked(self.policy, host, infos):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address, as a resolver-order connect would
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        return self.inner.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """``GuardedBackend`` for asyncio: the event loop's resolver, then ``inner``."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, policy: EndpointPolicy) -> None:
        self.inner = inner
        self.policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in _checked(self.policy, host, infos):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _pools(client: httpx.Client | httpx.AsyncClient) -> list[Any]:
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    pools = [getattr(t, "_pool", None) for t in transports]
    if not all(hasattr(pool, "_network_backend") for pool in pools):
        raise RuntimeError(
            f"cannot check rerank endpoints' addresses: httpx {httpx.__version__} / httpcore {httpcore.__version__} "
            "no longer keep the network backend at _transport._pool._network_backend; update "
            "vllm_ranker.transport.address_guard for this version"
        )
    return pools


def guard_client(client: httpx.Client, policy: EndpointPolicy) -> None:
    """Check every address ``client`` connects to against ``policy`` (nothing to do for ANY); call it after
    deadline_backend.install_client and before the first request."""
    if policy.any_endpoint:
        return
    for pool in _pools(client):
        backend = pool._network_backend
        if isinstance(backend, DeadlineBackend):  # under the deadline: connects stay bounded by it
            backend.inner = GuardedBackend(backend.inner, policy)
        else:
            pool._network_backend = GuardedBackend(backend, policy)


def guard_async_client(client: httpx.AsyncClient, policy: EndpointPolicy) -> None:
    """``guard_client`` for an ``httpx.AsyncClient``."""
    if policy.any_endpoint:
        return
    for pool in _pools(client):
        pool._network_backend = AsyncGuardedBackend(pool._network_backend, policy)


# Through an HTTP(S) proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) the socket goes to the proxy and the proxy resolves
# the endpoint's name: the guard above then sees only the proxy. So for a proxied URL the name is resolved and
# checked here before the request (the proxy may still resolve it differently later: egress rules belong on the
# proxy too; docs/security.md says so).


def proxied(client: httpx.Client | httpx.AsyncClient, url: str) -> bool:
    """Whether ``client`` sends ``url`` through one of its proxy mounts."""
    if not any(t is not None for t in client._mounts.values()):
        return False
    return client._transport_for_url(httpx.URL(url)) is not client._transport


def check_resolved(policy: EndpointPolicy, url: str) -> None:
    parts = httpx.URL(url)
    try:
        infos = socket.getaddrinfo(parts.host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return  # the proxy reports what it cannot resolve
    _checked(policy, parts.host, infos)


async def check_resolved_async(policy: EndpointPolicy, url: str) -> None:
    parts = httpx.URL(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return
    _checked(policy, parts.host, infos)
