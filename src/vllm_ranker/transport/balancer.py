"""Several endpoints for one provider: least-outstanding-requests choice, and ejection after repeated failures.

One ``EndpointPool`` per transport (so per client), shared by every call of that client and keyed by request URL.
It is called from worker threads and from the event loop alike, never waits, and holds its lock only for a few
dictionary operations. A lone endpoint skips all of it: there is nothing to choose and nowhere to fail over to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from vllm_ranker.core import metrics
from vllm_ranker.providers import Target
from vllm_ranker.values.redaction import redact

log = logging.getLogger(__name__)

OK, FAILED, NEUTRAL = "ok", "failed", "neutral"  # what one answer says about the endpoint's health


@dataclass
class _Health:
    outstanding: int = 0
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    ejected: bool = False


class EndpointPool:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()
        self._turn = 0  # rotates among equally loaded endpoints so that ties do not all go to the first

    def acquire(self, targets: Sequence[Target], avoid: Collection[str] = ()) -> Target:
        """The endpoint for the next request: not ejected, not in ``avoid`` (unless nothing else is left),
        fewest requests outstanding. With every endpoint ejected, the one whose cool-down ends first (trying a
        maybe-recovered endpoint beats failing a search without a try)."""
        if len(targets) == 1:
            return targets[0]
        with self._lock:
            now = self._clock()
            states = [self._health.setdefault(t.url, _Health()) for t in targets]
            order = list(range(len(targets)))
            preferred = [i for i in order if targets[i].url not in avoid] or order
            healthy = [i for i in preferred if states[i].ejected_until <= now]
            if healthy:
                self._turn += 1
                chosen = min(healthy, key=lambda i: (states[i].outstanding, (i - self._turn) % len(targets)))
            else:
                chosen = min(preferred, key=lambda i: states[i].ejected_until)
            state = states[chosen]
            if state.ejected and state.ejected_until <= now:
                state.ejected = False
                log.info("rerank endpoint %s is back in rotation after its cool-down", redact(targets[chosen].url))
            state.outstanding += 1
            return targets[chosen]

    def release(self, targets: Sequence[Target], url: str, outcome: str, eject_after: int, cooldown: float) -> None:
        if len(targets) == 1:
            return
        with self._lock:
            state = self._health.setdefault(url, _Health())
            state.outstanding = max(0, state.outstanding - 1)
            if outcome == OK:
                state.consecutive_failures = 0
            elif outcome == FAILED:
                state.consecutive_failures += 1
                if state.consecutive_failures >= eject_after and not state.ejected:
                    state.ejected = True
                    state.ejected_until = self._clock() + cooldown
                    # On probation when it comes back: one more failure ejects it again.
                    state.consecutive_failures = eject_after - 1
                    log.warning(
                        "rerank endpoint %s ejected for %g s after %d consecutive failures",
                        redact(url),
                        cooldown,
                        eject_after,
                    )
                    metrics.count_ejection()

    def is_ejected(self, url: str) -> bool:
        with self._lock:
            state = self._health.get(url)
            return state is not None and state.ejected_until > self._clock()

    def outstanding(self, url: str) -> int:
        with self._lock:
            state = self._health.get(url)
            return 0 if state is None else state.outstanding
