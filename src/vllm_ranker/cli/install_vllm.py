"""``vllm-ranker install-vllm``: the vLLM venv that ``serve`` runs, by the installer that ships in the package
(``vllm_ranker/local_vllm/install.py``, whose docstring is this command's help); ``scripts/install-vllm.sh`` runs
the same installer from a checkout."""

from __future__ import annotations

import argparse
from typing import Any

from vllm_ranker.cli._options import add_command
from vllm_ranker.local_vllm import install

__all__ = ["add_parser", "run"]

INTERRUPTED_HINT = install.INTERRUPTED_HINT


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "install-vllm", install.__doc__, install.SUMMARY)
    install.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return install.run(args)
