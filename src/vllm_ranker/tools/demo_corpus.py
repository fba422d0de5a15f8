"""The demo's corpus: docstrings of the Python standard library, read with ``ast`` (nothing is imported).

Real technical documentation that exists on every machine with Python, no download needed.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CHARS = 600  # keeps each document inside a MiniLM-sized model's 256 tokens (code tokenizes densely)
SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "ensurepip"}


@dataclass(frozen=True, slots=True)
class Doc:
    title: str
    text: str


MAX_PIECES = 150  # words and punctuation marks; WordPiece makes ~1.5 tokens of each, under MiniLM's 256
_PIECE = re.compile(r"\w+|[^\w\s]")


def _clean(docstring: str) -> str:
    # The start of the docstring: the summary is what a search result should show, and the model's context
    # is short (256 tokens for MiniLM): an over-long document would be refused by vLLM's /v1/embeddings.
    text = " ".join(docstring.split())[:MAX_CHARS]
    pieces = list(_PIECE.finditer(text))
    if len(pieces) > MAX_PIECES:
        text = text[: pieces[MAX_PIECES].start()]
    return text.rstrip()


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stdlib_docs(limit: int = 3000, min_chars: int = 80) -> list[Doc]:
    """Up to ``limit`` docstrings (modules, classes, functions) of at least ``min_chars``, spread evenly over
    the whole standard library, in a stable order (the same machine gives the same corpus every run)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[Doc] = []
    for path in sorted(root.rglob("*.py")):
        private = path.name.startswith("_") and path.name != "__init__.py"
        if private or SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        docs.extend(_docs_of(path, _module_name(path, root), min_chars))
    if len(docs) <= limit:
        return docs
    stride = len(docs) / limit
    return [docs[int(i * stride)] for i in range(limit)]


def _docs_of(path: Path, module: str, min_chars: int) -> Iterator[Doc]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return
    nodes: list[tuple[str, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]] = [(module, tree)]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            nodes.append((f"{module}.{node.name}", node))
            if isinstance(node, ast.ClassDef):
                nodes.extend(
                    (f"{module}.{node.name}.{child.name}", child)
                    for child in node.body
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_")
                )
    for title, documented in nodes:
        docstring = ast.get_docstring(documented, clean=True)
        if docstring and len(docstring) >= min_chars:
            yield Doc(title, _clean(docstring))
