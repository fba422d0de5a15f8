"""One benchmark against two revisions of the package, run after run, so a slow or busy machine hits both alike.

A target missed on a slow machine says nothing about a change; the same benchmark on the revision before the
change, in the same minutes, does. Each run imports ``src/`` from a temporary ``git worktree`` of the revision
(the benchmark script itself is this checkout's), then from this checkout; the lines that start with ``[`` (each
benchmark's verdicts) are printed under the revision that produced them.

    python benchmarks/versus.py REV overhead.py [--runs 3] [ARGS FOR THE BENCHMARK ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def verdicts(src: Path, script: Path, args: list[str]) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # 1: a target missed, the verdicts still count
        raise SystemExit(f"error: {script.name} failed on {src}:\n{done.stderr[-2000:]}")
    return [line for line in done.stdout.splitlines() if line.startswith("[")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", help="the revision to compare with (a commit, tag or branch)")
    parser.add_argument("benchmark", help="a script in benchmarks/, e.g. overhead.py")
    parser.add_argument("--runs", type=int, default=3)
    ns, extra = parser.parse_known_args()  # what is not ours is the benchmark's
    script = ROOT / "benchmarks" / ns.benchmark
    if not script.is_file():
        parser.error(f"no benchmark {script}")
    with tempfile.TemporaryDirectory(prefix="vllm-ranker-versus-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), ns.rev], cwd=ROOT, check=True)
        try:
            contenders = {ns.rev: tree / "src", "this checkout": ROOT / "src"}
            for run in range(1, ns.runs + 1):
                for name, src in contenders.items():
                    print(f"run {run}, {name}:", flush=True)
                    for line in verdicts(src, script, extra):
                        print(f"  {line}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
