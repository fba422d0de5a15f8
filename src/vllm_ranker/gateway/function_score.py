"""A request's ``function_score`` of boost functions and a model ranker, read from its protos (core/function_score.py
holds the rules): the model ranker the gateway serves, and the boosts the backend's first stage keeps."""

from __future__ import annotations

from typing import Any

from pymilvus import Function, FunctionType
from pymilvus.grpc_gen import schema_pb2

from vllm_ranker.core import BOOST, refuse_on_hybrid, split_functions


def ranker_function(function_score: schema_pb2.FunctionScore, hybrid: bool = False) -> Function | None:
    """A lone RERANK function as a pymilvus ``Function`` (raises what pymilvus raises for a bad one), the model ranker
    of a FunctionScore of boosts and a model ranker (``model_of``), else None."""
    if len(function_score.functions) != 1 or len(function_score.params):
        return model_of(function_score, hybrid)
    schema = function_score.functions[0]
    if schema.type != FunctionType.RERANK:
        return None
    return Function(
        name=schema.name or "ranker",
        function_type=FunctionType.RERANK,
        input_field_names=list(schema.input_field_names),
        params={pair.key: pair.value for pair in schema.params},
    )


def model_of(function_score: schema_pb2.FunctionScore, hybrid: bool) -> Function | None:
    """The model ranker of a FunctionScore of boosts and one model ranker we serve, else None (the backend's). Raises
    Milvus's refusals, and ours for boosts at the top of a hybrid search."""
    functions = [_function(schema) for schema in function_score.functions]
    split = split_functions(functions, {pair.key: pair.value for pair in function_score.params})
    if split is None:
        return None
    if hybrid:
        refuse_on_hybrid(split)
    return split.model


def boosts_only(function_score: schema_pb2.FunctionScore) -> schema_pb2.FunctionScore | None:
    """What Milvus applies in a search's plan (planparserv2's CreateSearchScorers): the boost functions of a
    FunctionScore, with its params; None when it holds none (Milvus then reads none of the params)."""
    boosts = [schema for schema in function_score.functions if _kind(schema) == BOOST]
    if not boosts:
        return None
    return schema_pb2.FunctionScore(functions=boosts, params=function_score.params)


def keep_boosts(request: Any) -> None:
    """A first-stage search request (a copy of the caller's) reduced to what Milvus runs in its plan: the boosts of its
    function_score (``boosts_only``), or no function_score."""
    kept = boosts_only(request.function_score)
    request.ClearField("function_score")
    if kept is not None:
        request.function_score.CopyFrom(kept)


def _kind(schema: schema_pb2.FunctionSchema) -> str:
    return next((pair.value.strip().lower() for pair in schema.params if pair.key.lower() == "reranker"), "")


def _function(schema: schema_pb2.FunctionSchema) -> Function:
    # A type pymilvus does not know is still not RERANK: it is refused as such when the FunctionScore is ours.
    known = schema.type in {int(t) for t in FunctionType}
    return Function(
        name=schema.name or "ranker",
        function_type=FunctionType(schema.type) if known else FunctionType.UNKNOWN,
        input_field_names=list(schema.input_field_names),
        params={pair.key: pair.value for pair in schema.params},
    )
