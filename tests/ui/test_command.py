"""``vllm-ranker ui``'s command line: its flags and defaults, the bind warning, clear errors, and a real start."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import vllm_ranker
from vllm_ranker.ui import command


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vllm-ranker")
    command.add_parser(top.add_subparsers(dest="command"))
    return top


def test_defaults_and_help_show_every_default() -> None:
    args = parser().parse_args(["ui"])
    assert (args.uri, args.endpoint, args.rerank_endpoint, args.host, args.port) == (
        "./milvus.db",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8001",
        "127.0.0.1",
        8765,
    )
    top = argparse.ArgumentParser(prog="vllm-ranker")
    subparsers = top.add_subparsers()
    command.add_parser(subparsers)
    text = subparsers.choices["ui"].format_help()
    for default in (
        "(default: ./milvus.db)",
        "(default: http://127.0.0.1:8000)",
        "(default: http://127.0.0.1:8001)",
        "(default: 127.0.0.1)",
        "(default: 8765)",
    ):
        assert default in " ".join(text.split())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LocalHost"])  # any case
def test_loopback_is_not_warned_about(host: str) -> None:
    assert command.bind_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "myhost.example"])
def test_other_addresses_are_warned_about(host: str) -> None:
    warning = command.bind_warning(host)
    assert warning is not None and host in warning and "no authentication" in warning


def test_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = parser().parse_args(["ui", "--port", str(port), "--uri", "unused.db"])
        with pytest.raises(command.UiUnavailable, match=rf"^cannot listen on 127.0.0.1:{port}: "):
            command.run(args)


def test_bad_port_is_a_one_line_error() -> None:
    with pytest.raises(command.UiUnavailable, match="--port must be between 0"):
        command.run(parser().parse_args(["ui", "--port", "70000"]))


def test_run_serves_the_page_until_interrupted_and_creates_no_file(tmp_path: Path) -> None:
    src = str(Path(vllm_ranker.__file__).resolve().parents[1])
    script = (
        "import argparse, sys\n"
        "from vllm_ranker.ui import command\n"
        "top = argparse.ArgumentParser(); command.add_parser(top.add_subparsers())\n"
        "sys.exit(command.run(top.parse_args(sys.argv[1:])))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    # The default --uri (./milvus.db), in a folder without one: as `vllm-ranker ui` is first run.
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "ui", "--port", "0", "--endpoint", "http://u:pw@127.0.0.1:9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("vllm-ranker ui: http://127.0.0.1:"), line
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(url + "/", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert page.status_code == 200 and "pw@" not in page.text and 'id="query"' in page.text
        # What the page's script asks first, and a search: answered in words, and ./milvus.db is not created.
        listed = httpx.get(url + "/api/collections", timeout=30).json()
        assert listed == {"uri": "./milvus.db", "exists": False, "collections": [], "neighbours": []}
        body = {"collection": "docs", "text_field": "text", "query": "q", "stage": "bm25"}
        search = httpx.post(url + "/api/compare", json=body, timeout=30)
        assert search.status_code == 404 and search.json()["kind"] == "no_database"
        assert search.json()["error"].startswith("there is no Milvus Lite file at ./milvus.db, and the page creates")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
