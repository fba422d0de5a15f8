"""A function chain as plain frozen values, read once from its proto (decode.py); what validate.py and
evaluate.py work on. The shape follows Milvus's own representation (``internal/util/function/chain/repr.go``,
Milvus Lite's ``function/repr.py``): a chain is a stage and ops; an op is a name, an optional expression, declared
inputs/outputs and params; an expression is a name, column or literal arguments, and params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCORE = "$score"  # the hit's score: Milvus's distance, BM25's turned positive (evaluate.first_stage_score)
ID = "$id"  # the hit's primary key


@dataclass(frozen=True, slots=True)
class ColumnArg:
    name: str


@dataclass(frozen=True, slots=True)
class LiteralArg:
    value: Any


@dataclass(frozen=True, slots=True)
class Expr:
    name: str
    args: tuple[ColumnArg | LiteralArg, ...]
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Op:
    op: str
    expr: Expr | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    stage: str  # the proto enum's name, e.g. FunctionChainStageL2Rerank
    ops: tuple[Op, ...]
