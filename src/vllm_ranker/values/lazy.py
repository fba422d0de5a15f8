"""A package face that loads on first use (PEP 562): ``__getattr__`` for an ``__init__`` whose names live in
modules too heavy to import up front (pymilvus, grpc, the ui extra), so ``import vllm_ranker`` and every
``--help`` stay light. One implementation for every room's face."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(
    namespace: dict[str, Any], face: Mapping[str, tuple[str, str]], *, within: bool = False
) -> Callable[[str], Any]:
    """The ``__getattr__`` of the module whose globals are ``namespace``: ``face`` maps a name to (module, its
    name there); ``within``: the modules are under that package (``"chain.decode"``). A loaded name becomes a
    plain module attribute, so it is looked up once."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        found = face.get(name)
        if found is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = found
        value = getattr(importlib.import_module(f"{package}.{module}" if within else module), attribute)
        namespace[name] = value
        return value

    return __getattr__
