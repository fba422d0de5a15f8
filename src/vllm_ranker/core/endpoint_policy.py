"""Where documents may be sent: the operator's endpoint policy (docs/security.md, "The gateway's threat model").

A rerank endpoint comes from the caller (a Function's ``endpoint``, a chain's ``rerank_model``), so whoever can
search can have the documents of every hit POSTed to any URL the process reaches: server-side request forgery with
data attached. A policy names where they may go:

- URL prefixes (``http://vllm:8000``, ``https://api.cohere.com/v2``): scheme, host (any case) and port equal (the
  scheme's default port when absent), and the path starting with the prefix's path on a segment boundary;
- addresses or networks (``10.1.2.3``, ``10.0.0.0/8``): an endpoint whose host is such an address literal;
- the configured providers' URLs (``ProviderConfig``), which the operator wrote: allowed as prefixes.

Whatever the names allow, the addresses a host name resolves to are checked too, by the transport right before it
connects (``check_address``): link-local addresses (169.254.0.0/16, where cloud metadata services answer, and
fe80::/10), the other well-known metadata addresses, unspecified and multicast ones — plus the operator's own
``deny`` networks — are refused unless allowed by address, so a name cannot route around the list.

``ANY`` is the policy of a process that serves one user on one machine: every endpoint, no address check (a
client without a policy, a gateway bound to loopback without one). Pure: no I/O; the transport resolves names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from vllm_ranker.errors import RerankParamError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Refused whatever a name allows: cloud metadata services and addresses no rerank service has.
ALWAYS_DENIED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS/GCP/Azure/OpenStack metadata at 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
    )
)


@dataclass(frozen=True, slots=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str  # without a trailing slash; "" for the whole host

    def allows(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


def _parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL, compared case-insensitively where URLs are."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, host, port, parts.path.rstrip("/")


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Where rerank requests may go; ``ANY`` (no policy) allows every endpoint and checks no address."""

    prefixes: tuple[_Prefix, ...] = ()
    networks: tuple[Network, ...] = ()  # allowed by address (an address literal in a URL, a resolved address)
    deny: tuple[Network, ...] = ()  # refused when resolved, beside ALWAYS_DENIED (unless allowed by address)
    any_endpoint: bool = True
    source: str = "--allow-endpoint"  # what the operator changes to allow more: named in refusals

    @classmethod
    def parse(
        cls, entries: Iterable[str], deny: Iterable[str] = (), source: str = "--allow-endpoint"
    ) -> EndpointPolicy:
        """A policy from the operator's entries (URL prefixes, addresses, networks); raises ``ValueError`` with
        the entry to change."""
        prefixes: list[_Prefix] = []
        networks: list[Network] = []
        for raw in entries:
            entry = str(raw).strip()
            if "://" not in entry:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError:
                    raise ValueError(
                        f"{source} {entry!r}: give a URL prefix such as http://vllm:8000 or an address or network "
                        "such as 10.0.0.0/8"
                    ) from None
                continue
            scheme, host, port, path = _parts(entry)
            if scheme not in _DEFAULT_PORTS or not host or port < 0:
                raise ValueError(f"{source} {entry!r}: give an http or https URL prefix such as http://vllm:8000")
            prefixes.append(_Prefix(scheme, host, port, path))
        denied = []
        for raw in deny:
            try:
                denied.append(ipaddress.ip_network(str(raw).strip().strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"--deny-address {raw!r}: give an address or network such as 127.0.0.0/8") from None
        return cls(tuple(prefixes), tuple(networks), tuple(denied), any_endpoint=False, source=source)

    def with_urls(self, urls: Iterable[str]) -> EndpointPolicy:
        """This policy, also allowing ``urls`` as prefixes (the configured providers' URLs); ANY stays ANY."""
        if self.any_endpoint:
            return self
        parts = [_parts(u) for u in urls]
        added = tuple(_Prefix(*p) for p in parts if p[0] in _DEFAULT_PORTS and p[1])
        return replace(self, prefixes=self.prefixes + added)

    def merged(self, added: EndpointPolicy) -> EndpointPolicy:
        """Both allowlists and both denied lists at once (neither narrows the other); refusals name ``added``'s
        source, the one given last (a flag, a constructor argument). ANY adds nothing; added to ANY, a policy
        replaces it."""
        if added.any_endpoint:
            return self
        if self.any_endpoint:
            return added
        return replace(
            added,
            prefixes=self.prefixes + added.prefixes,
            networks=self.networks + added.networks,
            deny=self.deny + added.deny,
        )

    def allows(self, url: str) -> bool:
        if self.any_endpoint:
            return True
        scheme, host, port, path = _parts(url)
        if any(p.allows(scheme, host, port, path) for p in self.prefixes):
            return True
        address = _ip(host)
        return address is not None and any(address in n for n in self.networks)

    def check(self, urls: Sequence[str], provider: str) -> None:
        """Raises before any search when one of ``urls`` (a ranker's endpoints) is not allowed."""
        for url in urls:
            if not self.allows(url):
                scheme, host, port, _ = _parts(url)
                raise RerankParamError(
                    f"rerank endpoint [{scheme}://{host}:{port}] of provider {provider} is not allowed by this "
                    f"server's endpoint policy: documents go only where the operator allows; ask the operator to "
                    f"allow it ({self.source} {scheme}://{host}:{port}), or use an allowed endpoint"
                )

    def check_address(self, host: str, address: str) -> None:
        """Raises when ``host`` resolved to ``address`` that is refused (link-local, metadata, denied) and not
        allowed by address. The transport calls this right before it connects, with the address it connects to."""
        if self.any_endpoint:
            return
        ip = _ip(address)
        if ip is None or any(ip in n for n in self.networks if n.version == ip.version):
            return
        refused = next((n for n in ALWAYS_DENIED + self.deny if n.version == ip.version and ip in n), None)
        if refused is not None:
            raise RerankParamError(
                f"rerank endpoint host {host} resolves to {ip}, in {refused}, which this server's endpoint policy "
                f"refuses (link-local and metadata addresses, and the operator's denied networks): allow the "
                f"address explicitly ({self.source} {ip}) only if that service is meant to receive documents"
            )

    def __str__(self) -> str:
        if self.any_endpoint:
            return "any endpoint"
        allowed = [str(p) for p in self.prefixes] + [str(n) for n in self.networks]
        denied = f"; denied: {', '.join(str(n) for n in self.deny)}" if self.deny else ""
        return f"endpoints: {', '.join(allowed) or 'none'}{denied}"


ANY = EndpointPolicy()
