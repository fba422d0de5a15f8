"""The dispatcher: a broken subcommand is an error, not a missing one; --help imports no subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vllm_ranker.cli import main as cli


def test_a_broken_subcommand_module_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old dispatcher took any ModuleNotFoundError for "a subcommand not built yet" and dropped it silently.
    monkeypatch.setitem(cli.SUBCOMMANDS, "broken", ("vllm_ranker.cli._no_such_module", "a broken one"))
    with pytest.raises(ModuleNotFoundError, match="_no_such_module"):
        cli.main(["broken"])


def test_top_level_help_imports_no_subcommand_and_no_pymilvus() -> None:
    code = (
        "import sys\nfrom vllm_ranker.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('vllm_ranker.cli.', 'pymilvus', 'pandas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "serve" in out.stdout and "ingest" in out.stdout  # listed
    assert out.stdout.strip().splitlines()[-1] == "['vllm_ranker.cli.main']"


HEAVY = ("pymilvus", "httpx", "grpc", "numpy")


@pytest.mark.parametrize("command", list(cli.SUBCOMMANDS))
def test_a_subcommands_help_imports_no_heavy_library(command: str) -> None:
    # Structural, not timed: `COMMAND --help` builds one parser; pymilvus, httpx, grpc and numpy cost 0.4-0.7 s
    # to import and no parser needs them.
    code = f"""
import contextlib, io, sys
from vllm_ranker.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main([{command!r}, "--help"])
    except SystemExit:
        pass
assert "usage:" in out.getvalue()
print(sorted({{m.partition(".")[0] for m in sys.modules}} & {set(HEAVY)!r}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", (command, done.stdout)


RAISING = ("tests.cli.raising_command", "raises what it is told")


def failure(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setitem(cli.SUBCOMMANDS, "raise", RAISING)
    code = cli.main(["raise", *argv])
    return code, capsys.readouterr().err


def test_a_multi_line_message_keeps_its_lines_after_the_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Install advice: commands to paste, each on its own indented line (collapsed, they could not be pasted).
    advice = "No vLLM virtual environment at /v.\nInstall it with:\n    vllm-ranker install-vllm /v\n  (or by hand)\n"
    code, err = failure(monkeypatch, capsys, "user", advice)
    assert (code, err) == (1, f"error: {advice}")


def test_a_one_line_message_loses_its_stray_whitespace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = failure(monkeypatch, capsys, "user", "  cannot   open\tMilvus at x.db  ")
    assert (code, err) == (1, "error: cannot open Milvus at x.db\n")


def test_a_bug_says_report_it_on_its_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = failure(monkeypatch, capsys, "bug", "list index out of range\n  in the planner")
    assert code == 1
    assert err.splitlines() == [
        "error: list index out of range (RuntimeError; run again with --debug for the traceback, and report it)",
        "  in the planner",
    ]
