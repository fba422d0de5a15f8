"""Several fields (the ``document_template`` param): the text sent to the model rendered from several VARCHAR
fields of each first-stage hit, e.g. ``"{title}\\n{document}"``. Pure."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType

from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.errors import RerankParamError

_HINT = 'name VARCHAR fields in braces, e.g. "{title}\\n{document}" (double a brace to write one: {{ }})'


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    fields: tuple[str, ...]  # in order of first use

    def render(self, entity: Mapping[str, Any]) -> str:
        """The template filled from ``entity``; a field missing or None (a null VARCHAR) renders as ""."""
        return self.text.format_map(_Blank(entity))


class _Blank(dict[str, Any]):
    def __init__(self, entity: Mapping[str, Any]) -> None:
        super().__init__((k, "" if v is None else v) for k, v in entity.items())

    def __missing__(self, key: str) -> str:
        return ""


def parse_template(raw: Any, collection: CollectionInfo) -> Template:
    text = str(raw)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise RerankParamError(f"document_template: {text!r} is not a valid template ({exc}): {_HINT}") from None
    names: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise RerankParamError(
                f"document_template: {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                f"is not a field name: {_HINT}"
            )
        if name not in collection.fields:
            raise RerankParamError(
                f"document_template: field {name} not found: collection '{collection.name}' has fields "
                + ", ".join(collection.fields)
            )
        if collection.fields[name].dtype != DataType.VARCHAR:
            raise RerankParamError(
                f"document_template: field {name} is {collection.fields[name].dtype.name}, not VARCHAR: name only "
                "VARCHAR fields in the template"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise RerankParamError(f"document_template: {text!r} names no field: {_HINT}")
    return Template(text, tuple(names))
