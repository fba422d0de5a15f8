"""PID and log files of detached servers (what ``vllm-ranker serve --stop`` finds), and stopping them."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from vllm_ranker.local_servers import signal_group
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
