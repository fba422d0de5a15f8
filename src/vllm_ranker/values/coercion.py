"""Coercion of Function param values: pymilvus sends every value as a string, users pass native values.

Both forms are accepted alike (``"32"`` and ``32``, ``"true"`` and ``True``). Each function raises
``ValueError`` with a short reason; spec.py turns it into the Milvus message for the key.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError("a whole number is needed")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        return as_int(number)
    raise ValueError(f"a {type(value).__name__} is not a number")


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("not a number") from None
    else:
        raise ValueError(f"a {type(value).__name__} is not a number")
    if not math.isfinite(number):
        raise ValueError("a finite number is needed")
    return number


def because(message: str, reason: object) -> str:
    """`` (reason)`` to follow ``message``, or nothing when the reason is empty or only repeats what the message
    says: "x is not a number (not a number)" reads as a stutter, not as English."""
    text = str(reason).strip()
    words = set(re.findall(r"[a-z]+", text.lower()))
    if not words or words <= set(re.findall(r"[a-z]+", message.lower())):
        return ""
    return f" ({text})"


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("use true or false")


def as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"a {type(value).__name__} is not a string")


def as_str_list(value: Any) -> list[str]:
    """A list of strings, or its JSON text (what pymilvus puts on the wire)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list of strings ({exc.msg})") from None
    if isinstance(value, (list, tuple)):
        items = list(value)
        for position, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(f"item {position} is a {type(item).__name__}, not a string")
        return items
    raise ValueError(f"a {type(value).__name__} is not a list of strings")


def as_str_or_list(value: Any) -> list[str]:
    """One string or a list of strings (JSON text accepted): used for endpoint lists."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return as_str_list(text)
        return [text]
    return as_str_list(value)
