"""Process groups and the processes below one (Linux: from /proc), and the end of a server's log: what stopping a
server started here needs, whoever started it (the managed vLLM, the test kit's servers, the run's guard)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path


def group_members(pgid: int) -> dict[int, str]:
    """pid -> state ("R", "S", "Z", ...) of every process in the process group *pgid* (Linux: from /proc)."""
    members: dict[int, str] = {}
    for pid, fields in _proc_stats():
        if int(fields[2]) == pgid:
            members[pid] = fields[0]
    return members


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name: state, ppid, pgrp, ...) of every process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                yield int(entry.name), stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile


def descendants(pid: int) -> dict[int, tuple[int, str]]:
    """pid -> (process group, state) of every living descendant of *pid* (Linux: from /proc)."""
    children: dict[int, list[tuple[int, int, str]]] = {}
    for child, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append((child, int(fields[2]), fields[0]))
    found: dict[int, tuple[int, str]] = {}
    pending = [pid]
    while pending:
        for child, pgid, state in children.get(pending.pop(), []):
            if child not in found:
                found[child] = (pgid, state)
                pending.append(child)
    return found


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send *sig* to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def log_tail(path: Path | None, lines: int) -> str:
    """The last *lines* lines of a server's log (read from its last 64 KiB), or "" when there is none."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def data_home() -> Path:
    """Where per-user data lives ($XDG_DATA_HOME or ~/.local/share): the venvs of vLLM and of the Milvus server."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
