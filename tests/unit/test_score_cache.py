"""The score cache: LRU bound, time to live, key scope, thread safety."""

from __future__ import annotations

import threading

from vllm_ranker.core.score_cache import ScoreCache, document_digest, scope_digest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def key(n: int) -> bytes:
    return scope_digest("vllm", ["http://h:8000/rerank"], None, {}, "q") + document_digest(f"doc {n}")


def test_hits_misses_and_lru_eviction() -> None:
    cache = ScoreCache(max_entries=3)
    cache.put_many([(key(i), float(i)) for i in range(3)])
    assert cache.get_many([key(0), key(9)]) == [0.0, None]  # touching 0 makes 1 the least recently used
    cache.put_many([(key(3), 3.0)])
    assert len(cache) == 3
    assert cache.get_many([key(0), key(1), key(2), key(3)]) == [0.0, None, 2.0, 3.0]


def test_ttl_expires_and_drops_entries() -> None:
    clock = Clock()
    cache = ScoreCache(max_entries=10, clock=clock)
    cache.put_many([(key(1), 0.5)], ttl=10)
    cache.put_many([(key(2), 0.7)])  # no ttl: lives until evicted
    clock.now += 9.9
    assert cache.get_many([key(1), key(2)]) == [0.5, 0.7]
    clock.now += 0.2
    assert cache.get_many([key(1), key(2)]) == [None, 0.7]
    assert len(cache) == 1


def test_zero_size_caches_nothing() -> None:
    cache = ScoreCache(max_entries=0)
    cache.put_many([(key(1), 1.0)])
    assert cache.get_many([key(1)]) == [None]


def test_scope_separates_everything_that_decides_a_score() -> None:
    base = ("vllm", ["http://a/rerank"], "m", {"truncate_prompt_tokens": 8}, "q")
    variants = [
        ("tei", *base[1:]),
        (base[0], ["http://b/rerank"], *base[2:]),
        (*base[:2], "other", *base[3:]),
        (*base[:3], {"truncate_prompt_tokens": 16}, base[4]),
        (*base[:4], "another query"),
    ]
    digests = {scope_digest(*base)} | {scope_digest(*v) for v in variants}
    assert len(digests) == 6
    # The pool's identity does not depend on the order its endpoints were listed in.
    assert scope_digest("vllm", ["http://a", "http://b"], None, {}, "q") == scope_digest(
        "vllm", ["http://b", "http://a"], None, {}, "q"
    )
    assert document_digest("x") != document_digest("y") and len(document_digest("\ud800")) == 32


def test_thread_safe_under_contention() -> None:
    cache = ScoreCache(max_entries=500)
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for i in range(2000):
                cache.put_many([(key(offset + i % 700), float(i))], ttl=5)
                cache.get_many([key(offset + (i * 7) % 700)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n * 100,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 500
