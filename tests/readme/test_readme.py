"""The README's code runs as written: the Quickstart against `python -m vllm_ranker.testing` on free ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readme.snippets import python_blocks, run_quickstart, stand_in


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    with stand_in(sys.executable) as ports:
        yield ports


def test_the_quickstart_runs_as_written_and_prints_reranked_hits(ports: tuple[int, int], tmp_path: Path) -> None:
    run_quickstart(sys.executable, ports, tmp_path)


def test_the_stand_in_refuses_a_busy_port_in_one_line(ports: tuple[int, int]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vllm_ranker.testing", "--port", str(ports[0]), "--rerank-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot listen") and "Traceback" not in done.stderr


def test_the_function_chain_block_runs_after_the_quickstart(ports: tuple[int, int], tmp_path: Path) -> None:
    run_quickstart(sys.executable, ports, tmp_path)
    chain_block = next(b for b in python_blocks("Quickstart") if "function_chains=chain" in b)
    code = chain_block.replace("127.0.0.1:8001", f"127.0.0.1:{ports[1]}").replace(
        "./quickstart.db", str(tmp_path / "quickstart.db")
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("chain ")]
    assert len(lines) == 3  # the chain's limit, out of the first stage's 6
    # The stand-in scores by word overlap: the two documents holding every word of the query come first.
    both = ("AI research progress is accelerating", "Deep learning progress drives AI research")
    assert all(any(doc in line for doc in both) for line in lines[:2])
