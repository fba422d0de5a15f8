"""``vllm-ranker gateway`` as a user runs it: help with defaults, one-line user errors, a Milvus Lite file
behind it, a startup line, no token in the log, and a graceful stop on SIGTERM (the call in flight finishes)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymilvus
import pytest

from tests.gateway.test_faults import search, small_collection
from vllm_ranker.gateway import GatewayError, command
from vllm_ranker.testing import RerankServer

SRC = Path(command.__file__).resolve().parents[2]
LAUNCH = (
    "import argparse, sys; from vllm_ranker.gateway import command; "
    "p = argparse.ArgumentParser(prog='vllm-ranker'); command.add_parser(p.add_subparsers()); "
    "sys.exit(command.run(p.parse_args(sys.argv[1:])))"
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vllm-ranker")
    command.add_parser(top.add_subparsers())
    return top


def test_help_shows_every_default() -> None:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(sub.choices["gateway"].format_help().split())  # help wraps lines
    for default in ("./milvus.db", "127.0.0.1", "19530", "info", "64"):
        assert f"(default: {default})" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "cert.pem"], "give both --tls-cert and --tls-key"),
        (["--port", "70000"], "--port 70000: give a port from 0 to 65535"),
        (["--backend", "ftp://milvus:1"], "is not a Milvus URI"),
        (["--backend", "/no/such/folder/x.db"], "the folder /no/such/folder does not exist"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str) -> None:
    args = parser().parse_args(["gateway", "--port", "0", *argv])
    with pytest.raises(ValueError) as caught:
        command.run(args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = parser().parse_args(["gateway", "--backend", "http://127.0.0.1:1", "--port", str(port)])
        with pytest.raises(GatewayError, match="the port is in use"):
            command.run(args)


def test_lite_file_backend_startup_line_and_graceful_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    argv = [
        "gateway",
        "--backend",
        str(tmp_path / "milvus.db"),
        "--port",
        "0",
        "--grace",
        "5",
        "--token",
        "s3cret-token-value",
    ]
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, *argv], stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        while True:
            line = process.stderr.readline()
            assert line, f"the gateway exited: {''.join(lines)}"
            lines.append(line)
            if "listening on" in line:
                break
        found = re.search(r"listening on 127\.0\.0\.1:(\d+), backend (.+)$", line.strip())
        assert found and found.group(2) == f"{tmp_path / 'milvus.db'} (Milvus Lite)"
        drain = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
        drain.start()
        client = pymilvus.MilvusClient(uri=f"http://127.0.0.1:{found.group(1)}")
        with RerankServer(request_latency=1.0) as slow:
            small_collection(client)
            result: dict[str, Any] = {}

            def run() -> None:
                try:
                    result["hits"] = search(client, slow.endpoint)
                except Exception as exc:
                    result["error"] = exc

            worker = threading.Thread(target=run)
            worker.start()
            deadline = time.monotonic() + 10
            while slow.in_flight == 0 and time.monotonic() < deadline:  # until the search is in the rerank
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            worker.join(10)
            assert "error" not in result, str(result.get("error"))
            assert len(result["hits"][0]) == 8  # the call in flight finished
        client.close()
        assert process.wait(20) == 0
        drain.join(5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    log = "".join(lines)
    assert "s3cret-token-value" not in log and "stopping" in log
    assert (tmp_path / "milvus.db").is_dir()  # Milvus Lite's data stayed in the user's file


def test_binding_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # What beyond loopback takes (tests/gateway/test_exposure.py): a policy, and clear text said out loud.
        exposed = ["--host", "0.0.0.0", "--allow-endpoint", "http://vllm:8000", "--insecure"]
        args = parser().parse_args(["gateway", "--backend", "http://127.0.0.1:1", *exposed, "--port", str(port)])
        with caplog.at_level("WARNING"), pytest.raises(GatewayError, match="the port is in use"):
            command.run(args)
    assert "reachable from other machines" in caplog.text and "clear text" in caplog.text
