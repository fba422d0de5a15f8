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
