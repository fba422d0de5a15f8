"""The README's code runs as written: the Quickstart against `python -m vllm_ranker.testing` on free ports."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stand_in() -> Iterator[tuple[int, int]]:
    """The shell line of the Quickstart, on free ports: `python -m vllm_ranker.testing`."""
    ports = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vllm_ranker.testing", "--port", str(ports[0]), "--rerank-port", str(ports[1])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if all(httpx.get(f"http://127.0.0.1:{p}/health").status_code == 200 for p in ports):
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.1)
        yield ports
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_the_quickstart_runs_as_written_and_prints_reranked_hits(stand_in: tuple[int, int], tmp_path: Path) -> None:
    (block,) = python_blocks("Quickstart")
    assert "127.0.0.1:8000" in block and "127.0.0.1:8001" in block and "./quickstart.db" in block
    code = (
        block.replace("127.0.0.1:8000", f"127.0.0.1:{stand_in[0]}")
        .replace("127.0.0.1:8001", f"127.0.0.1:{stand_in[1]}")
        .replace("./quickstart.db", str(tmp_path / "quickstart.db"))
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for call in ("search", "hybrid_search"):
        for query in ("AI Research Progress", "What is AI"):
            assert f"{call} {query!r}:" in out
    # The stand-in scores by word overlap with the query: the reranked top hit of "What is AI" is the one that
    # shares the most words with it, whatever the vectors said.
    what_is_ai = out.split("search 'What is AI':")[1].splitlines()[1]
    assert "What is AI? Artificial intelligence explained" in what_is_ai
    assert "RerankStats(" in out and "batches=" in out


def test_the_stand_in_refuses_a_busy_port_in_one_line(stand_in: tuple[int, int]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vllm_ranker.testing", "--port", str(stand_in[0]), "--rerank-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot listen") and "Traceback" not in done.stderr
