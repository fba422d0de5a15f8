"""An interrupted test run leaves no server behind (vllm_ranker.testing.process_guard, installed by tests/conftest.py).

A small pytest session, with this suite's own ``pytest_configure``, starts a ``milvus_lite_server`` (in the run's
process group, as the helper starts it) and a detached stand-in (a session of its own, recorded with the guard, and
stopped only at the end of its test, as test_serve_pair stops what ``serve --detach`` leaves). It is signalled
mid-test, as ``kill PID`` or a CI's cancel does: only the pytest process, not its group. Without the guard a SIGTERM
ends pytest at once and both servers live on; a SIGINT unwinds the test, but the stand-in's stop is never reached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vllm_ranker.local_servers import descendants, group_members

ROOT = Path(__file__).resolve().parents[2]

INNER_CONFTEST = """\
from tests.conftest import pytest_configure  # the suite's own: installs the guard
"""

INNER_TEST = """\
import os, subprocess, sys, time
from pathlib import Path

from vllm_ranker.testing import milvus_lite_server, process_guard


def test_runs_until_interrupted(tmp_path):
    with milvus_lite_server(tmp_path):
        stand_in = subprocess.Popen(
            [sys.executable, "-m", "vllm_ranker.testing", "--port", "0", "--rerank-port", "0"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        process_guard.guard(stand_in.pid, "stand-in")
        Path(os.environ["STARTED_FILE"]).write_text(str(stand_in.pid))
        time.sleep(120)
        stand_in.terminate()
        process_guard.release(stand_in.pid)
"""


def _living(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except (OSError, IndexError):
            pass
    return alive


def _wait_for(path: Path, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the inner run ended early:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"the inner run started nothing:\n{log.read_text(errors='replace')}"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_no_server(sig: signal.Signals, tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST)
    (inner / "test_inner.py").write_text(INNER_TEST)
    (inner / "pytest.ini").write_text("[pytest]\n")
    started, log = tmp_path / "started", tmp_path / "inner.log"
    env = {**os.environ, "STARTED_FILE": str(started), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-c", str(inner / "pytest.ini")]
    argv += ["--basetemp", str(tmp_path / "inner-tmp"), str(inner)]
    with log.open("wb") as out:
        # Its own session, so that this test can clean up after a guard that failed.
        run = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    servers: dict[int, int] = {}
    try:
        _wait_for(started, run, log)
        servers = {pid: pgid for pid, (pgid, state) in descendants(run.pid).items() if state != "Z"}
        stand_in = int(started.read_text())
        # The milvus-lite server shares the run's group; the stand-in leads its own.
        assert stand_in in servers and servers[stand_in] == stand_in
        assert any(pgid == run.pid for pid, pgid in servers.items()), servers
        os.kill(run.pid, sig)
        run.wait(timeout=60)
        deadline = time.monotonic() + 5  # the kernel's last steps after SIGKILL
        while _living(set(servers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = _living(set(servers)) | _living(set(group_members(stand_in)))
        assert not survivors, f"{sig.name} left {sorted(survivors)} running:\n{log.read_text(errors='replace')}"
    finally:
        run.kill()
        run.wait()
        for pgid in {run.pid, *servers.values()}:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in _living(set(servers)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
