"""The checks Milvus Lite 3.2 makes on a search's function chain before any search, with its messages
(``milvus_lite/function/validator.py``, ``adapter/grpc/function_chain.py``), each followed by what to change.

Only chains we run are checked here (a ``rerank_model`` with a provider we serve); any other chain goes to the
backend untouched and is checked there. The provider's own params are checked afterwards by core/spec.py, exactly
as for a 2.6 Function."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

from pymilvus import DataType

from vllm_ranker.core.chain.model import ID, SCORE, Chain, ColumnArg, Expr, Op
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.errors import RerankParamError

L2_RERANK = "FunctionChainStageL2Rerank"
# Keys a chain's rerank_model may not carry: Milvus Lite's two refusals (a `credential` naming a configured entry is
# allowed, as Milvus reads it: ProviderConfig.fill(chain=True) refuses any other).
_URL_KEYS = frozenset({"base_url"})
_CREDENTIAL_KEYS = frozenset({"api_key", "token", "secret"})


class Kind(Enum):
    NUMERIC = "numeric"
    TEXT = "text"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


_FIELD_KINDS = {
    DataType.BOOL: Kind.BOOL,
    DataType.INT8: Kind.NUMERIC,
    DataType.INT16: Kind.NUMERIC,
    DataType.INT32: Kind.NUMERIC,
    DataType.INT64: Kind.NUMERIC,
    DataType.FLOAT: Kind.NUMERIC,
    DataType.DOUBLE: Kind.NUMERIC,
    DataType.VARCHAR: Kind.TEXT,
    DataType.TIMESTAMPTZ: Kind.TIMESTAMP,
}


@dataclass(frozen=True, slots=True)
class Validated:
    chain: Chain
    required_fields: tuple[str, ...]  # collection fields the chain reads, in first-read order


class _Invalid(Exception):
    """One check failed; the caller prefixes where (op index, expression)."""


def _fail(message: str) -> NoReturn:
    raise _Invalid(message)


def refused(message: str, fix: str) -> RerankParamError:
    return RerankParamError(f"{message}: {fix}")


_FIX = "fix the function chain (pymilvus.function_chain) and search again"


def check_search(chains: int, has_ranker: bool, order_by: bool, hybrid: bool = False) -> None:
    """The checks on the search around the chain (Milvus Lite's ``prepare_search_function_chain``)."""
    if hybrid:
        raise refused(
            "function_chains is not supported for hybrid search yet",
            "run the chain on a plain search, or give hybrid_search a 2.6 ranker=Function(...) instead",
        )
    if has_ranker:
        raise refused(
            "function_score and function_chains cannot be used together",
            "pass either ranker= or function_chains=, not both (a chain's rerank_model does the model rerank)",
        )
    if order_by:
        raise refused(
            "order_by and function rerank cannot be used together",
            "drop order_by (the chain's sort op orders the hits), or drop the chain",
        )
    if chains != 1:
        raise refused("ordinary search supports exactly one function chain", "pass one FunctionChain")


def _numeric(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _finite(value: object) -> bool:
    return _numeric(value) and (isinstance(value, int) or math.isfinite(value))  # type: ignore[arg-type]


def _sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _literal_kind(value: object) -> Kind:
    if isinstance(value, bool):
        return Kind.BOOL
    if _numeric(value):
        if not _finite(value):
            _fail("numeric literal must be finite")
        return Kind.NUMERIC
    if isinstance(value, str):
        return Kind.TEXT
    # Lite names the type of the literal after freezing it (function/repr.py): an object is a mappingproxy there
    # (an array a tuple, as here).
    name = "mappingproxy" if isinstance(value, Mapping) else type(value).__name__
    _fail(f"unsupported function chain literal type: {name}")


def _map_expr(op: Op) -> Expr:
    if op.expr is None:
        _fail("map operator requires an expression")
    if op.inputs:
        _fail("map operator must not declare op.inputs")
    if len(op.outputs) != 1:
        _fail("map operator requires exactly one output")
    return op.expr


def _sort(op: Op) -> None:
    if op.expr is not None or op.outputs:
        _fail("sort operator must not contain expression or outputs")
    column, desc, tie = op.params.get("column"), op.params.get("desc", True), op.params.get("tie_break_col")
    if not isinstance(column, str) or not column:
        _fail("sort column must be a non-empty string")
    if not isinstance(desc, bool):
        _fail("sort desc must be a boolean")
    if tie is not None and (not isinstance(tie, str) or not tie):
        _fail("sort tie_break_col must be a non-empty string")
    if op.inputs != ((column,) if tie is None else (column, tie)):
        _fail("sort inputs must match column and tie_break_col")


def _limit(op: Op) -> None:
    if op.expr is not None or op.inputs or op.outputs:
        _fail("limit operator must not contain expression, inputs, or outputs")
    limit, offset = op.params.get("limit"), op.params.get("offset", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        _fail("function chain limit must be a positive integer")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        _fail("function chain offset must be a non-negative integer")


def _num_combine(expr: Expr, kinds: list[Kind]) -> None:
    if len(kinds) < 2 or any(kind is not Kind.NUMERIC for kind in kinds):
        _fail("num_combine requires at least two numeric arguments")
    mode, weights = expr.params.get("mode", "sum"), expr.params.get("weights")
    if not isinstance(mode, str):
        _fail("num_combine mode must be a string")
    if mode not in ("multiply", "sum", "max", "min", "avg", "weighted"):
        _fail(f"unsupported num_combine mode: {mode}")
    if mode == "weighted":
        if not _sequence(weights) or len(weights) != len(kinds):  # type: ignore[arg-type]
            _fail(f"weighted num_combine requires {len(kinds)} weights")
        if not all(_numeric(w) for w in weights):  # type: ignore[union-attr]
            _fail("num_combine weights must be numeric")
        if not all(_finite(w) for w in weights):  # type: ignore[union-attr]
            _fail("num_combine weights must be finite")
    elif weights is not None:
        _fail("num_combine weights require mode='weighted'")


def _decay(expr: Expr, kinds: list[Kind]) -> None:
    if len(kinds) != 1 or kinds[0] not in (Kind.NUMERIC, Kind.TIMESTAMP):
        _fail("decay requires exactly one numeric or timestamp argument")
    function = expr.params.get("function")
    if not isinstance(function, str):
        _fail("decay function must be a string")
    if function not in ("gauss", "exp", "linear"):
        _fail(f"unsupported decay function: {function}")
    p = expr.params
    values = (p.get("origin"), p.get("scale"), p.get("offset", 0), p.get("decay", 0.5))
    if not all(_numeric(v) for v in values):
        _fail("decay parameters must be numeric")
    if not all(_finite(v) for v in values):
        _fail("decay parameters must be finite")
    _, scale, offset, decay = values
    if not scale > 0 or not offset >= 0 or not 0 < decay < 1:  # type: ignore[operator]
        _fail("decay requires scale > 0, offset >= 0, and 0 < decay < 1")


def _round_decimal(expr: Expr, kinds: list[Kind]) -> None:
    if kinds != [Kind.NUMERIC]:
        _fail("round_decimal requires exactly one numeric argument")
    decimal = expr.params.get("decimal")
    if isinstance(decimal, bool) or not isinstance(decimal, int) or not 0 <= decimal <= 6:
        _fail("round_decimal decimal must be an integer in [0, 6]")


def _rerank_model(expr: Expr, kinds: list[Kind], nq: int) -> None:
    if kinds != [Kind.TEXT]:
        _fail("rerank_model requires exactly one text argument")
    lowered = {key.lower() for key in expr.params}
    if lowered & _URL_KEYS:
        _fail("rerank_model endpoint must be configured on the server")
    if lowered & _CREDENTIAL_KEYS:
        _fail("rerank_model credentials must be configured on the server")
    queries = expr.params.get("queries")
    if not _sequence(queries) or not queries or not all(isinstance(q, str) and q for q in queries):
        _fail("rerank_model queries must be a non-empty sequence of strings")
    if len(queries) != nq:
        _fail(f"rerank_model query count {len(queries)} does not match search nq {nq}")
    provider = expr.params.get("provider")
    if not isinstance(provider, str) or not provider:
        _fail("rerank_model provider must be a non-empty string")


def _expr(expr: Expr, kinds: list[Kind], nq: int) -> None:
    checks = {"num_combine": _num_combine, "decay": _decay, "round_decimal": _round_decimal}
    if expr.name == "rerank_model":
        _rerank_model(expr, kinds, nq)
    elif expr.name in checks:
        checks[expr.name](expr, kinds)
    else:
        _fail(f"unsupported function chain expression: {expr.name}")


_HINTS = {
    "rerank_model endpoint must be configured on the server": "drop base_url: give a vllm/tei/sglang server's "
    "URL as endpoint=..., or a hosted provider's URL in the provider configuration (rerank_config= / "
    "gateway --config)",
    "rerank_model credentials must be configured on the server": "drop the key from the chain: put it in the "
    "provider configuration (rerank_config= / gateway --config) or the provider's environment variable",
}


def _error(context: str, exc: _Invalid) -> RerankParamError:
    message = f"{context}{exc}"
    hint = next((h for m, h in _HINTS.items() if str(exc) == m), _FIX)
    return refused(message, hint)


def validate(chain: Chain, info: CollectionInfo, nq: int) -> Validated:
    """Milvus Lite's checks in its order; raises ``RerankParamError`` with its message and what to change."""
    try:
        if chain.stage != L2_RERANK:
            _fail(f"function chain stage {chain.stage} is not supported in search request")
        if not chain.ops:
            _fail("function chain must contain at least one operator")
        pk = info.fields.get(info.pk_name)
        if info.pk_name in (ID, SCORE):
            _fail(
                f"function chain primary key field {info.pk_name!r} conflicts with reserved system column "
                f"{info.pk_name!r}"
            )
    except _Invalid as exc:
        raise _error("", exc) from None
    pk_kind = _FIELD_KINDS.get(pk.dtype) if pk is not None else None
    symbols: dict[str, Kind | None] = {SCORE: Kind.NUMERIC, ID: pk_kind, info.pk_name: pk_kind}
    required: list[str] = []

    def resolve(name: str) -> Kind | None:
        if name in symbols:
            return symbols[name]
        if name.startswith("$"):
            _fail(f"system input {name!r} is not supported by L2 rerank function chain")
        field = info.fields.get(name)
        if field is None:
            _fail(f"function chain input {name!r} is neither a previous output nor a collection field")
        kind = _FIELD_KINDS.get(field.dtype)
        if kind is None:
            # Lite's DataType values are the lower-case names (float_vector, json, ...)
            _fail(f"function chain input field {name!r} has unsupported type {field.dtype.name.lower()}")
        symbols[name] = kind
        required.append(name)
        return kind

    for index, op in enumerate(chain.ops):
        where = f"function chain op[{index}]"
        if op.op == "map":
            try:
                expr = _map_expr(op)
            except _Invalid as exc:
                raise _error(f"{where}: ", exc) from None
            try:
                kinds = [resolve(a.name) if isinstance(a, ColumnArg) else _literal_kind(a.value) for a in expr.args]
                _expr(expr, kinds, nq)  # type: ignore[arg-type]
            except _Invalid as exc:
                raise _error(f"{where} expression {expr.name}: ", exc) from None
            try:
                _output(op.outputs[0], info)
            except _Invalid as exc:
                raise _error(f"{where}: ", exc) from None
            symbols[op.outputs[0]] = Kind.NUMERIC  # every expression here yields numbers
        elif op.op in ("sort", "limit"):
            try:
                if op.op == "sort":
                    _sort(op)
                    for name in op.inputs:
                        resolve(name)
                else:
                    _limit(op)
            except _Invalid as exc:
                raise _error(f"{where}: ", exc) from None
        else:
            raise _error(f"{where}: ", _Invalid(f"unsupported function chain operator: {op.op}"))
    return Validated(chain, tuple(required))


def _output(name: str, info: CollectionInfo) -> None:
    if name == ID or (name.startswith("$") and name != SCORE):
        _fail(f"system output {name!r} is not writable by L2 rerank function chain")
    if name in info.fields:
        _fail(f"function chain output {name!r} conflicts with a collection field")


def model_params(expr: Expr) -> Mapping[str, Any]:
    """A validated rerank_model's params without its queries (what the provider configuration and core/spec.py
    read)."""
    return {k: v for k, v in expr.params.items() if k != "queries"}
