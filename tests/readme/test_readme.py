"""The README's code runs as written: the Quickstart against `python -m vllm_ranker.testing` on free ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readme.snippets import run_quickstart, stand_in


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
