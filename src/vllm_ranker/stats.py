"""The per-call stats record of a rerank (also attached to the search result as ``result.extra['rerank']``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

_PORTS = {"http": 80, "https": 443}


@dataclass
class RerankStats:
    candidates: int = 0
    batches: int = 0
    requests: int = 0  # rerank HTTP requests sent, retries included (the tokenizer's: tokenize_requests)
    retries: int = 0
    failovers: int = 0  # retries sent to another endpoint (several endpoints)
    chunks: int = 0  # chunks scored (the chunk param; candidates then counts documents)
    chunk_unit: str = ""  # what a chunk's size counts: "words", or "tokens" (the model's, by its tokenizer)
    # chunk "tokens": documents whose tokens could not be placed on their text, chunked by words instead (as many
    # per chunk as their tokens-per-word ratio allows)
    chunk_fallbacks: int = 0
    tokenize_requests: int = 0  # chunk "tokens": HTTP requests to the tokenizer (one per distinct text, retries too)
    tokenize_seconds: float = 0.0  # chunk "tokens": wall time of the tokenize step (not in rerank_seconds)
    cache_hits: int = 0
    cache_misses: int = 0
    service_seconds: float = 0.0  # summed time spent waiting on the service's rerank answers
    rerank_seconds: float = 0.0  # wall time of the whole rerank step
    search_seconds: float = 0.0  # wall time of the first-stage Milvus search(es)
    prompt_tokens: int = 0  # from vLLM's `usage`, when the service reports it
    fallback: bool = False  # True when on_failure="passthrough" returned first-stage order
    error: str | None = None  # why it fell back (redacted), when it did
    # Who was asked, for audit lines (the gateway's): the provider's name and each endpoint's host:port only, never
    # a path, a query or user info (a URL may carry credentials).
    provider: str = ""
    endpoints: tuple[str, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def of(cls, provider: str, urls: Iterable[str]) -> RerankStats:
        """A new record for a rerank by ``provider`` at ``urls`` (kept as host:port only)."""
        hosts = tuple(dict.fromkeys(f"{u.hostname}:{u.port or _PORTS.get(u.scheme, '')}" for u in map(urlsplit, urls)))
        return cls(provider=provider, endpoints=hosts)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    @property
    def overhead_seconds(self) -> float:
        """Rerank wall time not spent waiting on the service (ours: planning, JSON, scheduling)."""
        return max(0.0, self.rerank_seconds - self.service_seconds)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["overhead_seconds"] = self.overhead_seconds
        return out
