"""``milvus-lite server`` in a child process on a free loopback port: started and stopped in one place for the
gateway's embedded backend (a ``.db`` file given as ``--backend``) and the test kit's ``milvus_lite_server``.

The child runs ``_milvus_lite_launcher.py`` (a real Milvus server's keepalive policy, so pymilvus's pings are not
answered with GOAWAY); a caller may name another launcher module (the tests start a Milvus Lite that serves one
provider more).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from vllm_ranker.local_servers.network import LOOPBACK, free_port
from vllm_ranker.local_servers.processes import log_tail

LAUNCHER = "vllm_ranker.local_servers._milvus_lite_launcher"


class MilvusLiteError(RuntimeError):
    """The server exited before it listened (``exited``), or did not listen in time; ``log_tail`` is the end of its
    log, for a caller's own message."""

    def __init__(self, message: str, *, exited: bool, log_tail: str) -> None:
        super().__init__(message)
        self.exited = exited
        self.log_tail = log_tail


class MilvusLite:
    """``milvus-lite server`` for the data at ``data_path`` (a ``.db`` file or a folder), its output in ``log_path``;
    ``uri`` is where it listens once ``start()`` returned. A context manager: leaving stops it."""

    def __init__(
        self, data_path: Path, log_path: Path, *, start_timeout: float = 60.0, launcher: str = LAUNCHER
    ) -> None:
        self.data_path = data_path
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.launcher = launcher  # the module run as ``python -m``
        self.port = free_port()
        self.uri = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the server and wait until it accepts connections; MilvusLiteError (the server stopped) if not."""
        command = [sys.executable, "-m", self.launcher, "server", "--data-dir", str(self.data_path)]
        with self.log_path.open("wb") as out:
            self._process = subprocess.Popen(
                [*command, "--host", LOOPBACK, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its last line says why when it exits
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                tail = log_tail(self.log_path, 40)
                self._process = None
                raise MilvusLiteError(f"milvus-lite server exited: {tail[-2000:]}", exited=True, log_tail=tail)
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise MilvusLiteError(
                        f"milvus-lite server did not listen within {self.start_timeout:g} s; see {self.log_path}",
                        exited=False,
                        log_tail=log_tail(self.log_path, 40),
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; nothing when it is not running."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
