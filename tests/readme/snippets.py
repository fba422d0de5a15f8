"""The README's snippets as the tests run them: its sections, their Python blocks and shell lines, the stand-in
service of the Quickstart (`python -m vllm_ranker.testing`) and the Quickstart itself, with any interpreter (the
checkout's, or a venv that installed the wheel: tests/wheel)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from vllm_ranker.local_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## ``."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def python_blocks(title: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section(title), re.S)


def shell_lines(title: str) -> list[str]:
    """The commands of a section's indented blocks (Markdown's 4-space code blocks), comments cut off."""
    found = re.findall(r"^    (\S.*)$", section(title), re.M)
    return [line.split("  #")[0].strip() for line in found]


@contextlib.contextmanager
def stand_in(
    python: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[tuple[int, int]]:
    """The Quickstart's shell line, on free ports: `python -m vllm_ranker.testing`; yields (embeddings, rerank)."""
    ports = free_port(), free_port()
    process = subprocess.Popen(
        [str(python), "-m", "vllm_ranker.testing", "--port", str(ports[0]), "--rerank-port", str(ports[1])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
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


def run_quickstart(
    python: str | Path, ports: tuple[int, int], workdir: Path, env: Mapping[str, str] | None = None
) -> None:
    """The Quickstart's Python block as written (its ports and file moved), and the reranked hits it prints."""
    block = python_blocks("Quickstart")[0]  # the first; the function-chain block continues it
    assert "127.0.0.1:8000" in block and "127.0.0.1:8001" in block and "./quickstart.db" in block
    code = (
        block.replace("127.0.0.1:8000", f"127.0.0.1:{ports[0]}")
        .replace("127.0.0.1:8001", f"127.0.0.1:{ports[1]}")
        .replace("./quickstart.db", str(workdir / "quickstart.db"))
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300, cwd=workdir, env=env)
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
