"""The house rules, checked: the supported surface, the rooms' import matrix (docs/modules.md's table, read here, so
the picture and the check cannot drift), module sizes, and that both clients forget a cached schema after the same
schema-changing pymilvus methods."""

from __future__ import annotations

import ast
import importlib
import itertools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pymilvus
import pytest

import vllm_ranker
from vllm_ranker import AsyncMilvusClient, MilvusClient
from vllm_ranker._client_base import SCHEMA_CHANGING

PACKAGE = Path(vllm_ranker.__file__).parent
MODULES_DOC = Path(__file__).resolve().parents[2] / "docs" / "modules.md"
PUBLIC = {
    "AnnSearchRequest", "AsyncMilvusClient", "DataType", "EndpointPolicy", "Function", "FunctionType", "MilvusClient",
    "RerankError", "RerankParamError", "RerankServiceError", "RerankStats", "RerankTimeout", "__version__",
}  # fmt: skip


@dataclass(frozen=True)
class Room:
    name: str
    files: tuple[str, ...]  # "core/" (a package) or "milvus.py" (a module of the package root)
    faces_only: bool  # its imports of other rooms go through their faces
    may_import: frozenset[str]


def read_rooms() -> dict[str, Room]:
    """docs/modules.md's table "| room | files | faces only | may import |": the picture is the rule."""
    lines = MODULES_DOC.read_text().splitlines()
    first = lines.index("| room | files | faces only | may import |")
    rooms: dict[str, Room] = {}
    for line in itertools.takewhile(lambda text: text.startswith("|"), lines[first + 2 :]):
        name, files, faces_only, may_import = (cell.strip() for cell in line.strip("|").split("|"))
        rooms[name] = Room(
            name,
            tuple(re.findall(r"`([^`]+)`", files)),
            {"yes": True, "no": False}[faces_only],
            frozenset(filter(None, (room.strip() for room in may_import.split(",")))),
        )
    return rooms


ROOMS = read_rooms()


def room_of(module: str) -> str:
    """The room of a dotted module name under vllm_ranker."""
    parts = module.split(".")
    assert parts[0] == "vllm_ranker", module
    wanted = [f"{parts[1]}/", f"{parts[1]}.py"] if len(parts) > 1 else ["__init__.py"]
    found = [room.name for room in ROOMS.values() if set(wanted) & set(room.files)]
    assert len(found) == 1, f"{module} is in {found or 'no room'}: add it to docs/modules.md's table"
    return found[0]


@dataclass(frozen=True)
class Import:
    where: str  # the importing file, relative to the package
    module: str  # absolute, relative imports resolved
    names: tuple[str, ...]  # () for ``import module``


def imports_of(path: Path) -> list[Import]:
    """Every import of a source file, lazy ones and TYPE_CHECKING ones too, with relative imports resolved."""
    rel = path.relative_to(PACKAGE)
    package = ["vllm_ranker", *rel.parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if not node.module:  # ``from . import x``: x is a module of that package
                found += [Import(str(rel), f"{module}.{a.name}", ()) for a in node.names]
            else:
                found.append(Import(str(rel), module, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            found += [Import(str(rel), a.name, ()) for a in node.names]
    return [i for i in found if i.module == "vllm_ranker" or i.module.startswith("vllm_ranker.")]


def package_imports() -> list[tuple[str, Import]]:
    return [(room_of(module_name(p)), i) for p in sorted(PACKAGE.rglob("*.py")) for i in imports_of(p)]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(["vllm_ranker", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def face_of(module: str) -> set[str] | None:
    """The names an outer room may import from ``module``, or None when it is not a face: a room package's
    ``__init__`` or, at the package root, ``vllm_ranker`` and its public modules (their ``__all__``)."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return set(importlib.import_module(module).__all__)
    if len(parts) == 2 and not parts[1].startswith("_"):
        return set(getattr(importlib.import_module(module), "__all__", ()))
    return None


def test_the_supported_surface_is_exactly_the_public_names() -> None:
    assert set(vllm_ranker.__all__) == PUBLIC
    for name in PUBLIC - {"__version__"}:
        assert getattr(vllm_ranker, name) is not None


def test_importing_the_package_does_not_import_pymilvus() -> None:
    # The command line's --help must not pay for pymilvus (and pandas) before a subcommand runs.
    code = "import sys, vllm_ranker, vllm_ranker.cli.main; print('pymilvus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_source_file_is_in_exactly_one_room() -> None:
    for path in PACKAGE.rglob("*.py"):
        room_of(module_name(path))


def test_no_import_runs_against_the_table() -> None:
    # The whole matrix: each room imports only itself and the rooms its row names (so nothing runs back up, outer
    # rooms do not import each other sideways, and nothing in the package imports the test kit).
    offenders = [
        f"{i.where}: {i.module} ({room} may not import {room_of(i.module)})"
        for room, i in package_imports()
        if room_of(i.module) != room and room_of(i.module) not in ROOMS[room].may_import
    ]
    assert not offenders


def test_outer_rooms_import_other_rooms_only_through_their_faces() -> None:
    offenders = []
    for room, i in package_imports():
        if not ROOMS[room].faces_only or room_of(i.module) == room:
            continue
        face = face_of(i.module)
        if face is None:
            offenders.append(f"{i.where}: {i.module} is not a face")
        elif not i.names or not set(i.names) <= face:
            offenders.append(f"{i.where}: {i.module} does not export {sorted(set(i.names) - face) or 'itself'}")
    assert not offenders


def test_every_face_name_resolves() -> None:
    # The faces of core/ and tools/ load their names lazily; a name listed there must exist.
    for room in ROOMS.values():
        for folder in (f for f in room.files if f.endswith("/")):
            module = importlib.import_module(f"vllm_ranker.{folder.rstrip('/')}")
            for name in getattr(module, "__all__", ()):
                assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_the_table_is_ordered_down() -> None:
    # A room may import only rooms listed above it: the picture reads top to bottom, with no cycle possible.
    order = list(ROOMS)
    for room in ROOMS.values():
        for lower in room.may_import:
            assert lower in ROOMS and order.index(lower) < order.index(room.name), (room.name, lower)


def test_no_source_module_is_over_400_lines() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not big


def test_subcommands_do_not_import_each_other() -> None:
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - {"__init__", "main", "_options"}
    for name in commands:
        for i in imports_of(PACKAGE / "cli" / f"{name}.py"):
            assert i.module.rpartition(".")[2] not in commands or not i.module.startswith("vllm_ranker.cli"), i


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
