"""A search with a function chain that calls one of our rerank models, as a generator of core/flow.py's steps
(``Describe``, ``Searches``, ``Rerank``): the three drivers (both clients and the gateway) carry it out unchanged.

What Milvus does with such a chain, and so what this does (docs/semantics.md, "Milvus 3.0 function chains"):
the first stage is the search as the caller wrote it, without the chain, with the fields the chain reads added to
the output fields; then every op of the chain runs in order over each query's hits, a ``rerank_model`` map
through our engine (batches, deadline, retries, cache, stats) exactly as for the 2.6 Function; the answer holds
``$id`` as the primary key, ``$score`` as the distance, and the fields the caller asked for.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from typing import Any

from pymilvus import Function, FunctionType
from pymilvus.grpc_gen import schema_pb2

from vllm_ranker.core.chain import evaluate
from vllm_ranker.core.chain.decode import MODEL_EXPR, decode, model_providers
from vllm_ranker.core.chain.model import ID, SCORE, ColumnArg, Expr, Op
from vllm_ranker.core.chain.validate import check_search, model_params, refused, validate
from vllm_ranker.core.flow import Describe, Flow, Searches, Step, _done, _nq, _rerank
from vllm_ranker.core.ordering import Candidate, ScoredHit, round_distances
from vllm_ranker.core.provider_config import EMPTY, ProviderConfig
from vllm_ranker.core.results import make_result
from vllm_ranker.core.schema import CollectionInfo, SchemaCache
from vllm_ranker.core.score_cache import ScoreCache
from vllm_ranker.core.search_args import ids_count, refuse_beside_model_ranker
from vllm_ranker.core.spec import RerankSpec, is_model_ranker, parse_ranker
from vllm_ranker.stats import RerankStats


def serves_chain(protos: Sequence[schema_pb2.FunctionChain]) -> bool:
    """Whether we run these chains: one of them calls ``rerank_model`` with a provider we serve (by the same rule
    as a 2.6 Function's). Any other chain, one with no model or a provider we do not serve, is the backend's."""
    return any(is_model_ranker(_model_function({"provider": p}, "text")) for p in model_providers(protos) if p.strip())


def _model_function(params: dict[str, Any], text_field: str, queries: Sequence[str] = ()) -> Function:
    full = dict(params, reranker="model")
    if queries:
        full["queries"] = list(queries)
    return Function(name="rerank_model", function_type=FunctionType.RERANK, input_field_names=[text_field], params=full)


def _info(cache: SchemaCache, collection_name: str) -> Generator[Step, Any, CollectionInfo]:
    info = cache.get(collection_name)
    if info is None:
        info = CollectionInfo.from_describe((yield Describe(collection_name)))
        cache.put(collection_name, info)
    return info


def _model_spec(expr: Expr, info: CollectionInfo, config: ProviderConfig, deadline: float | None) -> RerankSpec:
    """The rerank_model's params as a 2.6 Function's, read by core/spec.py: the same checks, messages, options.
    A caller's deadline (the gateway's gRPC caller) bounds the rerank when the params set no timeout."""
    params = config.fill(model_params(expr), chain=True)
    if deadline is not None and not any(k.lower() == "timeout" for k in params):
        params["timeout"] = str(max(deadline, 0.001))
    arg = expr.args[0]
    text_field = arg.name if isinstance(arg, ColumnArg) and arg.name in info.fields else ""
    if not text_field:  # a literal or a system column: any VARCHAR field passes spec's input check
        text_field = next((f.name for f in info.fields.values() if f.dtype.name == "VARCHAR"), "")
    spec = parse_ranker(_model_function(dict(params), text_field, expr.params["queries"]), info)
    config.check_endpoints([t.url for t in spec.targets], spec.provider.name)  # before the first-stage search
    return spec


# The 2.6 Function's opt-in params (core/shaping.py): core/flow.py applies them around its rerank, but a chain
# reranks the plain texts of one column into one score column, so here they would be read and silently ignored.
_SHAPING = ("chunk", "document_template", "keep_first_stage", "fuse")


def _refuse_shaping(index: int, expr: Expr) -> None:
    """Any shaping param in a chain's rerank_model, named as written (spec reads keys in any case), refused."""
    given = sorted((k for k in expr.params if k.lower() in _SHAPING), key=lambda k: _SHAPING.index(k.lower()))
    if not given:
        return
    names, one = ", ".join(given), len(given) == 1
    raise refused(
        f"function chain op[{index}] expression rerank_model: {names} "
        f"{'is a RERANK Function param' if one else 'are RERANK Function params'}, not applied in a function chain",
        f"drop {names} from the chain's rerank_model, or pass the model as ranker=Function(...) with "
        f"{'it' if one else 'them'} in its params instead (docs/beyond-milvus.md); in a chain, write "
        "the model's score to its own column and combine it with $score by the chain's own ops (map with "
        "num_combine, decay)",
    )


def _is_model(op: Op) -> bool:
    return op.op == "map" and op.expr is not None and op.expr.name == MODEL_EXPR


def chain_flow(
    cache: SchemaCache,
    collection_name: str,
    protos: Sequence[schema_pb2.FunctionChain],
    search_kwargs: dict[str, Any],
    score_cache: ScoreCache | None = None,
    *,
    config: ProviderConfig = EMPTY,
    has_ranker: bool = False,
    deadline: float | None = None,
) -> Flow:
    """``search(..., function_chains=chain)`` with a chain ``serves_chain`` accepts."""
    order_by = search_kwargs.get("order_by_fields") or search_kwargs.get("order_by")
    check_search(len(protos), has_ranker, bool(order_by))
    refuse_beside_model_ranker(search_kwargs)
    chain = decode(protos[0])
    info = yield from _info(cache, collection_name)
    data = search_kwargs.get("data")
    nq = ids_count(data, search_kwargs.get("ids"))
    validated = validate(chain, info, _nq(data) if nq is None else nq)
    for index, op in enumerate(chain.ops):
        if _is_model(op) and op.expr:
            _refuse_shaping(index, op.expr)
    specs = {
        i: _model_spec(op.expr, info, config, deadline) for i, op in enumerate(chain.ops) if _is_model(op) and op.expr
    }

    round_decimal = int(search_kwargs.pop("round_decimal", -1))
    requested = search_kwargs.get("output_fields")
    fetch = list(dict.fromkeys([*(requested or []), *validated.required_fields]))
    call = dict(search_kwargs, collection_name=collection_name, output_fields=fetch)
    call.pop("function_chains", None)
    first = next(iter(specs.values()), None)  # the audit's provider and hosts: the first model's
    stats = RerankStats() if first is None else RerankStats.of(first.provider.name, [t.url for t in first.targets])
    started = time.perf_counter()
    (found,) = yield Searches([call])
    stats.search_seconds = time.perf_counter() - started

    bm25 = _searches_bm25(info, search_kwargs.get("anns_field"), data)
    chunks: list[evaluate.Chunk] = []
    answer_fields: list[dict[Any, dict[str, Any]]] = []  # per query, by primary key: the answer's entity
    for hits in found:
        rows, fields = [], {}
        for hit in hits:
            entity = hit.get("entity") or {}
            row = _row(hit, entity, info, bm25)
            rows.append(row)
            # Taken now, as Milvus returned them: a chain cannot write a collection field.
            fields[row[ID]] = _answer_fields(entity, info.pk_name, requested)
        chunks.append(rows)
        answer_fields.append(fields)
    for index, op in enumerate(chain.ops):
        spec = specs.get(index)
        if spec is None:
            chunks = evaluate.apply(op, chunks)
            continue
        assert op.expr is not None
        texts = [evaluate.column(chunk, op.expr.args[0]) for chunk in chunks]
        candidates = [
            [Candidate(row[ID], "" if t is None else str(t), {}) for row, t in zip(chunk, ts, strict=True)]
            for chunk, ts in zip(chunks, texts, strict=True)
        ]
        queries = list(op.expr.params["queries"])
        scores = yield from _rerank(spec, queries, candidates, stats, score_cache)
        for q, chunk in enumerate(chunks):
            # on_failure=passthrough: the column keeps what it held (the first-stage $score), or 0 when new
            fallback = [row.get(op.outputs[0], 0.0) for row in chunk]
            evaluate.set_column(chunk, op.outputs[0], fallback if scores is None else scores[q])
    ranked = [
        round_distances([ScoredHit(r[ID], float(r[SCORE]), answer_fields[q][r[ID]]) for r in chunk], round_decimal)
        for q, chunk in enumerate(chunks)
    ]
    if first is not None:  # a chain with no model (the differential tests run those) has no rerank to record
        _done(first, stats)
    return make_result(ranked, info.pk_name, {"rerank": stats})


def _searches_bm25(info: CollectionInfo, anns_field: str | None, data: Any) -> bool:
    if anns_field:
        return anns_field in info.bm25_fields
    # No anns_field: Milvus searches the one vector field there is; a text search with a BM25 field is BM25.
    texts = isinstance(data, list) and bool(data) and all(isinstance(d, str) for d in data)
    return texts and bool(info.bm25_fields)


def _row(hit: Any, entity: Any, info: CollectionInfo, bm25: bool) -> evaluate.Row:
    row: evaluate.Row = dict(entity)
    pk = hit[info.pk_name] if info.pk_name in hit else hit.get("id")
    row[ID] = pk
    row[info.pk_name] = pk
    distance = hit.get("distance")
    row[SCORE] = evaluate.first_stage_score(float(distance) if distance is not None else 0.0, bm25)
    return row


def _answer_fields(entity: Any, pk_name: str, requested: Sequence[str] | None) -> dict[str, Any]:
    """The fields the caller asked for (those the chain only read are left out); none when it asked for none."""
    if not requested:
        return {}
    if "*" in requested:
        return dict(entity)
    # The primary key too when asked for by name: pymilvus puts it in the entity then, and so does Milvus Lite.
    return {n: entity[n] for n in requested if n in entity and n not in (ID, SCORE)}
