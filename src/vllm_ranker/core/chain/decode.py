"""A chain's proto (what pymilvus sends, what the gateway receives) as model.Chain, with Milvus Lite's messages
for what does not decode (``adapter/grpc/translators/function_chain.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pymilvus.grpc_gen import schema_pb2

from vllm_ranker.core.chain.model import Chain, ColumnArg, Expr, LiteralArg, Op
from vllm_ranker.errors import RerankParamError

MODEL_EXPR = "rerank_model"


def chain_protos(function_chains: Any) -> list[schema_pb2.FunctionChain]:
    """``function_chains=`` as pymilvus takes it (a ``FunctionChain``, a list of them, or their protos; or a
    request's repeated field) as protos; raises pymilvus's own message for anything else."""
    if function_chains is None:
        return []
    one = isinstance(function_chains, schema_pb2.FunctionChain) or hasattr(function_chains, "to_proto")
    items: Iterable[Any] = [function_chains] if one or isinstance(function_chains, (str, bytes)) else function_chains
    if not isinstance(items, Iterable):
        raise _not_a_chain()
    protos = []
    for item in items:
        if isinstance(item, schema_pb2.FunctionChain):
            protos.append(item)
        elif callable(getattr(item, "to_proto", None)):
            proto = item.to_proto()
            if not isinstance(proto, schema_pb2.FunctionChain):
                raise _not_a_chain()
            protos.append(proto)
        else:
            raise _not_a_chain()
    return protos


def _not_a_chain() -> RerankParamError:
    return RerankParamError(
        "function_chains must be a FunctionChain or a list of FunctionChain: build it with "
        "pymilvus.function_chain.FunctionChain(FunctionChainStage.L2_RERANK).map(...)"
    )


def has_model_rerank(protos: Sequence[schema_pb2.FunctionChain]) -> bool:
    """Whether any op of the chains is a ``rerank_model`` map (what Milvus Lite would send to its own providers)."""
    return any(op.HasField("expr") and op.expr.name == MODEL_EXPR for chain in protos for op in chain.ops)


def model_providers(protos: Sequence[schema_pb2.FunctionChain]) -> list[str]:
    """The ``provider`` param of every ``rerank_model`` expression, as written ("" when it names none)."""
    found = []
    for chain in protos:
        for op in chain.ops:
            if op.HasField("expr") and op.expr.name == MODEL_EXPR:
                raw = op.expr.params.get("provider")
                found.append(raw.string_value if raw is not None and raw.WhichOneof("value") == "string_value" else "")
    return found


def _fail(message: str) -> RerankParamError:
    return RerankParamError(message)


def param_value(value: schema_pb2.FunctionParamValue, path: str) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        raise _fail(f"{path}: value is not set")
    if kind in ("bool_value", "int64_value", "double_value", "string_value", "bytes_value"):
        return getattr(value, kind)
    if kind == "array_value":
        return tuple(param_value(item, f"{path}[{i}]") for i, item in enumerate(value.array_value.values))
    if kind == "object_value":
        decoded = {}
        for key, item in value.object_value.fields.items():
            if not key:
                raise _fail(f"{path}: object key must not be empty")
            decoded[key] = param_value(item, f"{path}[{key!r}]")
        return decoded
    raise _fail(f"{path}: unsupported value kind: {kind}")  # pragma: no cover - the proto has no other kind


def _params(params: Any, path: str) -> dict[str, Any]:
    return {key: param_value(value, f"{path}[{key!r}]") for key, value in params.items()}


def _arg(arg: schema_pb2.FunctionChainExprArg, path: str) -> ColumnArg | LiteralArg:
    kind = arg.WhichOneof("arg")
    if kind == "column":
        if not arg.column.name:
            raise _fail(f"{path} column name must not be empty")
        return ColumnArg(arg.column.name)
    if kind == "literal":
        return LiteralArg(param_value(arg.literal, f"{path}.literal"))
    raise _fail(f"{path} argument is not set")


def decode(proto: schema_pb2.FunctionChain) -> Chain:
    ops = []
    for index, op in enumerate(proto.ops):
        path = f"function chain op[{index}]"
        if not op.op:
            raise _fail(f"{path} name must not be empty")
        expr = None
        if op.HasField("expr"):
            if not op.expr.name:
                raise _fail(f"{path} expression name must not be empty")
            args = tuple(_arg(a, f"{path}.expr.args[{i}]") for i, a in enumerate(op.expr.args))
            expr = Expr(op.expr.name, args, _params(op.expr.params, f"{path}.expr.params"))
        for kind, names in (("input", op.inputs), ("output", op.outputs)):
            for i, name in enumerate(names):
                if not name:
                    raise _fail(f"{path} {kind}[{i}] name must not be empty")
        ops.append(Op(op.op, expr, tuple(op.inputs), tuple(op.outputs), _params(op.params, f"{path}.params")))
    # After the ops, as Milvus Lite decodes them: a chain wrong in both gets the same message.
    stage = proto.DESCRIPTOR.fields_by_name["stage"].enum_type.values_by_number.get(proto.stage)
    if stage is None:
        raise _fail(f"unknown function chain stage value: {proto.stage}")
    return Chain(proto.name, stage.name, tuple(ops))
