"""A bounded, thread-safe LRU of model scores, with an optional time to live; one per client.

A score is a pure function of (service, model, scoring options, query, document), so it can be reused across
calls. The key holds a digest of the document (never the text: the cache's memory stays small and bounded)
and a digest of everything else. Off by default (``params['cache']``): see the README's "Beyond Milvus".
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import orjson

DEFAULT_CACHE_SIZE = 50_000  # entries per client: about 200 bytes each, so ~10 MB when full


def scope_digest(provider: str, urls: Sequence[str], model: str | None, options: object, query: str) -> bytes:
    """What, besides the document, decides a score: provider, endpoint (or the whole pool), model, options."""
    scope = orjson.dumps(
        [provider, sorted(urls), model, options, query], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(scope).digest()


def document_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class ScoreCache:
    """``get``/``put`` by key bytes (scope digest + document digest); least recently used entries go first."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (score, expires at)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        """The cached score of each key, or None (absent or expired: an expired entry is dropped)."""
        now = self._clock()
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    found.append(None)
                elif entry[1] <= now:
                    del self._entries[key]
                    found.append(None)
                else:
                    self._entries.move_to_end(key)
                    found.append(entry[0])
        return found

    def put_many(self, items: Sequence[tuple[bytes, float]], ttl: float | None = None) -> None:
        if self.max_entries == 0:
            return
        expires = self._clock() + ttl if ttl else float("inf")
        with self._lock:
            for key, score in items:
                self._entries[key] = (score, expires)
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
