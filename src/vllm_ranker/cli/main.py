"""The ``vllm-ranker`` command: serve (a managed local vLLM), demo, the gateway, the page, and the tools.

Each subcommand lives in its own module of this package (``serve.py``, ``demo.py``, ...) with
``add_parser(subparsers)`` and ``run(args)``. Only the subcommand being run is imported, so ``vllm-ranker --help``
stays fast. Every failure a user can cause ends in one ``error:`` line, followed only by the lines its message
carries on purpose (install commands to paste) (exit 1; 2 for usage errors; 130 on Ctrl-C); anything else is a bug
and asks to be reported. ``--debug`` or ``VLLM_RANKER_DEBUG=1`` shows the traceback instead. The library never
imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from vllm_ranker import __version__

# name -> (module, one-line help). The modules are imported only when their subcommand runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("vllm_ranker.cli.serve", "run a real vLLM embedding + rerank server (pooling runner)"),
    "install-vllm": ("vllm_ranker.cli.install_vllm", "create the virtual environment with vLLM that serve runs"),
    "demo": ("vllm_ranker.cli.demo", "the vLLM Ranker end to end on an embedded Milvus Lite collection"),
    "ingest": ("vllm_ranker.cli.ingest", "load a corpus into Milvus with BM25 and dense fields"),
    "eval": ("vllm_ranker.cli.eval", "nDCG@10 / Recall@100 / MRR@10 of first stages and +rerank"),
    "bench": ("vllm_ranker.cli.bench", "latency and throughput of one pipeline at a concurrency"),
    # The gateway and the page live in their own rooms; their command modules sit there too.
    "gateway": ("vllm_ranker.gateway.command", "a Milvus-protocol gateway: the vLLM ranker for every Milvus SDK"),
    "ui": ("vllm_ranker.ui.command", "a local web page: first stage and reranked side by side, eval charts"),
}
DEBUG_ENV = "VLLM_RANKER_DEBUG"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (the others are listed by name and help)."""
    parser = argparse.ArgumentParser(
        prog="vllm-ranker",
        description="Milvus's model rankers (vLLM and friends) on every Milvus: a managed vLLM, a demo, evaluation "
        "tools, a Milvus-protocol gateway and a page. 'vllm-ranker COMMAND --help' lists a command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"vllm-ranker {__version__}")
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of a failure (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == command:
            importlib.import_module(module_name).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def _message(exc: BaseException, suffix: str = "") -> str:
    """``error: <first line>`` (its stray whitespace collapsed, ``suffix`` appended), then the message's other lines
    as written: install advice carries indented commands meant to be pasted."""
    first, _, rest = str(exc).strip().partition("\n")
    head = (" ".join(first.split()) or type(exc).__name__) + suffix
    lines = [head if head.startswith("error:") else f"error: {head}"]
    lines += [line.rstrip() for line in rest.split("\n")] if rest else []
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    module: Any = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        hint = getattr(module, "INTERRUPTED_HINT", "")
        print(f"\ninterrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        from vllm_ranker.cli._options import UsageError

        code = 2 if isinstance(exc, UsageError) else 1
        report = f" ({type(exc).__name__}; run again with --debug for the traceback, and report it)"
        print(_message(exc, "" if _is_expected(exc) else report), file=sys.stderr)
        return code


def _is_expected(exc: BaseException) -> bool:
    """Failures a user can cause or meet (bad input, files, ports, Milvus, services, missing extras): their message
    is the whole story. Anything else is a bug, and says so.

    The rule is a base class, UserError: the tools', the command line's, the gateway's and the page's errors derive
    from it. Besides it: what the user's machine and services answer (OSError, Milvus's own errors, the ranker's
    RerankError among them) and the local vLLM manager's errors, which are RuntimeErrors of their own."""
    from pymilvus import MilvusException

    from vllm_ranker.local_vllm import VLLMStartError, VLLMUnavailable
    from vllm_ranker.user_error import UserError

    return isinstance(exc, (UserError, OSError, MilvusException, VLLMUnavailable, VLLMStartError))


if __name__ == "__main__":
    sys.exit(main())
