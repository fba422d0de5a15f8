"""The wheel as a user who never cloned gets it: what it holds, where the package is imported from, every command's
help, the README's Quickstart against the stand-in, the page, the gateway, and `serve` without vLLM pointing at the
installer that ships inside it (run for real up to a failing pip step: no vLLM is installed here)."""

from __future__ import annotations

import email.parser
import signal
import zipfile

import httpx
import pymilvus

from tests.readme.snippets import README, ROOT, run_quickstart, stand_in
from tests.readme.test_docs import leftovers, source_names
from tests.wheel.conftest import Installed
from vllm_ranker import __version__
from vllm_ranker.cli.main import SUBCOMMANDS

NEEDED = (  # what the package opens by path at run time, beside its modules
    "vllm_ranker/py.typed",
    "vllm_ranker/ui/templates/index.html",
    "vllm_ranker/ui/static/app.js",
    "vllm_ranker/ui/static/style.css",
    "vllm_ranker/local_vllm/install.py",
    "vllm_ranker/local_vllm/_vllm_launcher.py",
    "vllm_ranker/local_vllm/_port_forwarder.py",
    "vllm_ranker/local_vllm/templates/qwen3_reranker.jinja",
    "vllm_ranker/local_vllm/templates/bge_reranker_v2_gemma.jinja",
    "vllm_ranker/local_vllm/templates/mxbai_rerank_v2.jinja",
)
MISSING_VENV = "/nonexistent/vllm-venv"


def test_the_wheel_holds_every_file_of_the_package(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    src = installed.source / "src"
    package = {path.relative_to(src).as_posix() for path in (src / "vllm_ranker").rglob("*") if path.is_file()}
    assert set(NEEDED) <= package
    assert sorted(package - names) == []


def test_its_description_is_the_readme_with_no_template_token(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        metadata = wheel.read(f"vllm_ranker-{__version__}.dist-info/METADATA").decode()
    description = email.parser.Parser().parsestr(metadata).get_payload()
    assert isinstance(description, str) and description.strip() == README.read_text().strip()
    assert leftovers(description, source_names()) == []


def test_the_package_and_its_command_come_from_the_venv_not_the_checkout(installed: Installed) -> None:
    code = (
        "import sys, sysconfig, vllm_ranker; print(vllm_ranker.__file__, sysconfig.get_paths()['purelib'], *sys.path)"
    )
    done = installed.run(installed.python, "-c", code)
    module, purelib, *path = done.stdout.split()
    assert module.startswith(purelib + "/") and purelib.startswith(str(installed.venv) + "/"), done.stdout
    assert not [entry for entry in path if entry.startswith(str(ROOT))]
    shebang = (installed.venv / "bin" / "vllm-ranker").read_text().splitlines()[0]
    assert shebang.startswith(f"#!{installed.venv}/bin/python")


def test_version_and_every_commands_help(installed: Installed) -> None:
    version = installed.run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"vllm-ranker {__version__}")
    listing = installed.run("--help")
    assert listing.returncode == 0 and all(name in listing.stdout for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        done = installed.run(name, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: vllm-ranker {name}"), (name, done.stderr)


def test_the_quickstart_runs_against_the_stand_in(installed: Installed) -> None:
    with stand_in(installed.python, env=installed.env, cwd=installed.home) as ports:
        run_quickstart(installed.python, ports, installed.home, env=installed.env)


def test_the_page_and_its_static_files_are_served(installed: Installed) -> None:
    static = installed.source / "src" / "vllm_ranker" / "ui" / "static"
    with installed.serving("ui", "--uri", installed.home / "ui.db", "--port", "0", ready=r"ui: (http://\S+)") as url:
        page = httpx.get(url.group(1) + "/", timeout=30)
        assert page.status_code == 200 and 'id="query"' in page.text
        for name in ("app.js", "style.css"):
            asset = httpx.get(f"{url.group(1)}/static/{name}", timeout=30)
            assert asset.status_code == 200 and asset.text == (static / name).read_text()


def test_the_gateway_answers_plain_pymilvus(installed: Installed) -> None:
    argv = ("gateway", "--backend", installed.home / "gateway.db", "--port", "0")
    with installed.serving(*argv, ready=r"listening on 127\.0\.0\.1:(\d+)", stop=signal.SIGTERM) as port:
        client = pymilvus.MilvusClient(uri=f"http://127.0.0.1:{port.group(1)}")
        try:
            client.create_collection("from_the_wheel", dimension=4)
            assert client.list_collections() == ["from_the_wheel"]
        finally:
            client.close()


def test_serve_without_vllm_gives_install_steps_that_work_from_the_wheel(installed: Installed) -> None:
    serve = installed.run("serve", "--port", "0", VLLM_RANKER_VLLM_VENV=MISSING_VENV)
    assert serve.returncode == 1 and "\nerror: No vLLM virtual environment at" in serve.stderr  # after serve's note
    advice = " ".join(serve.stderr.partition("\nerror: ")[2].split())
    assert f"vllm-ranker install-vllm {MISSING_VENV}" in advice
    assert "scripts/install-vllm.sh" not in advice and "checkout" not in advice
    # The packaged installer runs from the wheel, and its commands are the advice's "by hand" ones.
    dry = installed.run("install-vllm", "--dry-run", MISSING_VENV)
    assert dry.returncode == 0, dry.stderr
    create, *commands = [line.strip() for line in dry.stdout.splitlines() if line.startswith("    ")]
    assert create.startswith(f"{installed.venv}/bin/python") and create.endswith(f" -m venv {MISSING_VENV}")
    assert f"python3 -m venv {MISSING_VENV}" in advice
    assert commands and all(command in advice for command in commands), (commands, advice)
    assert installed.run("install-vllm", "--help").stdout.startswith("usage: vllm-ranker install-vllm")


def test_the_packaged_installer_makes_the_venv_and_stops_at_a_failing_step(installed: Installed) -> None:
    target = installed.home / "vllm-venv"
    # A requirement pip cannot install: the steps run for real, up to the vLLM step, with nothing downloaded.
    spec = {"VLLM_RANKER_VLLM_SPEC": "./no-such-vllm"}
    first = installed.run("install-vllm", target, timeout=300, **spec)
    assert first.returncode == 1 and "creating the venv" in first.stdout and (target / "bin" / "python").exists()
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{target}/bin/pip install ./no-such-vllm failed with exit code" in errors[0]
    assert "run vllm-ranker install-vllm again" in " ".join(first.stderr.split())
    again = installed.run("install-vllm", target, timeout=300, **spec)
    assert again.returncode == 1 and "creating the venv" not in again.stdout  # it picks up where it stopped
