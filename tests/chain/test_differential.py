"""Our function-chain evaluator against Milvus Lite's, on generated chains (issue 25, item 4).

Hypothesis builds MIN_CHAINS+ chains without a rerank_model (every other expression pymilvus 3's ``fn`` offers
but xgboost: decay, num_combine, round_decimal; and the sort and limit ops, in any order, 1-6 ops) and a random
search around each (dense L2, dense COSINE or BM25 text; nq 1-3; limit 1-20; sometimes a filter, an offset, a
round_decimal). Each runs twice on the same collection: by Milvus Lite (``pymilvus.MilvusClient.search(...,
function_chains=chain)``) and by our flow (``chain_flow`` driven over the same client, its first stage being a
plain search). Both must return the same ids in the same order per query, the same distances (to float32's
precision: Lite sends float32 over the proto, we keep the double), and the same entities.

What is NOT generated, and why:
* ``output_fields=None`` or ``"*"``: Milvus Lite then does not fetch the fields a chain reads (a Lite quirk; we
  fetch them), so its chain sees None where ours sees the value.
* ``$score`` written with a value that may be None (round_decimal of the nullable field): Lite fails building
  its answer (``float(None)``, an internal error rather than a check), and so do we, differently.
* Magnitudes past float32's range: num_combine falls back to ``max`` where a product could leave it, so both
  sides stay finite (Lite would send inf).
* L2 data with distances that are not float32 values: see conftest.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymilvus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus.function_chain import FunctionChain, FunctionChainExpr, FunctionChainStage, col, fn

from tests.chain.conftest import (
    BOOL,
    COS_QUERIES,
    DENSE_COS,
    DENSE_L2,
    L2_QUERIES,
    NULLABLE,
    NUMERIC_FIELDS,
    PK,
    SPARSE,
    TAG,
    TEXT,
    TEXT_QUERIES,
    ChainCollection,
)
from vllm_ranker.core.chain import chain_flow
from vllm_ranker.core.driver import drive
from vllm_ranker.core.flow import Rerank
from vllm_ranker.core.schema import SchemaCache

MIN_CHAINS = 500  # chains compared per run; the test fails if fewer ran
MAX_EXAMPLES = 520  # hypothesis may end a little short of max_examples; MIN_CHAINS is what is checked
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # below it float32 loses relative precision (and flushes to 0)
FINITE_BOUND = 1e30  # largest magnitude a generated column may reach (float32 holds up to 3.4e38)
SCORE, ID = "$score", "$id"
OUTPUT_NAMES = ("s1", "s2", "s3", "boost")
# Columns a sort may read besides the numeric ones (text and bool values sort too).
OTHER_SORTABLE = (TEXT, TAG, BOOL)
FILTERS = ("i32 > 0", f"{BOOL} == true", "i8 <= 3", f"{TAG} in ['alpha', 'gamma']", "d64 < 250.5", "f32 >= 0")
# Not the primary key: see test_primary_key_in_output_fields.
OUTPUT_FIELDS = (TEXT, TAG, BOOL, *NUMERIC_FIELDS, DENSE_COS, DENSE_L2)


@dataclass
class Column:
    bound: float  # largest absolute value it may hold
    maybe_none: bool = False


@dataclass
class Case:
    steps: list[str] = field(default_factory=list)  # the chain as text, for hypothesis's report
    chain: FunctionChain = field(default_factory=lambda: FunctionChain(FunctionChainStage.L2_RERANK))
    search: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Case(search={self.search!r}, chain={' | '.join(self.steps)})"


def _combine_bound(mode: str, bounds: Sequence[float], weights: Sequence[float]) -> float:
    if mode == "sum":
        return math.fsum(bounds)
    if mode == "multiply":
        return math.prod(max(b, 1.0) for b in bounds)
    if mode == "weighted":
        return math.fsum(abs(w) * b for w, b in zip(weights, bounds, strict=True))
    return max(bounds)  # max, min, avg


@st.composite
def cases(draw: st.DrawFn) -> Case:
    case = Case()
    numeric: dict[str, Column] = {
        SCORE: Column(1000.0),  # L2 distances here stay under 200, cosine under 1, BM25 under 50
        ID: Column(2000.0),
        PK: Column(2000.0),
        **{name: Column(bound, name == NULLABLE) for name, bound in NUMERIC_FIELDS.items()},
    }
    chain = case.chain
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["decay", "num_combine", "round_decimal", "sort", "limit"]))
        names = sorted(numeric)
        if kind == "sort":
            sortable = names + list(OTHER_SORTABLE)
            by = draw(st.sampled_from(sortable))
            desc = draw(st.booleans())
            tie = draw(st.one_of(st.none(), st.just(ID), st.sampled_from(sortable)))
            chain.sort(col(by), desc=desc, tie_break_col=None if tie is None else col(tie))
            case.steps.append(f"sort({by}, desc={desc}, tie={tie})")
            continue
        if kind == "limit":
            limit, offset = draw(st.integers(1, 20)), draw(st.sampled_from([0, 0, 1, 2, 5]))
            chain.limit(limit, offset=offset)
            case.steps.append(f"limit({limit}, offset={offset})")
            continue
        expr: FunctionChainExpr
        if kind == "decay":
            arg = draw(st.sampled_from(names))
            function = draw(st.sampled_from(["gauss", "exp", "linear"]))
            origin = draw(st.one_of(st.integers(-100, 100), st.floats(-100, 100)))
            scale = draw(st.one_of(st.integers(1, 100), st.floats(0.01, 100)))
            offset_ = draw(st.one_of(st.just(0), st.floats(0, 20)))
            decay = draw(st.floats(0.01, 0.99))
            expr = fn.decay(col(arg), function=function, origin=origin, scale=scale, offset=offset_, decay=decay)
            text = f"decay({arg}, {function}, origin={origin}, scale={scale}, offset={offset_}, decay={decay})"
            result = Column(1.0)  # a missing value decays to 0.0
        elif kind == "num_combine":
            args = draw(st.lists(st.sampled_from(names), min_size=2, max_size=4))
            mode = draw(st.sampled_from(["sum", "multiply", "max", "min", "avg", "weighted"]))
            weights = draw(st.lists(st.floats(-3, 3), min_size=len(args), max_size=len(args)))
            bounds = [numeric[a].bound for a in args]
            if _combine_bound(mode, bounds, weights) > FINITE_BOUND:
                mode = "max"  # keep every value finite in float32 (module docstring)
            expr = fn.num_combine(*(col(a) for a in args), mode=mode, weights=weights if mode == "weighted" else None)
            text = f"num_combine({', '.join(args)}, {mode}{', ' + str(weights) if mode == 'weighted' else ''})"
            result = Column(_combine_bound(mode, bounds, weights))  # a row with a missing value gives 0.0
        else:
            # Mostly $score: the scores are where exact halves (L2's quarters squared, BM25's ties) meet rounding.
            arg = draw(st.one_of(st.just(SCORE), st.sampled_from(names)))
            decimal = draw(st.integers(0, 6))
            expr = fn.round_decimal(col(arg), decimal=decimal)
            text = f"round_decimal({arg}, {decimal})"
            result = Column(numeric[arg].bound + 1, numeric[arg].maybe_none)
        targets = list(OUTPUT_NAMES) if result.maybe_none else [SCORE, SCORE, *OUTPUT_NAMES]
        output = draw(st.sampled_from(targets))
        chain.map(output, expr)
        numeric[output] = result
        case.steps.append(f"{output} = {text}")

    metric = draw(st.sampled_from(["L2", "COSINE", "BM25"]))
    pools: dict[str, tuple[Sequence[Any], str]] = {
        "L2": (L2_QUERIES, DENSE_L2),
        "COSINE": (COS_QUERIES, DENSE_COS),
        "BM25": (TEXT_QUERIES, SPARSE),
    }
    pool, anns_field = pools[metric]
    nq = draw(st.integers(1, 3))
    search: dict[str, Any] = {
        "data": [draw(st.sampled_from(pool)) for _ in range(nq)],
        "anns_field": anns_field,
        "limit": draw(st.integers(1, 20)),
        "filter": draw(st.one_of(st.just(""), st.sampled_from(FILTERS))),
        "output_fields": draw(st.lists(st.sampled_from(OUTPUT_FIELDS), min_size=1, max_size=5, unique=True)),
        "search_params": draw(st.sampled_from([None, {"metric_type": metric}])),
    }
    if draw(st.booleans()):
        search["round_decimal"] = draw(st.integers(0, 6))
    if draw(st.integers(0, 3)) == 0:
        search["offset"] = draw(st.integers(1, 3))
    case.search = search
    return case


Answer = list[list[tuple[Any, float, dict[str, Any]]]]


def _answer(result: Any) -> Answer:
    return [[(hit["id"], float(hit["distance"]), dict(hit["entity"])) for hit in hits] for hits in result]


def _no_rerank(step: Rerank) -> list[list[float]]:
    raise AssertionError("a chain without rerank_model asked for a rerank")  # pragma: no cover


def _same(lite: Answer, ours: Answer, case: Case) -> None:
    assert len(ours) == len(lite), case
    for q, (lite_hits, our_hits) in enumerate(zip(lite, ours, strict=True)):
        assert [h[0] for h in our_hits] == [h[0] for h in lite_hits], (q, case)
        for (pk, lite_distance, lite_entity), (_, our_distance, our_entity) in zip(lite_hits, our_hits, strict=True):
            # Relative: float32 keeps ~7 significant digits whatever the magnitude; absolute only where float32
            # itself runs out (subnormals and underflow to 0: a gauss decay far from its origin).
            assert math.isclose(our_distance, lite_distance, rel_tol=1e-6, abs_tol=FLOAT32_TINY), (q, pk, case)
            assert our_entity == lite_entity, (q, pk, case)


def test_chains_match_milvus_lite(chains: ChainCollection) -> None:
    """At least 500 (MIN_CHAINS) generated chains give Milvus Lite's answer through our flow."""
    client, name = chains.client, chains.name
    schemas = SchemaCache()
    compared = 0

    def describe(collection: str) -> Any:
        return pymilvus.MilvusClient.describe_collection(client, collection)

    def searches(calls: list[dict[str, Any]]) -> list[Any]:
        return [pymilvus.MilvusClient.search(client, **call) for call in calls]

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same chains on every run (CI included)
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=cases())
    def run(case: Case) -> None:
        nonlocal compared
        # Every generated chain is valid and stays finite: Lite refusing one is a failure (of the generator).
        lite = _answer(pymilvus.MilvusClient.search(client, name, **case.search, function_chains=case.chain))
        flow = chain_flow(schemas, name, [case.chain.to_proto()], dict(case.search))
        _same(lite, _answer(drive(flow, describe, searches, _no_rerank)), case)
        compared += 1

    run()
    assert compared >= MIN_CHAINS, compared


def test_primary_key_in_output_fields(chains: ChainCollection) -> None:
    chain = FunctionChain(FunctionChainStage.L2_RERANK).map("$score", fn.round_decimal(col("$score"), decimal=2))
    search = {"data": [L2_QUERIES[1]], "anns_field": DENSE_L2, "limit": 5, "output_fields": [PK, "i8"]}
    lite = _answer(pymilvus.MilvusClient.search(chains.client, chains.name, **search, function_chains=chain))
    flow = chain_flow(SchemaCache(), chains.name, [chain.to_proto()], dict(search))
    ours = drive(
        flow,
        lambda name: pymilvus.MilvusClient.describe_collection(chains.client, name),
        lambda calls: [pymilvus.MilvusClient.search(chains.client, **call) for call in calls],
        _no_rerank,
    )
    _same(lite, _answer(ours), Case(steps=["$score = round_decimal($score, 2)"], search=search))
