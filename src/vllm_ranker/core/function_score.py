"""A ``FunctionScore`` of boost functions and one model ranker (Milvus 2.6.2+), split the way Milvus splits it.

Milvus runs the two kinds in different places: the boost functions become scorers of the first stage's search plan
(applied per segment, before the top-k, so they change WHICH hits reach the reranker; the FunctionScore's
``boost_mode`` / ``function_mode`` params go with them), and the one other ranker runs on the merged first-stage
hits. Here the backend runs the first stage with a FunctionScore holding only the boosts and their params, and the
model ranker is ours. No I/O; docs/semantics.md, "FunctionScore: boosts with a model ranker", gives the sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymilvus import Function, FunctionScore, FunctionType
from pymilvus.grpc_gen import schema_pb2

from vllm_ranker.core.spec import is_model_ranker, ranker_kind
from vllm_ranker.errors import RerankParamError

BOOST = "boost"
MODES = ("boost_mode", "function_mode")  # the FunctionScore params Milvus reads, for the boosts only


@dataclass(frozen=True, slots=True)
class ModelWithBoosts:
    """The model ranker of a FunctionScore, and what the first stage runs: its boosts with the FunctionScore's params
    (``first_stage`` is None when it holds no boost: Milvus then reads none of its params)."""

    model: Function
    boost_positions: tuple[int, ...]  # where the boosts are in the FunctionScore (the gateway keeps those protos)
    first_stage: FunctionScore | None = field(default=None)


def split_function_score(ranker: Any) -> ModelWithBoosts | None:
    """A ``pymilvus.FunctionScore`` holding a model ranker this package serves, split; None for any other ranker
    (a FunctionScore of boosts, decay, rrf... or with a model ranker of a provider we do not serve goes to the
    server as it is). Raises Milvus's refusals (``RerankParamError``) before any I/O."""
    if not isinstance(ranker, FunctionScore):
        return None
    return split_functions(list(ranker.functions or []), dict(ranker.params or {}))


def split_functions(functions: Sequence[Function], params: Mapping[str, Any]) -> ModelWithBoosts | None:
    """``split_function_score`` of a FunctionScore's functions and params (the gateway reads them from protos)."""
    if not any(is_model_ranker(f) for f in functions):
        return None
    others: list[Function] = []
    boosts: list[int] = []
    for position, function in enumerate(functions):
        _check_type(function)
        kind = ranker_kind(function) or ""
        if kind == BOOST:
            _check_boost(function)
            boosts.append(position)
            continue
        # Any other kind counts as the one ranker: a reranker of no known kind is refused by the flow's
        # parse_ranker with Milvus's "unsupported rerank function" (the model's params are checked there too).
        others.append(function)
        if len(others) > 1:
            raise RerankParamError(
                "Currently only supports one rerank: a FunctionScore holds boost functions and at most one other "
                f"ranker, got {', '.join(_describe(f) for f in others)}; keep the model ranker and the boosts"
            )
    if boosts:
        _check_modes(params)
    model = others[0]
    first_stage = FunctionScore([functions[p] for p in boosts], dict(params) or None) if boosts else None
    return ModelWithBoosts(model, tuple(boosts), first_stage)


def refuse_on_hybrid(split: ModelWithBoosts) -> None:
    """Boosts at the top of a hybrid search: Milvus documents that a Boost Ranker cannot be the ranker of a hybrid
    search (only of its sub-requests), and Milvus 2.6 drops such boosts without a word; refused here instead."""
    if split.boost_positions:
        raise RerankParamError(
            "Boost Ranker cannot be used as the ranker of a hybrid search (Milvus applies boosts in a search, or in "
            "each sub-request of a hybrid search): give the boost functions to the sub-requests and keep only the "
            "model ranker at the top"
        )


def _check_type(function: Function) -> None:
    if function.type != FunctionType.RERANK:
        name = schema_pb2.FunctionType.Name(int(function.type)) if int(function.type) in _TYPE_VALUES else "Unknown"
        raise RerankParamError(
            f"{name} is not rerank function.: every function of a FunctionScore used as a ranker must be "
            f"FunctionType.RERANK ('{function.name}' is not)"
        )


_TYPE_VALUES = frozenset(schema_pb2.FunctionType.values())


def _check_boost(function: Function) -> None:
    """Milvus's checks of a boost's weight (planparserv2's CreateSearchScorer), so every backend refuses alike."""
    params = function.params or {}
    if "weight" not in params:
        raise RerankParamError(
            f"must set weight params for weight scorer: give the boost function '{function.name}' "
            "params['weight'], e.g. 2.0"
        )
    raw = str(params["weight"])
    try:
        float(raw.strip())
    except ValueError:
        raise RerankParamError(
            f'parse function scorer weight params failed with error: {{strconv.ParseFloat: parsing "{raw}": '
            f"invalid syntax}}: the weight of boost function '{function.name}' must be a number, e.g. 2.0"
        ) from None


def _check_modes(params: Mapping[str, Any]) -> None:
    for key in MODES:
        if key in params and str(params[key]).lower() not in ("multiply", "sum"):
            label = "boost mode" if key == "boost_mode" else "function mode"
            raise RerankParamError(
                f"unknown {label}: {str(params[key]).lower()}: set the FunctionScore's params['{key}'] to "
                "'Multiply' or 'Sum'"
            )


def _describe(function: Function) -> str:
    return f"'{function.name}' ({ranker_kind(function) or 'no reranker'})"
