"""Reading a rerank service's JSON answer.

orjson reads standard JSON only. Python services (and json.dumps' defaults) write the non-standard literals
``NaN``, ``Infinity`` and ``-Infinity`` for non-finite scores; such an answer is read with the stdlib instead,
so that the score rules apply to it (README "Semantics": a NaN score is an error naming the provider and the
result; +/-Infinity are ordinary, ordered scores) rather than a misleading "not JSON" error.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_NON_FINITE = re.compile(rb"-?Infinity|NaN")


def loads_answer(body: bytes) -> Any:
    """The decoded answer; raises ``orjson.JSONDecodeError`` when it is not JSON (even with NaN/Infinity)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if not _NON_FINITE.search(body):
            raise
        failure = error
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise failure from None
