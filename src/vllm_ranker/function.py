"""``vllm_ranker.Function``: pymilvus's ``Function`` whose repr/str never show an API key.

pymilvus prints a Function as its whole dict, params included, so ``print(ranker)`` or a log line with the
ranker in it would show ``params['credential']`` / ``params['api_key']`` and any ``user:password@`` in an
endpoint. This subclass masks them in its text forms only; ``to_dict()`` (what goes to a Milvus server) and
everything else is pymilvus's own.
"""

from __future__ import annotations

from typing import Any

import pymilvus

from vllm_ranker.values.redaction import redact

SECRET_PARAMS = ("credential", "api_key")


def masked_params(params: Any) -> Any:
    if not isinstance(params, dict):
        return params
    shown: dict[Any, Any] = {}
    for key, value in params.items():
        if isinstance(key, str) and key.lower() in SECRET_PARAMS:
            shown[key] = "***"
        elif isinstance(value, str):
            shown[key] = redact(value)  # user:password@ in an endpoint
        elif isinstance(value, (list, tuple)):
            shown[key] = [redact(v) if isinstance(v, str) else v for v in value]
        else:
            shown[key] = value
    return shown


class Function(pymilvus.Function):  # type: ignore[misc]
    __doc__ = pymilvus.Function.__doc__

    def __repr__(self) -> str:
        described = self.to_dict()
        described["params"] = masked_params(described.get("params"))
        return str(described)

    __str__ = __repr__
