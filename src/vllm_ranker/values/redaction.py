"""A string holder that never shows its value, and scrubbing of known secrets out of text."""

from __future__ import annotations

import re
from collections.abc import Iterable

_MASK = "***"


class Secret:
    """An API key. ``str()``/``repr()`` are masked; only ``reveal()`` gives the value (for the HTTP header)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:  # pragma: no cover - pickling keeps the value
        return (Secret, (self._value,))


_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@")  # any scheme: ftp://user:pw@ too


def redact(text: str, secrets: Iterable[Secret | None] = ()) -> str:
    """Remove every known secret and any ``user:password@`` part of a URL from ``text``."""
    out = _USERINFO.sub(r"\1***@", text)
    for secret in secrets:
        if secret is not None and secret.reveal():
            out = out.replace(secret.reveal(), _MASK)
    return out
