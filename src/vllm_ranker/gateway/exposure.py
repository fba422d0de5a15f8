"""The rules of a gateway reachable from other machines (docs/security.md, "The gateway's threat model").

Bound to loopback, a gateway serves one user on one machine and keeps its old behaviour: any endpoint, clear text,
``--token`` lent to callers that send none. Bound beyond loopback, every network neighbour is a caller, so:

- documents go only where the operator allows (an endpoint policy from ``--allow-endpoint`` or the config file's
  ``vllm_ranker.allowed_endpoints``), or anywhere after the loudly named ``--allow-any-endpoint``;
- tokens and documents travel in TLS (``--tls-cert/--tls-key``), or in clear text after ``--insecure`` (TLS
  terminated in front of the gateway, a trusted network);
- ``--token`` is lent to anonymous callers only over TLS and after ``--token-for-anonymous-callers``, which says so.

Pure functions, standard library only at import (``vllm-ranker gateway --help`` loads neither grpc nor pymilvus):
the command line and ``Gateway`` both call them, so the rules hold however a gateway is started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vllm_ranker.local_servers import is_loopback

if TYPE_CHECKING:
    from vllm_ranker.core import EndpointPolicy


@dataclass(frozen=True, slots=True)
class Exposure:
    """How a gateway is exposed: its bind address and the flags that change the rules above."""

    host: str
    tls: bool = False
    token: bool = False  # a --token (or VLLM_RANKER_BACKEND_TOKEN) is set: never its value
    allow_any_endpoint: bool = False
    insecure: bool = False
    token_for_anonymous_callers: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def startup_problem(exposure: Exposure, policy: EndpointPolicy) -> str | None:
    """Why the gateway must not start as configured (one line naming the flags to give), or None."""
    if exposure.allow_any_endpoint and not policy.any_endpoint:
        # Both cannot be meant: one says "these endpoints only", the other "every endpoint".
        return (
            f"--allow-any-endpoint contradicts the endpoint allowlist ({policy}): give one or the other "
            "(--allow-endpoint / --deny-address / the config file's vllm_ranker.allowed_endpoints)"
        )
    if exposure.loopback:
        return None
    host, problems = exposure.host, []  # all of them at once: one run tells everything to change
    if policy.any_endpoint and not exposure.allow_any_endpoint:
        problems.append(
            f"--host {host} lets every machine that reaches it have the gateway send documents to any URL: say where "
            "they may go with --allow-endpoint URL (repeatable; or vllm_ranker.allowed_endpoints in --config), or "
            "accept every endpoint a caller names with --allow-any-endpoint"
        )
    if exposure.token and not (exposure.tls and exposure.token_for_anonymous_callers):
        problems.append(
            f"--token with --host {host} makes every caller that sends no token of its own act as the token's "
            "principal: drop --token (callers send their own), or give --tls-cert/--tls-key and "
            "--token-for-anonymous-callers"
        )
    if not exposure.tls and not exposure.insecure:
        problems.append(
            f"--host {host} without --tls-cert/--tls-key carries callers' tokens and documents in clear text: give "
            "--tls-cert and --tls-key, or --insecure when TLS ends in front of the gateway or the network is trusted"
        )
    return "; and ".join(problems) or None


def startup_warnings(exposure: Exposure) -> list[str]:
    """What a gateway allowed to start should still say at start-up (each a log line at warning)."""
    warnings = []
    if exposure.allow_any_endpoint:
        warnings.append(
            "--allow-any-endpoint: every endpoint a caller names receives the documents of its hits (any URL this "
            "machine reaches, internal services included); give --allow-endpoint instead unless every caller is "
            "trusted"
        )
    if not exposure.loopback:
        warnings.append(
            f"listening on {exposure.host} makes the gateway reachable from other machines: it checks no credentials "
            "itself (the backend does, with each caller's token)"
            + ("; --insecure: tokens and documents travel in clear text" if not exposure.tls else "")
        )
    if exposure.token and exposure.token_for_anonymous_callers and not exposure.loopback:
        warnings.append(
            "--token-for-anonymous-callers: every caller that sends no token of its own acts as the --token's "
            "principal on the backend"
        )
    return warnings


def combined_policy(file_policy: EndpointPolicy, flags: EndpointPolicy | None) -> EndpointPolicy:
    """The flags' allowlist and denied networks added to the config file's (neither narrows the other; refusals name
    the flag); raises ``ValueError`` for denied networks with no allowlist to narrow."""
    if flags is None:
        return file_policy
    combined = file_policy.merged(flags)
    if not combined.prefixes and not combined.networks and file_policy.any_endpoint:
        # Denied networks alone would allow nothing but the configured providers: surely not what was meant.
        raise ValueError(
            "--deny-address narrows an allowlist: give --allow-endpoint too (or the config file's "
            "vllm_ranker.allowed_endpoints)"
        )
    return combined
