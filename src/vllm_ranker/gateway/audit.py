"""One audit line per search the gateway reranks (docs/security.md, "The gateway's threat model").

Milvus's access log names the caller of every call; the gateway's reranked searches never reach it as searches, and
their documents go to a service the caller named. So each one is logged at INFO on its own logger,
``vllm_ranker.gateway.audit``, as one greppable ``key=value`` line::

    rerank peer=ipv4:10.0.0.7:51234 user=alice auth=caller db=default collection=docs method=Search
    provider=vllm endpoints=vllm:8000 candidates=40 outcome=ok ms=41.2

``user`` is the user name of a Milvus-style ``user:password`` token (never the password; an API key shows ``-``),
``auth`` whether the backend saw the caller's own token, the gateway's ``--token`` lent to an anonymous caller, or
none. Endpoints are ``host:port`` only: a URL's path, query and user info stay out (they may hold credentials).
No document or query text is ever in the line. A refusal before any rerank logs what was known by then.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vllm_ranker import RerankStats
from vllm_ranker.core import MODEL_EXPR, RerankSpec

AUDIT_LOGGER = "vllm_ranker.gateway.audit"
log = logging.getLogger(AUDIT_LOGGER)

Metadata = Sequence[tuple[str, str | bytes]]
# Printed bare; anything else is quoted as a JSON string (spaces, quotes and control characters escaped), so a
# caller cannot forge a field or a line with a crafted collection name.
_BARE = re.compile(r"[A-Za-z0-9_.:/@,%\[\]-]{1,256}")
# A Milvus user name (a letter, then letters, digits, underscores; a little wider): what is shown of a token.
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]{0,63}")


def _shown(value: object) -> str:
    text = str(value)
    if not text:
        return "-"
    return text if _BARE.fullmatch(text) else json.dumps(text[:256])


def _authorization(metadata: Metadata) -> str | bytes | None:
    return next((v for k, v in metadata if k.lower() == "authorization"), None)


def token_user(authorization: str | bytes | None) -> str:
    """The user name of a ``user:password`` token as the SDKs send it (base64 in ``authorization``); ``-`` for an
    API key, a token that is not base64, or none. Never any part of the password."""
    if not authorization:
        return "-"
    try:
        text = base64.b64decode(authorization, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "-"
    user, colon, _ = text.partition(":")
    return user if colon and _USER.fullmatch(user) else "-"


def host_port(url: str) -> str:
    """``host:port`` of an endpoint URL (the scheme's default port when absent); ``?`` when it does not parse."""
    try:
        parts = urlsplit(str(url).strip())
        host = parts.hostname or ""
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return "?"
    if not host:
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint_urls(raw: Any) -> list[str]:
    """A Function's ``endpoint(s)`` param as URLs, best effort (a list, its JSON text, or comma-separated)."""
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            raw = json.loads(raw)
        except ValueError:
            return [raw]
    if isinstance(raw, str):
        return [part for part in raw.split(",") if part.strip()]
    if isinstance(raw, Iterable):
        return [str(part) for part in raw]
    return []


@dataclass
class Audit:
    """What is known of one reranked call, filled as it goes; ``emit`` logs it once."""

    method: str
    peer: str = "-"
    user: str = "-"
    auth: str = "none"  # caller | gateway-token | none
    db: str = "-"
    collection: str = "-"
    provider: str = ""
    endpoints: tuple[str, ...] = ()
    candidates: int | None = None
    outcome: str = "error"  # ok, or error:<Milvus status code or gRPC code>
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def of_call(cls, method: str, request: Any, context: Any, metadata: Metadata, caller_metadata: Metadata) -> Audit:
        """The call's caller and target; ``metadata`` is what goes to the backend (with a lent --token),
        ``caller_metadata`` what the caller sent."""
        own = _authorization(caller_metadata)
        sent = _authorization(metadata)
        peer = context.peer() if hasattr(context, "peer") else "-"
        db = getattr(request, "db_name", "") or next((v for k, v in metadata if k == "dbname"), "") or "default"
        return cls(
            method=method.rpartition("/")[2],
            peer=str(peer or "-"),
            user=token_user(sent),
            auth="caller" if own else ("gateway-token" if sent else "none"),
            db=db.decode() if isinstance(db, bytes) else db,
            collection=getattr(request, "collection_name", "") or "-",
        )

    def saw_function(self, provider: object, params: Any) -> None:
        """The caller's ranker, before any rerank: what a refusal can still name."""
        self.provider = str(provider or "")
        params = params if isinstance(params, dict) else {}
        raw = params.get("endpoints") or params.get("endpoint")
        self.endpoints = tuple(dict.fromkeys(host_port(u) for u in _endpoint_urls(raw)))

    def saw_chains(self, chains: Iterable[Any]) -> None:
        """A function chain's first ``rerank_model`` (its provider and endpoint), before any rerank."""
        for chain in chains:
            for op in chain.ops:
                if op.HasField("expr") and op.expr.name == MODEL_EXPR:
                    params = op.expr.params
                    written = {k: v.string_value for k, v in params.items() if v.WhichOneof("value") == "string_value"}
                    self.saw_function(written.get("provider"), written)
                    return

    def saw_rerank(self, spec: RerankSpec, stats: RerankStats) -> None:
        """The rerank as the flow planned it: the provider and endpoints it asks (defaults and config filled)."""
        self.provider = spec.provider.name
        self.endpoints = tuple(dict.fromkeys(host_port(t.url) for t in spec.targets))
        self.saw_stats(stats)

    def saw_stats(self, stats: RerankStats) -> None:
        self.candidates = stats.candidates
        if stats.provider:
            self.provider = stats.provider
        if stats.endpoints:
            self.endpoints = tuple(stats.endpoints)

    def line(self) -> str:
        ms = (time.perf_counter() - self.started) * 1000
        fields = {
            "peer": self.peer,
            "user": self.user,
            "auth": self.auth,
            "db": self.db,
            "collection": self.collection,
            "method": self.method,
            "provider": self.provider,
            "endpoints": ",".join(self.endpoints),
            "candidates": "-" if self.candidates is None else self.candidates,
            "outcome": self.outcome,
        }
        return "rerank " + " ".join(f"{key}={_shown(value)}" for key, value in fields.items()) + f" ms={ms:.1f}"

    def emit(self) -> None:
        log.info("%s", self.line())
