"""What ``vllm-ranker ingest``, ``eval`` and ``bench`` share: the Milvus/vLLM options, the local vLLM started
when no endpoint is given (as ``demo`` does), and a rich progress bar with a rate column."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vllm_ranker.tools.pipelines import RerankConfig


class UsageError(Exception):
    """A flag or argument the user gave cannot work (the command prints it as ``error:`` and exits 2)."""


DEFAULT_DB = "./vllm_ranker.db"


def add_milvus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uri", default=DEFAULT_DB, help=f"Milvus Lite file or Milvus server URI (default {DEFAULT_DB})"
    )
    parser.add_argument("--token", default="", help="Milvus token (user:password or API key) for a server URI")
    parser.add_argument("--collection", help="collection name (default: the corpus directory's name)")


def add_vllm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        help="a running vLLM or other OpenAI-compatible server for /v1/embeddings (and /v1/rerank); "
        "default: a local vLLM, started here if none is healthy on --port",
    )
    parser.add_argument("--port", type=int, default=8000, help="port of the local vLLM server (default 8000)")
    parser.add_argument("--model", help="embedding model name (default: the first model the endpoint lists)")
    parser.add_argument("--vllm-venv", help="the vLLM virtual environment (default: see `vllm-ranker serve -h`)")
    parser.add_argument("--keep-server", action="store_true", help="leave a vLLM server started here running")
    parser.add_argument(
        "--truncate-prompt-tokens",
        type=int,
        default=-1,
        help="vLLM's truncate_prompt_tokens sent with embeddings and rerank requests (default -1: the model's "
        "maximum, so long documents never fail); 0 leaves it out, for services that do not know it",
    )


def truncation(args: argparse.Namespace) -> int | None:
    value = int(args.truncate_prompt_tokens)
    return None if value == 0 else value


def collection_name(args: argparse.Namespace, corpus: str | None) -> str:
    """--collection, else the corpus directory's (or file's) name made into a valid Milvus name."""
    if args.collection:
        return str(args.collection)
    if corpus is None:
        raise SystemExit("give --collection")
    path = Path(corpus)
    stem = path.name if path.is_dir() else path.stem
    name = re.sub(r"\W", "_", stem) or "corpus"
    return name if not name[0].isdigit() else f"c_{name}"


@contextlib.contextmanager
def vllm_endpoint(console: Console, args: argparse.Namespace) -> Iterator[str]:
    """--endpoint as given, else a local vLLM (reused if healthy on --port, else started and later stopped)."""
    if args.endpoint:
        yield str(args.endpoint).rstrip("/")
        return
    from vllm_ranker.local_vllm import ensure_server

    with console.status("Starting vLLM (the first start compiles kernels: 1-2 minutes on a CPU) ...") as status:

        def progress(elapsed: float) -> None:
            status.update(f"Waiting for vLLM to be healthy ... {elapsed:.0f} s")

        server = ensure_server(
            args.model, port=args.port, venv=args.vllm_venv, progress=progress, detach=args.keep_server
        )
    console.print(f"vLLM at [bold]{server.endpoint}[/bold]" + ("" if server.owned else " (already running)"))
    try:
        yield server.endpoint
    finally:
        if not args.keep_server:
            server.stop()


def progress_bar(console: Console, *, transient: bool = False) -> Progress:
    """A bar with done/total, a ``rate`` field the caller fills (e.g. "120 docs/s"), elapsed and remaining."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


def add_rerank_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, default=100, help="first-stage hits reranked by +rerank (default 100)")
    parser.add_argument("--rerank-provider", default="vllm", help="RERANK Function provider (default vllm)")
    parser.add_argument(
        "--rerank-endpoint",
        action="append",
        help="rerank service URL (repeatable: several endpoints share the load); default: --endpoint",
    )
    parser.add_argument("--rerank-model", help="the provider's model_name (default: the server's only model)")
    parser.add_argument("--max-batch", type=int, default=32, help="documents per rerank request (default 32)")
    parser.add_argument(
        "--rerank-api-key-env", help="environment variable holding the rerank provider's API key (never a flag)"
    )


def rerank_config(args: argparse.Namespace, endpoint: str, *, cache: bool) -> RerankConfig:
    api_key = None
    if args.rerank_api_key_env:
        api_key = os.environ.get(args.rerank_api_key_env)
        if not api_key:
            raise UsageError(f"environment variable {args.rerank_api_key_env} is not set")
    return RerankConfig(
        endpoints=tuple(args.rerank_endpoint or [endpoint]),
        provider=args.rerank_provider,
        model=args.rerank_model,
        window=args.window,
        max_batch=args.max_batch,
        truncate_prompt_tokens=truncation(args),
        cache=cache,
        api_key=api_key,
    )
