"""The wheel tier's one installation per session: the wheel built and installed by the README's own Install lines
into a fresh venv outside the checkout, and the commands run from an empty folder, as a user who never cloned.

The venv is a plain one (no --system-site-packages) and pip resolves every dependency from the configured indexes
(its cache and local mirrors make that ~15 s), so the wheel's metadata is tested too. No PYTHONPATH or VIRTUAL_ENV
reaches the commands; test_wheel.py checks that vllm_ranker is imported from the venv's site-packages.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.readme.snippets import ROOT, shell_lines


@dataclass(frozen=True)
class Installed:
    """The wheel, the venv it is installed in, and an empty folder with no checkout above it to run from."""

    wheel: Path
    source: Path  # the files the wheel was built from (pyproject.toml, README.md, src/)
    venv: Path
    home: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *argv: str | Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """``vllm-ranker ARGV`` (or the venv's ``python`` when argv starts with it), from the empty folder."""
        command = [str(a) for a in argv]
        if command[0] != str(self.python):
            command.insert(0, str(self.venv / "bin" / "vllm-ranker"))
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.home, env={**self.env, **env}
        )

    @contextlib.contextmanager
    def serving(self, *argv: str | Path, ready: str, stop: int = signal.SIGINT) -> Iterator[re.Match[str]]:
        """``vllm-ranker ARGV`` in the background until its log (stdout and stderr) matches *ready*; yields the
        match, then stops it with *stop* and checks that it ended cleanly."""
        log = Path(tempfile.mkstemp(dir=self.home, suffix=".log")[1])
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "vllm-ranker"), *map(str, argv)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=self.env,
            )
        try:
            deadline = time.monotonic() + 90
            while not (found := re.search(ready, log.read_text())):
                assert process.poll() is None, f"it exited with {process.returncode}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"not ready after 90 s:\n{log.read_text()}"
                time.sleep(0.1)
            yield found
            process.send_signal(stop)
            assert process.wait(30) == 0, log.read_text()
            assert "Traceback" not in log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _clean_env(venv: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not name.startswith("VLLM_RANKER_")
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    # Not pytest's tmp_path: it keeps the last three runs, and each installation is ~0.5 GB.
    top = Path(tempfile.mkdtemp(prefix="vllm-ranker-wheel-"))
    try:
        assert ROOT not in top.parents
        # A copy to build from: building in the checkout would write build/ into a tree that others work in.
        source = top / "source"
        shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        venv, home = top / "venv", top / "home"
        home.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        env = {**_clean_env(venv), "VLLM_RANKER_STATE_DIR": str(top / "state")}
        lines = shell_lines("Install")
        build = next(line for line in lines if line.startswith("pip wheel"))
        install = next(line for line in lines if line.startswith("pip install") and ".whl" in line)
        assert "[ui]" in install, "the tier needs the page's extra"
        script = f"set -euo pipefail\n{build}\n{install}\n"
        done = subprocess.run(["bash", "-c", script], cwd=source, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (wheel,) = (source / "dist").glob("vllm_ranker-*.whl")
        yield Installed(wheel=wheel, source=source, venv=venv, home=home, env=env)
    finally:
        shutil.rmtree(top, ignore_errors=True)
