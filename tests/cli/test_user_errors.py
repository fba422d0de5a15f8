"""Every failure a user can cause, for every subcommand: ports in use, bad paths and URIs, unreachable services,
missing extras, settings that cannot work. Each is exit 1 (2 for a flag), one ``error:`` line and no request to
report a bug: "report it" is for our bugs only. Run in process through ``vllm_ranker.cli.main.main`` (a subprocess
only where an extra must be missing); tests/cli/test_errors.py has the installed entry point's cases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eval.tiny_collection import write_beir
from vllm_ranker.cli.main import main
from vllm_ranker.local_vllm import VLLMUnavailable, probe_vllm


class HeldPort:
    """A loopback port something else listens on: it accepts and hangs up at once, so a health probe there fails
    fast, and nothing else can bind it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def held() -> Iterator[HeldPort]:
    port = HeldPort()
    yield port
    port.close()


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of its own (the default files, e.g. ui's ./milvus.db, land there), and no vLLM venv."""
    write_beir(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VLLM_RANKER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_RANKER_VLLM_VENV", str(tmp_path / "no-venv"))
    return tmp_path


NO_VENV = ["--vllm-venv", "{tmp}/no-venv"]
UNREACHABLE = "http://127.0.0.1:1"
ALLOWED = ["--allow-endpoint", "http://vllm:8000"]
TOKEN = ["--token", "root:Milvus"]
# name -> (arguments, exit code, a fragment of the error line); {held} is a port in use, {tmp} the working folder.
CASES: dict[str, tuple[list[str], int, str]] = {
    "serve: port in use": (["serve", "--port", "{held}", "--rerank-model", "same", *NO_VENV], 1, "already in use"),
    "serve: no vLLM installed": (["serve", "--port", "0", "--rerank-model", "same", *NO_VENV], 1, "No vLLM"),
    "serve: one port twice": (["serve", "--port", "8500", "--rerank-port", "8500"], 2, "--rerank-port 8500 is --port"),
    "demo: port in use": (["demo", "--port", "{held}", *NO_VENV], 1, "already in use"),
    "demo: unreachable embedder": (["demo", "--endpoint", UNREACHABLE], 1, f"models of {UNREACHABLE}/v1/models"),
    "demo: bad URI": (["demo", "--uri", "ftp://x"], 2, "'ftp://x' is neither"),
    "ingest: missing corpus": (["ingest", "{tmp}/nope.jsonl"], 1, "no such file"),
    "ingest: Milvus Lite in a missing folder": (["ingest", "tiny", "--uri", "{tmp}/no/x.db"], 1, "folder exist"),
    "ingest: bad analyzer": (["ingest", "tiny", "--analyzer", "{bad"], 2, "--analyzer '{bad' is not valid JSON"),
    "ingest: no vLLM installed": (["ingest", "tiny", "--port", "1", *NO_VENV], 1, "No vLLM"),
    "eval: unreachable Milvus": (["eval", "tiny", "--uri", UNREACHABLE], 1, "is the server running there?"),
    "eval: missing split": (["eval", "tiny", "--split", "dev"], 1, "dev.tsv"),
    "bench: missing dataset": (["bench", "{tmp}/nope"], 1, "no such file"),
    "bench: unreachable Milvus": (["bench", "tiny", "--uri", UNREACHABLE, "--warmup", "0"], 1, "cannot open Milvus"),
    "gateway: port in use": (["gateway", "--port", "{held}", "--backend", UNREACHABLE], 1, "the port is in use"),
    "gateway: port out of range": (["gateway", "--port", "70000"], 1, "give a port from 0 to 65535"),
    "gateway: bad backend URI": (["gateway", "--port", "0", "--backend", "ftp://x"], 1, "is not a Milvus URI"),
    "gateway: backend in a missing folder": (["gateway", "--port", "0", "--backend", "{tmp}/no/x.db"], 1, "create it"),
    "gateway: missing TLS files": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--tls-cert", "{tmp}/c.pem", "--tls-key", "{tmp}/k.pem"],
        1,
        "cannot read the TLS files",
    ),
    # Beyond loopback (issue 26): a policy, TLS or --insecure, and no --token lent unasked.
    "gateway: beyond loopback without an endpoint policy": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--host", "0.0.0.0", "--insecure"],
        1,
        "say where they may go with --allow-endpoint URL",
    ),
    "gateway: beyond loopback in clear text": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--host", "0.0.0.0", *ALLOWED],
        1,
        "give --tls-cert and --tls-key, or --insecure",
    ),
    "gateway: --token beyond loopback": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--host", "0.0.0.0", *ALLOWED, "--insecure", *TOKEN],
        1,
        "give --tls-cert/--tls-key and --token-for-anonymous-callers",
    ),
    "gateway: bad --allow-endpoint": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--allow-endpoint", "ftp://vllm"],
        1,
        "--allow-endpoint 'ftp://vllm': give an http or https URL prefix",
    ),
    "gateway: any endpoint and an allowlist": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--allow-any-endpoint", *ALLOWED],
        1,
        "--allow-any-endpoint contradicts the endpoint allowlist",
    ),
    "gateway: denied addresses alone": (
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--deny-address", "10.0.0.0/8"],
        1,
        "--deny-address narrows an allowlist",
    ),
    "ui: port in use": (["ui", "--port", "{held}"], 1, "cannot listen on 127.0.0.1:{held}"),
    "ui: port out of range": (["ui", "--port", "70000"], 1, "--port must be between 0"),
}
COMMANDS = ("serve", "demo", "ingest", "eval", "bench", "gateway", "ui")


def expect_one_error_line(code: int, err: str, want_code: int, fragment: str) -> None:
    assert code == want_code, err
    assert "Traceback" not in err and "report it" not in err, err
    # Ours start with "error:"; argparse's with "vllm-ranker COMMAND: error:" after the usage lines.
    lines = [line for line in err.splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(lines) == 1 and fragment in lines[0], err


def test_the_table_has_cases_for_every_subcommand() -> None:
    assert {name.partition(":")[0] for name in CASES} == set(COMMANDS)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.usefixtures("restored_logging")
def test_a_users_failure_is_one_error_line_and_not_a_bug(
    case: str, place: Path, held: HeldPort, capsys: pytest.CaptureFixture[str]
) -> None:
    args, want_code, fragment = CASES[case]

    def filled(text: str) -> str:
        return text.replace("{held}", str(held.port)).replace("{tmp}", str(place))

    try:
        code = main([filled(arg) for arg in args])
    except SystemExit as usage:  # argparse's own usage errors
        code = int(usage.code or 0)
    expect_one_error_line(code, capsys.readouterr().err, want_code, filled(fragment))
    if case.startswith("ui:"):
        assert not (place / "milvus.db").exists()  # a page that never started leaves no file behind


def test_the_install_advice_keeps_its_lines(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The advice's commands, one per line as the local vLLM manager writes them, so that they can be pasted.
    with pytest.raises(VLLMUnavailable) as advice:
        probe_vllm(place / "no-venv")
    written = str(advice.value).strip().splitlines()
    code = main(["serve", "--port", "0", "--rerank-model", "same", "--vllm-venv", str(place / "no-venv")])
    printed = capsys.readouterr().err.splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("error:"))
    assert code == 1
    assert printed[start:] == [f"error: {' '.join(written[0].split())}", *(line.rstrip() for line in written[1:])]


# A sitecustomize that makes one module unimportable, as on a machine without the extra that brings it.
BLOCKER = """import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise ModuleNotFoundError("No module named {module!r}", name={module!r})
sys.meta_path.insert(0, _Block())
"""
MISSING_EXTRAS = {
    "ui": ("uvicorn", ["ui", "--port", "0"], "pip install 'vllm-ranker[ui]'"),
    "gateway --metrics-port": (
        "prometheus_client",
        ["gateway", "--port", "0", "--backend", UNREACHABLE, "--metrics-port", "0"],
        "pip install 'vllm-ranker[metrics]'",
    ),
}


@pytest.mark.parametrize("case", list(MISSING_EXTRAS))
def test_a_missing_extra_is_one_error_line_naming_the_install_command(case: str, place: Path) -> None:
    module, args, fragment = MISSING_EXTRAS[case]
    (place / "blocker").mkdir()
    (place / "blocker" / "sitecustomize.py").write_text(BLOCKER.format(module=module))
    path = os.pathsep.join(filter(None, [str(place / "blocker"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "vllm_ranker.cli.main", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=path, COLUMNS="200"),
        timeout=120,
    )
    expect_one_error_line(done.returncode, done.stderr, 1, fragment)
