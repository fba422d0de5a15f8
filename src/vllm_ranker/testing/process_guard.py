"""Servers a test run starts, stopped by process group however the run ends.

A test server that runs in its own process group (a vLLM with its workers, a Milvus standalone, a server that
``vllm-ranker serve --detach`` leaves behind) hears neither Ctrl-C in the terminal nor a SIGTERM sent to the test
run, and a SIGTERM ends a Python process without its ``finally`` blocks or ``atexit``: its servers live on. So
each helper that starts one records its group here (``guarded``) for as long as it runs, and ``install`` stops
what is recorded at exit and on SIGINT or SIGTERM, before the signal takes its usual course: SIGTERM to each
group, SIGKILL to what is left after a grace. With ``install`` the run's own descendants go too (a server that
shares the run's group, e.g. ``milvus_lite_server``'s, or one whose starter has not recorded it yet), each
stopped by its group when it leads one.

    from vllm_ranker.testing import process_guard

    process_guard.install()                                  # once, in the test run's conftest.py
    with process_guard.guarded(process.pid, "my server"):   # a server started with start_new_session=True
        ...
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from vllm_ranker.local_servers import descendants, group_members, signal_group

# pgid -> what runs there. Reentrant: the signal handler runs on the main thread, maybe inside guarded() itself.
_GROUPS: dict[int, str] = {}
_LOCK = threading.RLock()
_installed = False


def guard(pgid: int, what: str) -> None:
    """Record a server's process group (its leader started with ``start_new_session=True``)."""
    if pgid == os.getpgrp():
        # Stopping it would stop this process too.
        raise ValueError(f"{what} (pid {pgid}) runs in this process's own group: start it in a session of its own")
    with _LOCK:
        _GROUPS[pgid] = what


def release(pgid: int) -> None:
    """Forget a group its starter has stopped (its number may be reused by an unrelated process later)."""
    with _LOCK:
        _GROUPS.pop(pgid, None)


@contextlib.contextmanager
def guarded(pgid: int, what: str) -> Iterator[None]:
    """``guard`` for the block's duration: the block stops the server itself, the guard covers what it cannot."""
    guard(pgid, what)
    try:
        yield
    finally:
        release(pgid)


def guarded_groups() -> dict[int, str]:
    with _LOCK:
        return dict(_GROUPS)


def stop_all(grace: float = 5.0, *, children: bool = False) -> list[int]:
    """Stop every recorded group (and with *children*, every living descendant of this process): SIGTERM, then
    SIGKILL after *grace* seconds. Returns the groups and lone processes that were signalled."""
    with _LOCK:
        groups = set(_GROUPS)
        _GROUPS.clear()
    own = os.getpgrp()
    lone: set[int] = set()
    if children:
        # Read the whole tree first: a child that dies orphans its own children, which then are nobody's.
        tree = {pid: pgid for pid, (pgid, state) in descendants(os.getpid()).items() if state != "Z"}
        groups.update(pid for pid, pgid in tree.items() if pid == pgid)
        lone.update(pid for pid, pgid in tree.items() if pgid == own or pgid not in groups)
    groups.discard(own)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in groups:
            signal_group(pgid, sig)
        for pid in lone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _any_alive(groups, lone) and time.monotonic() < deadline:
            time.sleep(0.05)
    return sorted(groups | lone)


def _any_alive(groups: set[int], lone: set[int]) -> bool:
    if any(state != "Z" for pgid in groups for state in group_members(pgid).values()):
        return True
    return any(_alive(pid) for pid in lone)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def install(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Stop the recorded groups and this process's descendants at exit and on *signals* (once per process).

    Each signal then takes its usual course: SIGINT its KeyboardInterrupt (pytest still reports and tears down),
    SIGTERM its default ending, so the exit status says what ended the run. Signal handlers can only be set on
    the main thread; elsewhere only the exit hook is set.
    """
    global _installed
    with _LOCK:
        if _installed:
            return
        _installed = True
    atexit.register(stop_all, children=True)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in signals:
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            stop_all(children=True)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)
