"""Every check Milvus Lite makes on a search's function chain, against ours, message by message.

Milvus Lite's message comes from Milvus Lite itself: the chain is sent WITHOUT a model of ours (a chain with no
rerank_model, or one naming Lite's own provider ``cohere``, which Lite checks before any call), and pymilvus's
``MilvusException.message`` is what it said. Ours must be exactly that text, then ``": "`` and what to change
(validate.py). Chains pymilvus's fluent builder would refuse client-side are built from FunctionChainOp /
FunctionChainExpr, or as raw protos, directly. Every case is also searched through ``vllm_ranker.MilvusClient``
with a chain calling provider ``vllm``: the client must raise the same message before any search.

The decoding checks (Lite's adapter/grpc/translators/function_chain.py, our decode.py) come out without a hint
today; their cases accept Lite's text alone or followed by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymilvus
import pytest
from pymilvus import AnnSearchRequest, Function, FunctionType, WeightedRanker
from pymilvus.client.prepare import Prepare
from pymilvus.exceptions import MilvusException
from pymilvus.function_chain import FunctionChain, FunctionChainExpr, FunctionChainOp, FunctionChainStage, col
from pymilvus.grpc_gen import schema_pb2

from tests.chain.conftest import DENSE_L2, JSON_FIELD, L2_QUERIES, TEXT, ChainCollection
from vllm_ranker.core.chain.decode import decode
from vllm_ranker.core.chain.validate import check_search, validate
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.errors import RerankParamError

L2 = FunctionChainStage.L2_RERANK
LITE_PROVIDER = "cohere"  # Milvus Lite's own: it checks the chain before it would call Cohere
OUR_PROVIDER = "vllm"


class RawChain(FunctionChain):  # type: ignore[misc]  # pymilvus.function_chain has no type hints
    """A chain as exactly this proto: pymilvus sends what ``to_proto`` gives, refused values included."""

    def __init__(self, proto: schema_pb2.FunctionChain) -> None:
        super().__init__(L2)
        self._proto = proto

    def to_proto(self) -> schema_pb2.FunctionChain:
        return self._proto


def chain_of(ops: tuple[FunctionChainOp, ...], stage: int = L2) -> RawChain:
    proto = schema_pb2.FunctionChain(name="case", stage=stage)
    proto.ops.extend(op.to_proto() for op in ops)
    return RawChain(proto)


def expr(name: str, *args: Any, **params: Any) -> FunctionChainExpr:
    return FunctionChainExpr(name, args=args, params=params)


def map_(output: str, expression: FunctionChainExpr) -> FunctionChainOp:
    return FunctionChainOp("map", expr=expression, outputs=(output,))


def sort(inputs: tuple[str, ...] = ("$score",), **params: Any) -> FunctionChainOp:
    return FunctionChainOp("sort", inputs=inputs, params=params)


def limit(**params: Any) -> FunctionChainOp:
    return FunctionChainOp("limit", params=params)


def model(provider: str, nq: int = 1) -> FunctionChainOp:
    return map_("$score", expr("rerank_model", col(TEXT), queries=["q"] * nq, provider=provider))


def rerank(provider: str, *args: Any, **params: Any) -> FunctionChainOp:
    """A rerank_model map with one query unless params say otherwise."""
    full: dict[str, Any] = {"queries": ["q"], "provider": provider, **params}
    return map_("$score", expr("rerank_model", *(args or (col(TEXT),)), **full))


SCORE_OK = map_("s", expr("round_decimal", col("$score"), decimal=2))  # a valid op, to move a failure further on
INF = math.inf


@dataclass(frozen=True)
class Case:
    id: str
    ops: Callable[[str], tuple[FunctionChainOp, ...]]  # the chain's ops, given the rerank_model provider to use
    nq: int = 1
    stage: int = L2
    client: bool = True  # searched through vllm_ranker.MilvusClient too (with a vllm rerank_model after it)


def plain(case_id: str, *ops: FunctionChainOp, client: bool = True, stage: int = L2) -> Case:
    return Case(case_id, lambda _provider: ops, client=client, stage=stage)


def with_model(case_id: str, build: Callable[[str], tuple[FunctionChainOp, ...]], nq: int = 1) -> Case:
    return Case(case_id, build, nq=nq)


VALIDATOR_CASES = [
    # the chain
    plain("stage", SCORE_OK, stage=FunctionChainStage.L0_RERANK),
    plain("no-ops", client=False),  # (a model op would give the chain one)
    # map
    plain("map-without-expression", FunctionChainOp("map", outputs=("s",))),
    plain(
        "map-with-inputs",
        FunctionChainOp("map", expr=expr("round_decimal", col("i8"), decimal=1), inputs=("i8",), outputs=("s",)),
    ),
    plain("map-without-output", FunctionChainOp("map", expr=expr("round_decimal", col("i8"), decimal=1))),
    plain(
        "map-two-outputs", FunctionChainOp("map", expr=expr("round_decimal", col("i8"), decimal=1), outputs=("a", "b"))
    ),
    # arguments
    plain("literal-infinite", map_("s", expr("num_combine", col("$score"), INF))),
    plain("literal-nan", map_("s", expr("num_combine", col("$score"), math.nan))),
    plain("literal-bytes", map_("s", expr("num_combine", col("$score"), b"x"))),
    plain("literal-array", map_("s", expr("num_combine", col("$score"), [1, 2]))),
    plain("literal-object", map_("s", expr("num_combine", col("$score"), {"a": 1}))),
    plain("system-input", map_("s", expr("num_combine", col("$score"), col("$rank")))),
    plain("unknown-input", map_("s", expr("num_combine", col("$score"), col("nope")))),
    plain("vector-input", map_("s", expr("num_combine", col("$score"), col(DENSE_L2)))),
    plain("json-input", map_("s", expr("num_combine", col("$score"), col(JSON_FIELD)))),
    plain("sparse-input", map_("s", expr("decay", col("sparse"), function="exp", origin=0, scale=1))),
    plain(
        "later-output-read-early",
        map_("s", expr("num_combine", col("$score"), col("t"))),
        map_("t", expr("round_decimal", col("i8"), decimal=0)),
    ),
    plain("unknown-expression", map_("s", expr("xgboost", col("i32"), model_resource="m"))),
    # num_combine
    plain("num_combine-one-arg", map_("s", expr("num_combine", col("$score")))),
    plain("num_combine-bool-arg", map_("s", expr("num_combine", col("$score"), col("flag")))),
    plain("num_combine-text-arg", map_("s", expr("num_combine", col("$score"), col(TEXT)))),
    plain("num_combine-text-literal", map_("s", expr("num_combine", col("$score"), "x"))),
    plain("num_combine-mode-not-string", map_("s", expr("num_combine", col("$score"), col("i8"), mode=1))),
    plain("num_combine-mode-unknown", map_("s", expr("num_combine", col("$score"), col("i8"), mode="median"))),
    plain("num_combine-weighted-no-weights", map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted"))),
    plain(
        "num_combine-weights-count",
        map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted", weights=[1.0])),
    ),
    plain(
        "num_combine-weights-string",
        map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted", weights="ab")),
    ),
    plain(
        "num_combine-weights-text",
        map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted", weights=["a", 1.0])),
    ),
    plain(
        "num_combine-weights-bool",
        map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted", weights=[True, 1.0])),
    ),
    plain(
        "num_combine-weights-infinite",
        map_("s", expr("num_combine", col("$score"), col("i8"), mode="weighted", weights=[INF, 1.0])),
    ),
    plain(
        "num_combine-weights-without-weighted",
        map_("s", expr("num_combine", col("$score"), col("i8"), weights=[1.0, 1.0])),
    ),
    # decay
    plain("decay-two-args", map_("s", expr("decay", col("i8"), col("i32"), function="exp", origin=0, scale=1))),
    plain("decay-text-arg", map_("s", expr("decay", col(TEXT), function="exp", origin=0, scale=1))),
    plain("decay-bool-arg", map_("s", expr("decay", col("flag"), function="exp", origin=0, scale=1))),
    plain("decay-no-function", map_("s", expr("decay", col("i8"), origin=0, scale=1))),
    plain("decay-function-unknown", map_("s", expr("decay", col("i8"), function="cubic", origin=0, scale=1))),
    plain("decay-no-origin", map_("s", expr("decay", col("i8"), function="exp", scale=1))),
    plain("decay-scale-text", map_("s", expr("decay", col("i8"), function="exp", origin=0, scale="1"))),
    plain("decay-decay-bool", map_("s", expr("decay", col("i8"), function="exp", origin=0, scale=1, decay=True))),
    plain("decay-origin-infinite", map_("s", expr("decay", col("i8"), function="gauss", origin=INF, scale=1))),
    plain("decay-scale-zero", map_("s", expr("decay", col("i8"), function="exp", origin=0, scale=0))),
    plain("decay-offset-negative", map_("s", expr("decay", col("i8"), function="exp", origin=0, scale=1, offset=-1))),
    plain("decay-decay-one", map_("s", expr("decay", col("i8"), function="linear", origin=0, scale=1, decay=1.0))),
    plain("decay-decay-zero", map_("s", expr("decay", col("i8"), function="linear", origin=0, scale=1, decay=0))),
    # round_decimal
    plain("round_decimal-text-arg", map_("s", expr("round_decimal", col(TEXT), decimal=1))),
    plain("round_decimal-two-args", map_("s", expr("round_decimal", col("i8"), col("i32"), decimal=1))),
    plain("round_decimal-seven", map_("s", expr("round_decimal", col("$score"), decimal=7))),
    plain("round_decimal-negative", map_("s", expr("round_decimal", col("$score"), decimal=-1))),
    plain("round_decimal-float", map_("s", expr("round_decimal", col("$score"), decimal=2.0))),
    plain("round_decimal-bool", map_("s", expr("round_decimal", col("$score"), decimal=True))),
    plain("round_decimal-missing", map_("s", expr("round_decimal", col("$score")))),
    # outputs
    plain("output-id", map_("$id", expr("round_decimal", col("$score"), decimal=1))),
    plain("output-system", map_("$rank", expr("round_decimal", col("$score"), decimal=1))),
    plain("output-field", map_("i32", expr("round_decimal", col("$score"), decimal=1))),
    plain("output-pk", map_("id", expr("round_decimal", col("$score"), decimal=1))),
    # sort
    plain(
        "sort-with-expression",
        FunctionChainOp(
            "sort",
            expr=expr("round_decimal", col("$score"), decimal=1),
            inputs=("$score",),
            params={"column": "$score"},
        ),
    ),
    plain(
        "sort-with-outputs", FunctionChainOp("sort", inputs=("$score",), outputs=("x",), params={"column": "$score"})
    ),
    plain("sort-no-column", sort()),
    plain("sort-column-empty", sort(column="")),
    plain("sort-column-number", sort(column=1)),
    plain("sort-desc-text", sort(column="$score", desc="yes")),
    plain("sort-desc-number", sort(column="$score", desc=1)),
    plain("sort-tie-empty", sort(column="$score", tie_break_col="")),
    plain("sort-tie-number", sort(column="$score", tie_break_col=5)),
    plain("sort-inputs-mismatch", sort(("i8",), column="$score")),
    plain("sort-inputs-without-tie", sort(("$score",), column="$score", tie_break_col="$id")),
    plain("sort-unknown-column", sort(("nope",), column="nope")),
    plain("sort-vector-column", sort((DENSE_L2,), column=DENSE_L2)),
    plain("sort-unknown-tie", sort(("$score", "nope"), column="$score", tie_break_col="nope")),
    # limit
    plain(
        "limit-with-expression",
        FunctionChainOp("limit", expr=expr("round_decimal", col("$score"), decimal=1), params={"limit": 1}),
    ),
    plain("limit-with-inputs", FunctionChainOp("limit", inputs=("$score",), params={"limit": 1})),
    plain("limit-with-outputs", FunctionChainOp("limit", outputs=("x",), params={"limit": 1})),
    plain("limit-missing", limit()),
    plain("limit-zero", limit(limit=0)),
    plain("limit-negative", limit(limit=-3)),
    plain("limit-bool", limit(limit=True)),
    plain("limit-float", limit(limit=2.0)),
    plain("limit-text", limit(limit="5")),
    plain("offset-negative", limit(limit=1, offset=-1)),
    plain("offset-bool", limit(limit=1, offset=False)),
    plain("offset-float", limit(limit=1, offset=1.0)),
    # operators, and the index of a later op
    plain("unknown-operator", FunctionChainOp("filter", params={"expr": "i8 > 0"})),
    plain("third-op", SCORE_OK, sort(column="$score"), limit(limit=0)),
    # rerank_model (Lite gets its own provider, the client ours)
    with_model("rerank_model-numeric-arg", lambda p: (rerank(p, col("i8")),)),
    with_model("rerank_model-two-args", lambda p: (rerank(p, col(TEXT), col(TEXT)),)),
    with_model("rerank_model-base_url", lambda p: (rerank(p, base_url="http://x"),)),
    with_model("rerank_model-BASE_URL", lambda p: (rerank(p, BASE_URL="http://x"),)),
    with_model("rerank_model-api_key", lambda p: (rerank(p, api_key="k"),)),
    with_model("rerank_model-token", lambda p: (rerank(p, token="k"),)),
    with_model("rerank_model-Secret", lambda p: (rerank(p, Secret="k"),)),
    with_model("rerank_model-no-queries", lambda p: (map_("$score", expr("rerank_model", col(TEXT), provider=p)),)),
    with_model("rerank_model-queries-empty", lambda p: (rerank(p, queries=[]),)),
    with_model("rerank_model-queries-string", lambda p: (rerank(p, queries="q"),)),
    with_model("rerank_model-queries-blank", lambda p: (rerank(p, queries=["q", ""]),), nq=2),
    with_model("rerank_model-queries-number", lambda p: (rerank(p, queries=[1]),)),
    with_model("rerank_model-queries-too-few", lambda p: (rerank(p, queries=["q"]),), nq=2),
    with_model("rerank_model-queries-too-many", lambda p: (rerank(p, queries=["q", "r", "s"]),), nq=2),
    with_model("rerank_model-third-op", lambda p: (SCORE_OK, sort(("s",), column="s"), rerank(p, queries=["q", "r"]))),
]
# No provider: neither Lite nor we would call a model; the client leaves such a chain to the backend.
NO_PROVIDER_CASES = [
    Case(
        "rerank_model-no-provider",
        lambda _p: (map_("$score", expr("rerank_model", col(TEXT), queries=["q"])),),
        client=False,
    ),
    Case("rerank_model-provider-empty", lambda _p: (rerank(""),), client=False),
    Case(
        "rerank_model-provider-number",
        lambda _p: (map_("$score", expr("rerank_model", col(TEXT), queries=["q"], provider=3)),),
        client=False,
    ),
]


def _proto_case(case_id: str, build: Callable[[schema_pb2.FunctionChain], None]) -> Case:
    """A case whose chain cannot come from pymilvus's classes: the proto is edited after building."""

    def ops(_provider: str) -> tuple[FunctionChainOp, ...]:
        raise AssertionError("built from its proto")  # pragma: no cover

    case = Case(case_id, ops)
    DECODE_BUILDERS[case_id] = build
    return case


DECODE_BUILDERS: dict[str, Callable[[schema_pb2.FunctionChain], None]] = {}


def _unknown_stage(proto: schema_pb2.FunctionChain) -> None:
    proto.stage = 99


def _op_name_empty(proto: schema_pb2.FunctionChain) -> None:
    proto.ops.add(op="")


def _expr_name_empty(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="map", outputs=["s"])
    op.expr.SetInParent()


def _column_empty(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="map", outputs=["s"])
    op.expr.name = "num_combine"
    op.expr.args.add().column.name = "$score"
    op.expr.args.add().column.SetInParent()


def _arg_unset(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="map", outputs=["s"])
    op.expr.name = "num_combine"
    op.expr.args.add().column.name = "$score"
    op.expr.args.add()


def _input_empty(proto: schema_pb2.FunctionChain) -> None:
    proto.ops.add(op="sort", inputs=["$score", ""])


def _output_empty(proto: schema_pb2.FunctionChain) -> None:
    proto.ops.add(op="map", outputs=[""])


def _param_unset(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="limit")
    op.params["limit"].SetInParent()


def _literal_unset(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="map", outputs=["s"])
    op.expr.name = "num_combine"
    op.expr.args.add().column.name = "$score"
    op.expr.args.add().literal.SetInParent()


def _object_key_empty(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="limit")
    op.params["limit"].object_value.fields[""].int64_value = 1


def _array_item_unset(proto: schema_pb2.FunctionChain) -> None:
    op = proto.ops.add(op="map", outputs=["s"])
    op.expr.name = "num_combine"
    op.expr.args.add().column.name = "$score"
    op.expr.args.add().column.name = "i8"
    op.expr.params["weights"].array_value.values.add()


DECODE_CASES = [
    _proto_case("decode-unknown-stage", _unknown_stage),
    _proto_case("decode-op-name-empty", _op_name_empty),
    _proto_case("decode-expression-name-empty", _expr_name_empty),
    _proto_case("decode-column-name-empty", _column_empty),
    _proto_case("decode-argument-unset", _arg_unset),
    _proto_case("decode-input-empty", _input_empty),
    _proto_case("decode-output-empty", _output_empty),
    _proto_case("decode-param-unset", _param_unset),
    _proto_case("decode-literal-unset", _literal_unset),
    _proto_case("decode-object-key-empty", _object_key_empty),
    _proto_case("decode-array-item-unset", _array_item_unset),
]


def build(case: Case, provider: str, model_after: bool) -> RawChain:
    """The case's chain; with ``model_after`` a valid ``provider`` rerank_model follows (the client serves it)."""
    if case.id in DECODE_BUILDERS:
        proto = schema_pb2.FunctionChain(name="case", stage=L2)
        DECODE_BUILDERS[case.id](proto)
        if model_after:
            proto.ops.append(model(provider, case.nq).to_proto())
        return RawChain(proto)
    ops = case.ops(provider)
    return chain_of((*ops, model(provider, case.nq)) if model_after else ops, case.stage)


def search_args(nq: int) -> dict[str, Any]:
    return {"data": [L2_QUERIES[0]] * nq, "anns_field": DENSE_L2, "limit": 3, "output_fields": [TEXT]}


def lite_message(chains: ChainCollection, function_chains: Any, **extra: Any) -> str:
    args = {**search_args(1), **extra}
    with pytest.raises(MilvusException) as refused:
        pymilvus.MilvusClient.search(chains.client, chains.name, **args, function_chains=function_chains)
    return str(refused.value.message)


@pytest.fixture(scope="module")
def info(chains: ChainCollection) -> CollectionInfo:
    return CollectionInfo.from_describe(pymilvus.MilvusClient.describe_collection(chains.client, chains.name))


@pytest.fixture
def no_search(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Records every search that reaches pymilvus (the client's first stage goes through it)."""
    calls: list[Any] = []
    original = pymilvus.MilvusClient.search

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymilvus.MilvusClient, "search", spy)
    yield calls
    assert calls == [], "the client searched before refusing the chain"


def assert_ours(message: str, lite: str) -> None:
    assert message.startswith(lite + ": "), (message, lite)
    assert message[len(lite) + 2 :].strip(), message  # a hint follows


def _validate_message(case: Case, info: CollectionInfo, provider: str) -> str:
    with pytest.raises(RerankParamError) as ours:
        validate(decode(build(case, provider, model_after=False).to_proto()), info, case.nq)
    return str(ours.value)


@pytest.mark.parametrize("case", VALIDATOR_CASES + NO_PROVIDER_CASES, ids=lambda c: c.id)
def test_validator(case: Case, chains: ChainCollection, info: CollectionInfo, no_search: list[Any]) -> None:
    lite = lite_message(chains, build(case, LITE_PROVIDER, model_after=False), data=[L2_QUERIES[0]] * case.nq)
    no_search.clear()  # Lite's own search above is not the client's
    assert_ours(_validate_message(case, info, OUR_PROVIDER), lite)
    if case.client:
        with pytest.raises(RerankParamError) as ours:
            chains.client.search(
                chains.name, **search_args(case.nq), function_chains=build(case, OUR_PROVIDER, model_after=True)
            )
        assert_ours(str(ours.value), lite)


@pytest.mark.parametrize("case", DECODE_CASES, ids=lambda c: c.id)
def test_decoding(case: Case, chains: ChainCollection, info: CollectionInfo, no_search: list[Any]) -> None:
    lite = lite_message(chains, build(case, LITE_PROVIDER, model_after=False))
    no_search.clear()
    with pytest.raises(RerankParamError) as direct:
        decode(build(case, OUR_PROVIDER, model_after=False).to_proto())
    with pytest.raises(RerankParamError) as through_client:
        chains.client.search(chains.name, **search_args(1), function_chains=build(case, OUR_PROVIDER, model_after=True))
    for ours in (str(direct.value), str(through_client.value)):
        assert ours == lite or ours.startswith(lite + ": "), (ours, lite)


def _unknown_stage_and_op_name_empty(proto: schema_pb2.FunctionChain) -> None:
    _unknown_stage(proto)
    _op_name_empty(proto)


def test_decoding_reads_ops_before_stage(chains: ChainCollection) -> None:
    proto = schema_pb2.FunctionChain(name="case")
    _unknown_stage_and_op_name_empty(proto)
    lite = lite_message(chains, RawChain(proto))
    with pytest.raises(RerankParamError) as ours:
        decode(proto)
    assert str(ours.value) == lite or str(ours.value).startswith(lite + ": ")


# The checks on the search around the chain (Lite's prepare_search_function_chain, and its HybridSearch).


def _decay_ranker() -> Function:
    return Function(
        name="decay",
        input_field_names=["i32"],
        function_type=FunctionType.RERANK,
        params={"reranker": "decay", "function": "exp", "origin": 0, "scale": 100},
    )


def test_function_score_and_chain(
    chains: ChainCollection, monkeypatch: pytest.MonkeyPatch, no_search: list[Any]
) -> None:
    # pymilvus refuses ranker= beside function_chains= client-side: let this one request through to hear Lite.
    original = Prepare.function_chains_schema
    monkeypatch.setattr(Prepare, "function_chains_schema", staticmethod(lambda chains_, ranker=None: original(chains_)))
    lite = lite_message(chains, chain_of((SCORE_OK,)), ranker=_decay_ranker())
    monkeypatch.setattr(Prepare, "function_chains_schema", staticmethod(original))
    no_search.clear()
    with pytest.raises(RerankParamError) as direct:
        check_search(1, has_ranker=True, order_by=False)
    assert_ours(str(direct.value), lite)
    with pytest.raises(RerankParamError) as through_client:
        chains.client.search(
            chains.name, **search_args(1), ranker=_decay_ranker(), function_chains=chain_of((model(OUR_PROVIDER),))
        )
    assert_ours(str(through_client.value), lite)


def test_order_by_and_chain(chains: ChainCollection, no_search: list[Any]) -> None:
    order_by = [{"field": "i32", "order": "asc"}]
    lite = lite_message(chains, chain_of((SCORE_OK,)), order_by_fields=order_by)
    no_search.clear()
    with pytest.raises(RerankParamError) as direct:
        check_search(1, has_ranker=False, order_by=True)
    assert_ours(str(direct.value), lite)
    with pytest.raises(RerankParamError) as through_client:
        chains.client.search(
            chains.name, **search_args(1), order_by_fields=order_by, function_chains=chain_of((model(OUR_PROVIDER),))
        )
    assert_ours(str(through_client.value), lite)


def test_two_chains(chains: ChainCollection, no_search: list[Any]) -> None:
    lite = lite_message(chains, [chain_of((SCORE_OK,)), chain_of((SCORE_OK,))])
    no_search.clear()
    with pytest.raises(RerankParamError) as direct:
        check_search(2, has_ranker=False, order_by=False)
    assert_ours(str(direct.value), lite)
    both = [chain_of((model(OUR_PROVIDER),)), chain_of((model(OUR_PROVIDER),))]
    with pytest.raises(RerankParamError) as through_client:
        chains.client.search(chains.name, **search_args(1), function_chains=both)
    assert_ours(str(through_client.value), lite)


def test_hybrid_search_and_chain(chains: ChainCollection, monkeypatch: pytest.MonkeyPatch) -> None:
    # pymilvus neither sends function_chains on hybrid_search nor lets them through: add them to the request.
    chain = chain_of((SCORE_OK,))
    build_request = Prepare.hybrid_search_request_with_ranker

    def with_chain(*args: Any, **kwargs: Any) -> Any:
        request = build_request(*args, **kwargs)
        request.function_chains.append(chain.to_proto())
        return request

    monkeypatch.setattr(Prepare, "check_no_hybrid_function_chains", staticmethod(lambda _chains: None))
    monkeypatch.setattr(Prepare, "hybrid_search_request_with_ranker", staticmethod(with_chain))
    request = AnnSearchRequest([L2_QUERIES[0]], DENSE_L2, {}, limit=3)
    with pytest.raises(MilvusException) as refused:
        pymilvus.MilvusClient.hybrid_search(chains.client, chains.name, [request], WeightedRanker(1.0), limit=3)
    with pytest.raises(RerankParamError) as ours:
        check_search(1, has_ranker=False, order_by=False, hybrid=True)
    assert_ours(str(ours.value), str(refused.value.message))
