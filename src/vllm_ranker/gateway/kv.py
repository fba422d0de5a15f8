"""A request's key-value params (``search_params``, ``rank_params``: Milvus's ``KeyValuePair`` lists) read and set,
as the SDKs encode them (every value a string, numbers as JSON)."""

from __future__ import annotations

import json
from typing import Any

from pymilvus.grpc_gen import common_pb2


def set_kv(pairs: Any, **values: Any) -> None:
    for key, value in values.items():
        for pair in pairs:
            if pair.key == key:
                pair.value = str(value)
                break
        else:
            pairs.append(common_pb2.KeyValuePair(key=key, value=str(value)))


def kv(pairs: Any) -> dict[str, str]:
    return {pair.key: pair.value for pair in pairs}


def int_param(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(json.loads(raw))
    except (ValueError, TypeError):
        return default
