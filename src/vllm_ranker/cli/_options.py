"""What the subcommands share: the Milvus/vLLM/rerank options, argument types that refuse impossible values, the
help formatter, the local vLLM started when no endpoint is given, a progress bar with a rate column, and
``UsageError`` (a flag that cannot work: ``error:`` and exit 2)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_ranker.tools import ToolError, ToolInputError
from vllm_ranker.user_error import UserError

# Only what the parsers need is imported at the top: `COMMAND --help` builds them, and must not pay for pymilvus,
# httpx, numpy or rich (the rest is imported where it is used).
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from vllm_ranker import MilvusClient
    from vllm_ranker.local_vllm import VLLMLaunch
    from vllm_ranker.tools import RerankConfig


class UsageError(UserError):
    """A flag or argument the user gave cannot work (the command prints it as ``error:`` and exits 2)."""


DEFAULT_DB = "./vllm_ranker.db"
URI_SCHEMES = ("http://", "https://", "tcp://", "unix:", "grpc://", "grpcs://")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and shows every default that the help text does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def describe(doc: str | None) -> str:
    """A module docstring as plain help text: reST literals (``x``) and backticks shown as plain words."""
    return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", doc or "")


def add_command(sub: Any, name: str, doc: str | None, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=describe(doc), formatter_class=HelpFormatter
    )
    return parser


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (0 would mean "do nothing", which no flag here wants)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def milvus_uri(text: str) -> str:
    """argparse type: what pymilvus's ``uri`` takes — a Milvus Lite file (``*.db``) or a server URI."""
    if text.startswith(URI_SCHEMES) or text.endswith(".db"):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a Milvus Lite file (a path ending in .db) nor a server URI (http://host:19530)"
    )


def add_milvus_options(parser: argparse.ArgumentParser, *, collection_help: str | None = None) -> None:
    parser.add_argument("--uri", type=milvus_uri, default=DEFAULT_DB, help="Milvus Lite file or Milvus server URI")
    parser.add_argument("--db", dest="uri", type=milvus_uri, help=argparse.SUPPRESS)  # the demo's old name
    parser.add_argument("--token", default="", help="Milvus token (user:password or API key) for a server URI")
    parser.add_argument(
        "--collection",
        help=collection_help or "collection name (default: the dataset directory's name, as ingest names it)",
    )


def connect(args: argparse.Namespace) -> MilvusClient:
    """A client of --uri; a Milvus that cannot be reached is one clear error, not pymilvus's traceback."""
    from pymilvus import MilvusException

    from vllm_ranker import MilvusClient

    try:
        return MilvusClient(uri=args.uri, token=args.token)
    except MilvusException as exc:
        lite = str(args.uri).endswith(".db") and "://" not in str(args.uri)
        hint = "does its folder exist, and may you write there?" if lite else "is the server running there?"
        raise ToolError(f"cannot open Milvus at {args.uri}: {exc.message}: {hint}") from None


def require_collection(client: MilvusClient, name: str, uri: str) -> None:
    if not client.has_collection(name):
        found = ", ".join(sorted(client.list_collections())) or "none"
        raise ToolInputError(
            f"collection {name!r} not found at {uri} (it has: {found}): make it with `vllm-ranker ingest DIR`, "
            "or give --collection with one of those"
        )


def add_vllm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        help="a running vLLM or other OpenAI-compatible server for /v1/embeddings (and /v1/rerank unless "
        "--rerank-endpoint is given); default: the local embedder, started here if none is healthy on --port",
    )
    parser.add_argument("--port", type=int, default=8000, help="port of the local embedder (vllm-ranker serve's)")
    parser.add_argument(
        "--rerank-port",
        type=int,
        help="port of the local reranker (default: --port + 1, as vllm-ranker serve runs it)",
    )
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
    """--collection, else the dataset's name made into a valid Milvus name: a directory's name, and for a BEIR
    ``corpus.jsonl`` its directory's name (so ``ingest DIR/corpus.jsonl`` and ``eval DIR`` agree), else the file's
    stem."""
    if args.collection:
        return str(args.collection)
    if corpus is None:
        raise UsageError("give --collection")
    path = Path(corpus)
    beir_corpus = path.name == "corpus.jsonl" and path.parent.name not in ("", ".")
    stem = path.resolve().parent.name if beir_corpus else (path.resolve().name if path.is_dir() else path.stem)
    name = re.sub(r"\W", "_", stem) or "corpus"
    return name if not name[0].isdigit() else f"c_{name}"


@dataclass(frozen=True)
class Endpoints:
    """Where the embedder and the reranker answer, and what kind of model reranks (cross-encoder, llm-reranker,
    late-interaction, bi-encoder, unknown) of which family (qwen3-reranker, ...: vllm_ranker.local_vllm's
    RERANKER_FAMILIES)."""

    embeddings: str
    rerank: str
    rerank_kind: str = "unknown"
    rerank_model: str | None = None
    local: bool = False  # the reranker is the local one (started or reused here)
    rerank_family: str = "unknown"

    def __str__(self) -> str:  # the embeddings URL, as the tools used the single endpoint
        return self.embeddings


@contextlib.contextmanager
def embeddings_endpoint(console: Console, args: argparse.Namespace) -> Iterator[Endpoints]:
    """Where embeddings are asked (ingest; eval and bench without ``+rerank``): --endpoint as given, else the local
    embedder on --port, reused when healthy, else started here and later stopped. No reranker is started."""
    if args.endpoint:
        yield _given_endpoints(args)
        return
    with _local_embedder(console, args) as (found, reused):
        console.print(f"vLLM at [bold]{found.embeddings}[/bold] (embeddings){reused}")
        yield found


@contextlib.contextmanager
def rerank_endpoints(console: Console, args: argparse.Namespace) -> Iterator[Endpoints]:
    """Where embeddings and reranking are asked, with the rerank model's name and kind: --endpoint and
    --rerank-endpoint (else --endpoint) as given; else the local embedder on --port and the local reranker on
    --rerank-port (port + 1), reused when healthy, else started (see vllm_ranker.local_vllm.pair) and later
    stopped; with --rerank-endpoint but no --endpoint, only the embedder is local."""
    if args.endpoint:
        yield _with_kind(args, _given_endpoints(args))
        return
    if getattr(args, "rerank_endpoint", None):
        with _local_embedder(console, args) as (found, reused):
            _announce(console, found, reused)
            yield _with_kind(args, found)
        return
    from vllm_ranker.local_vllm import ensure_pair

    with _starting_vllm(console) as progress:
        pair, embed_reused, rerank_reused = ensure_pair(
            _launch(args).server(args.model, port=args.port),
            getattr(args, "rerank_model", None),
            rerank_port=args.rerank_port,
            progress=progress,
        )
        if pair.plan.note:
            console.print(f"[yellow]note:[/] {pair.plan.note}", highlight=False)
        if pair.plan.recognised:
            console.print(f"reranker: {pair.plan.recognised}", highlight=False, markup=False)
    found = Endpoints(pair.embedder.endpoint, pair.rerank_endpoint, local=True)
    _announce(console, found, " (already running)" if embed_reused and rerank_reused else "")
    with _stopped_unless_kept(args, pair.stop):
        yield _with_kind(args, found)


def _given_endpoints(args: argparse.Namespace) -> Endpoints:
    embeddings = str(args.endpoint).rstrip("/")
    return Endpoints(embeddings, _rerank_url(args, embeddings))


def _rerank_url(args: argparse.Namespace, embeddings: str) -> str:
    """--rerank-endpoint's first URL, else the embedder's (the tools' RerankConfig takes every URL given)."""
    return str((getattr(args, "rerank_endpoint", None) or [embeddings])[0]).rstrip("/")


def _launch(args: argparse.Namespace) -> VLLMLaunch:
    from vllm_ranker.local_vllm import VLLMLaunch

    # --keep-server: the servers started here outlive the command (`vllm-ranker serve --stop` stops them).
    return VLLMLaunch(args.vllm_venv, detach=args.keep_server)


@contextlib.contextmanager
def _local_embedder(console: Console, args: argparse.Namespace) -> Iterator[tuple[Endpoints, str]]:
    """The local embedder on --port (reused or started, stopped after unless kept) and " (already running)" when
    it was reused."""
    from vllm_ranker.local_vllm import ensure_server

    with _starting_vllm(console) as progress:
        server = ensure_server(_launch(args).server(args.model, port=args.port), progress=progress)
    found = Endpoints(server.endpoint, _rerank_url(args, server.endpoint))
    with _stopped_unless_kept(args, server.stop):
        yield found, "" if server.owned else " (already running)"


@contextlib.contextmanager
def _starting_vllm(console: Console) -> Iterator[Callable[[float], None]]:
    with console.status("Starting vLLM (the first start compiles kernels: 1-2 minutes on a CPU) ...") as status:

        def progress(elapsed: float) -> None:
            status.update(f"Waiting for vLLM to be healthy ... {elapsed:.0f} s")

        yield progress


@contextlib.contextmanager
def _stopped_unless_kept(args: argparse.Namespace, stop: Callable[[], None]) -> Iterator[None]:
    try:
        yield
    finally:
        if not args.keep_server:
            stop()


def _announce(console: Console, found: Endpoints, reused: str) -> None:
    console.print(f"vLLM at [bold]{found.embeddings}[/bold] (embeddings), {found.rerank} (rerank){reused}")


def _with_kind(args: argparse.Namespace, found: Endpoints) -> Endpoints:
    """The rerank model's name and kind, from the server's /v1/models and the model's config (vLLM only)."""
    if getattr(args, "rerank_provider", "vllm") != "vllm":
        return found
    from vllm_ranker.local_vllm import served_reranker

    # A local reranker serves one model: ask it; otherwise --rerank-model names the model sent to the provider.
    name = None if found.local else getattr(args, "rerank_model", None)
    served, family, kind = served_reranker(found.rerank, name)
    return Endpoints(found.embeddings, found.rerank, kind, served or name, found.local, family)


def progress_bar(console: Console, *, transient: bool = False) -> Progress:
    """A bar with done/total, a ``rate`` field the caller fills (e.g. "120 docs/s"), elapsed and remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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
    parser.add_argument("--window", type=positive_int, default=100, help="first-stage hits reranked by +rerank")
    parser.add_argument(
        "--rerank-provider",
        default="vllm",
        choices=("vllm", "tei", "cohere", "voyageai", "siliconflow", "ali", "huggingface", "sglang"),
        help="RERANK Function provider",
    )
    parser.add_argument(
        "--rerank-endpoint",
        action="append",
        help="rerank service URL (repeatable: several endpoints share the load); default: --endpoint if given, "
        "else the local reranker on --rerank-port",
    )
    parser.add_argument(
        "--rerank-model",
        help="the provider's model_name (default: the server's only model); for the local reranker started here, "
        "the model it serves: a directory, a hub id, or 'same' (default: cross-encoder/ms-marco-MiniLM-L-6-v2, "
        "else the embedder)",
    )
    parser.add_argument("--max-batch", type=positive_int, default=32, help="documents per rerank request")
    parser.add_argument(
        "--rerank-api-key-env", help="environment variable holding the rerank provider's API key (never a flag)"
    )
    parser.add_argument(
        "--rerank-params",
        metavar="JSON",
        help="a JSON object of more RERANK Function params for the +rerank pipelines, e.g. "
        '\'{"chunk": {"words": 120, "overlap": 20}, "fuse": {"method": "rrf"}}\' (see docs/beyond-milvus.md)',
    )


# Params the command sets from its own flags: given again in --rerank-params they would fight those flags.
_FLAG_PARAMS = {
    "reranker": "the +rerank pipelines always use a model ranker",
    "queries": "the pipelines pass each query's text",
    "provider": "use --rerank-provider",
    "endpoint": "use --rerank-endpoint",
    "model_name": "use --rerank-model",
    "maxbatch": "use --max-batch",
    "api_key": "use --rerank-api-key-env",
}


def rerank_params(args: argparse.Namespace) -> dict[str, Any]:
    """--rerank-params as a dict ({} when absent); a bad JSON, a non-object or a flag's param is a UsageError."""
    text = getattr(args, "rerank_params", None)
    return {} if text is None else params_object("--rerank-params", text)


def params_object(flag: str, text: str) -> dict[str, Any]:
    """A JSON object of RERANK Function params given to ``flag``; a bad JSON, a non-object or a param that a flag
    of the command sets is a UsageError."""
    import json

    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON ({exc.msg} at character {exc.pos}): {text}") from None
    if not isinstance(params, dict):
        raise UsageError(f'{flag} must be a JSON object, e.g. {{"chunk": {{"words": 120}}}}, not: {text}')
    for key in params:
        if key.lower() in _FLAG_PARAMS:
            raise UsageError(f"{flag}: {key} is set by the command: {_FLAG_PARAMS[key.lower()]}")
    return params


def rerank_config(args: argparse.Namespace, endpoint: Endpoints | str, *, cache: bool) -> RerankConfig:
    from vllm_ranker.tools import RerankConfig

    api_key = None
    if args.rerank_api_key_env:
        api_key = os.environ.get(args.rerank_api_key_env)
        if not api_key:
            raise UsageError(f"environment variable {args.rerank_api_key_env} is not set")
    found = endpoint if isinstance(endpoint, Endpoints) else Endpoints(str(endpoint), str(endpoint))
    return RerankConfig(
        endpoints=tuple(args.rerank_endpoint or [found.rerank]),
        provider=args.rerank_provider,
        # A local reranker started here serves --rerank-model under its own name: send the name it lists.
        model=found.rerank_model if found.local else args.rerank_model,
        window=args.window,
        max_batch=args.max_batch,
        truncate_prompt_tokens=truncation(args),
        cache=cache,
        api_key=api_key,
        params=rerank_params(args),
        text_field=getattr(args, "rerank_field", None),
    )
