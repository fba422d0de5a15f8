"""The house rules, checked: the supported surface, the rooms' import directions, module sizes, and that both
clients forget a cached schema after the same schema-changing pymilvus methods."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pymilvus
import pytest

import vllm_ranker
from vllm_ranker import AsyncMilvusClient, MilvusClient
from vllm_ranker._client_base import SCHEMA_CHANGING

PACKAGE = Path(vllm_ranker.__file__).parent
CORE_ROOMS = ("core", "transport", "providers")
OUTER_ROOMS = ("cli", "tools", "local_vllm", "testing", "gateway", "ui")
PUBLIC = {
    "AnnSearchRequest", "AsyncMilvusClient", "DataType", "EndpointPolicy", "Function", "FunctionType", "MilvusClient",
    "RerankError", "RerankParamError", "RerankServiceError", "RerankStats", "RerankTimeout", "__version__",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module if node.level == 0 else "." * node.level + node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_supported_surface_is_exactly_the_public_names() -> None:
    assert set(vllm_ranker.__all__) == PUBLIC
    for name in PUBLIC - {"__version__"}:
        assert getattr(vllm_ranker, name) is not None


def test_importing_the_package_does_not_import_pymilvus() -> None:
    # The command line's --help must not pay for pymilvus (and pandas) before a subcommand runs.
    code = "import sys, vllm_ranker, vllm_ranker.cli.main; print('pymilvus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("room", CORE_ROOMS)
def test_the_core_imports_no_outer_room(room: str) -> None:
    offenders = []
    for path in (PACKAGE / room).rglob("*.py"):
        for module in imported_modules(path):
            if any(module.startswith(f"vllm_ranker.{outer}") for outer in OUTER_ROOMS) or module.startswith(".."):
                offenders.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert not offenders


def test_outer_rooms_do_not_import_each_other_sideways() -> None:
    # cli may import the tools and the local vLLM manager (it runs them); the tools never import the cli.
    offenders = []
    for room in ("tools", "local_vllm", "testing"):
        for path in (PACKAGE / room).rglob("*.py"):
            for module in imported_modules(path):
                if module.startswith("vllm_ranker.cli"):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert not offenders


def test_no_source_module_is_over_400_lines() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not big


def test_subcommands_do_not_import_each_other() -> None:
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - {"__init__", "main", "_options"}
    for name in commands:
        for module in imported_modules(PACKAGE / "cli" / f"{name}.py"):
            assert module.rpartition(".")[2] not in commands or not module.startswith("vllm_ranker.cli"), (name, module)


@pytest.mark.parametrize("client", [MilvusClient, AsyncMilvusClient])
def test_both_clients_override_every_schema_changing_method(client: type) -> None:
    base = pymilvus.MilvusClient if client is MilvusClient else pymilvus.AsyncMilvusClient
    for name in SCHEMA_CHANGING:
        if hasattr(base, name):
            assert getattr(client, name) is not getattr(base, name), f"{client.__name__}.{name}"
    # The list covers what pymilvus has today.
    assert {"rename_collection", "add_collection_field", "drop_collection_field"} <= {
        n for n in SCHEMA_CHANGING if hasattr(base, n)
    }
