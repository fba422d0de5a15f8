"""The ops of a validated chain over the first stage's hits, with Milvus's semantics as Milvus Lite 3.2 runs them
(``milvus_lite/function/ops/*.py``, ``expr/*.py``, ``rerank/decay.py``; Milvus's ``internal/util/function/chain``):
one chunk of rows per searched query, a row a dict of columns (``$id``, ``$score``, the fields read). The model's
scores are not computed here: the flow asks the service and writes them with ``set_column``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vllm_ranker.core.chain.model import ColumnArg, Expr, Op
from vllm_ranker.errors import RerankParamError

Row = dict[str, Any]
Chunk = list[Row]


def first_stage_score(distance: float, bm25: bool) -> float:
    """``$score`` of a first-stage hit: the distance Milvus returns, larger or smaller is better as the metric
    says (an L2 distance stays as it is). BM25 is the exception: Milvus Lite returns BM25 hits with negated
    scores and turns them back for a chain; a Milvus server returns them positive. Either way the chain sees the
    positive BM25 score."""
    return abs(distance) if bm25 else distance


def column(chunk: Chunk, arg: ColumnArg | Any) -> list[Any]:
    if isinstance(arg, ColumnArg):
        return [row.get(arg.name) for row in chunk]
    return [arg.value] * len(chunk)  # a literal, repeated for each row


def set_column(chunk: Chunk, name: str, values: Sequence[Any]) -> None:
    for row, value in zip(chunk, values, strict=True):
        row[name] = value


def _decay_value(value: Any) -> float:
    if isinstance(value, str):  # a TIMESTAMPTZ as pymilvus returns it
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise RerankParamError("TIMESTAMPTZ decay input must be timezone-aware")
        return value.timestamp()
    return float(value)


def decay(values: Sequence[Any], params: Mapping[str, Any]) -> list[float]:
    """gauss/exp/linear: 1 within ``offset`` of ``origin``, ``decay`` at ``scale`` beyond it; a missing value 0."""
    function, origin, scale = params["function"], float(params["origin"]), float(params["scale"])
    offset, target = float(params.get("offset", 0)), float(params.get("decay", 0.5))
    ln_decay = math.log(target)

    def factor(value: float) -> float:
        d = max(0.0, abs(value - origin) - offset)
        if d == 0.0:
            return 1.0
        if function == "gauss":
            return math.exp(d * d / (scale * scale / ln_decay))
        if function == "exp":
            return math.exp(ln_decay * d / scale)
        return max(0.0, 1.0 - (1.0 - target) / scale * d)

    return [0.0 if v is None else factor(_decay_value(v)) for v in values]


def _real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def num_combine(columns: Sequence[Sequence[Any]], params: Mapping[str, Any]) -> list[float]:
    """Row by row: sum, multiply, max, min, avg or weighted sum; a row with a missing value gives 0."""
    mode, weights = params.get("mode", "sum"), params.get("weights")
    out: list[float] = []
    for values in zip(*columns, strict=True):
        if any(v is None for v in values):
            out.append(0.0)
            continue
        if not all(_real(v) for v in values):
            raise RerankParamError("num_combine row values must be finite numeric non-bool values")
        try:
            if mode == "multiply":
                result = 1.0
                for v in values:
                    result *= v
            elif mode == "sum":
                result = sum(values)
            elif mode == "max":
                result = max(values)
            elif mode == "min":
                result = min(values)
            elif mode == "avg":
                result = math.fsum(v / len(values) for v in values)
            else:
                result = sum(v * float(w) for v, w in zip(values, weights or (), strict=True))
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise RerankParamError("num_combine produced a non-finite result")
        out.append(result)
    return out


def round_decimal(values: Sequence[Any], decimal: int) -> list[Any]:
    return [None if v is None else round(v, decimal) for v in values]


def evaluate_expr(expr: Expr, chunk: Chunk) -> list[Any]:
    """A map's values for one chunk; every expression but ``rerank_model`` (the flow's, via the service)."""
    args = [column(chunk, a) for a in expr.args]
    if expr.name == "decay":
        return decay(args[0], expr.params)
    if expr.name == "num_combine":
        return num_combine(args, expr.params)
    if expr.name == "round_decimal":
        return round_decimal(args[0], int(expr.params["decimal"]))
    raise ValueError(f"not evaluated here: {expr.name}")  # pragma: no cover - validate() admits no other


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ordered(rows: Chunk, column_name: str, desc: bool) -> Chunk:
    """Stable order by one column; missing values (None/NaN) last whatever the direction. Python's sort is stable
    with ``reverse`` too, so equal values keep their order: what Milvus's comparator does, at a key sort's cost."""
    present = [r for r in rows if not _missing(r.get(column_name))]
    missing = [r for r in rows if _missing(r.get(column_name))]
    present.sort(key=lambda r: r[column_name], reverse=desc)
    return present + missing


def sort(chunk: Chunk, column_name: str, desc: bool, tie_break: str | None) -> Chunk:
    """By ``column_name``; ties (and missing values) by ``tie_break`` ascending, else in their first-stage order:
    ordering by the tie-break first, then stably by the column, gives exactly that."""
    rows = chunk if tie_break is None else _ordered(chunk, tie_break, False)
    return _ordered(rows, column_name, desc)


def apply(op: Op, chunks: list[Chunk]) -> list[Chunk]:
    """One op that needs no service, over every chunk."""
    if op.op == "map":
        assert op.expr is not None
        for chunk in chunks:
            set_column(chunk, op.outputs[0], evaluate_expr(op.expr, chunk))
        return chunks
    if op.op == "sort":
        return [
            sort(c, op.params["column"], op.params.get("desc", True), op.params.get("tie_break_col")) for c in chunks
        ]
    if op.op == "limit":
        start, size = op.params.get("offset", 0), op.params["limit"]
        return [c[start : start + size] for c in chunks]
    raise ValueError(f"unknown op {op.op}")  # pragma: no cover - validate() admits no other
