"""A real subcommand module (``add_parser`` and ``run``, as the dispatcher wants them) whose run raises the
exception its arguments name, with the message given: how ``vllm-ranker`` prints a failure, seen whole."""

from __future__ import annotations

import argparse
from typing import Any

from vllm_ranker.user_error import UserError

RAISED: dict[str, type[Exception]] = {"user": UserError, "bug": RuntimeError}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("raise")
    parser.add_argument("kind", choices=sorted(RAISED))
    parser.add_argument("message")


def run(args: argparse.Namespace) -> int:
    raise RAISED[args.kind](args.message)
