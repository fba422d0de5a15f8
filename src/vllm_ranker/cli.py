"""The ``vllm-ranker`` command: serve (a managed local vLLM), demo, and the tools built on the library.

Each subcommand lives in its own ``cli_<name>.py`` module with ``add_parser(subparsers)`` and ``run(args)``;
they are imported lazily so ``vllm-ranker --help`` stays fast. The library never imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("serve", "demo", "ingest", "eval", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-ranker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"vllm_ranker.cli_{name}")
        except ModuleNotFoundError:  # a subcommand not built yet
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"vllm_ranker.cli_{args.command}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
