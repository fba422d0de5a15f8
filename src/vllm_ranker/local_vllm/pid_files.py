"""PID and log files of detached servers (what ``vllm-ranker serve --stop`` finds), and stopping them."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from vllm_ranker.local_vllm.venv import state_dir

# Detached servers are recognised by the launcher's file name in their command line (the rerank port's forwarder,
# when one model does both jobs, by its own).
_LAUNCHER_MARKERS = ("_vllm_launcher", "_port_forwarder")


def pid_file_path(port: int) -> Path:
    return state_dir() / f"vllm-{port}.pid"


def log_file_path(port: int) -> Path:
    return state_dir() / f"vllm-{port}.log"


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def list_pid_files() -> list[Path]:
    directory = state_dir()
    return sorted(directory.glob("vllm-*.pid")) if directory.is_dir() else []


def server_process_alive(pid: int) -> bool:
    """True if *pid* is alive and (where we can tell) a server started by this module.

    Checking the command line keeps a stale PID file from making us signal an
    unrelated process that happens to have reused the PID.
    """
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False  # exited, waiting to be reaped by its parent
            command = proc.joinpath("cmdline").read_bytes().decode(errors="replace")
            return any(marker in command for marker in _LAUNCHER_MARKERS)
        except (OSError, IndexError):
            return False
    if sys.platform.startswith("linux"):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, timeout: float = 30.0) -> bool:
    """Stop a server started by this module (by PID, e.g. from a PID file).

    The launcher runs in its own session, so its process group holds vLLM's
    worker processes too: SIGTERM the group (vLLM shuts down cleanly on it),
    then SIGKILL whatever is left after *timeout*.  Returns False if no such
    server was running.
    """
    if not server_process_alive(pid):
        return False
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server_process_alive(pid):
        time.sleep(0.2)
    signal_group(pid, signal.SIGKILL)
    return True


def log_tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
