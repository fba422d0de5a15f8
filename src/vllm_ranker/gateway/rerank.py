"""Search and HybridSearch with a model ranker: the gateway as the third driver of the core's flow.

The flow (core/flow.py) is the one the Python clients run: validation, first stage, batching, ordering, paging.
The gateway carries its steps out with protos over its backend channel (core/driver.py): Describe is a
DescribeCollection with the caller's metadata; each search of Searches is the caller's own request at the same
position (the search, or the hybrid search's sub-request), changed only where the flow changed it (output fields,
limit, offset, rounding, ranker removed); Rerank goes out through the gateway's one HTTP transport. So filters,
vectors of every type, expression templates, consistency, partitions and namespaces reach the backend exactly as
the SDK encoded them, and the answer reuses the backend's encoding of every output field (rows.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymilvus.client.abstract import CollectionSchema
from pymilvus.client.search_result import SearchResult
from pymilvus.client.utils import check_status
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from vllm_ranker import AnnSearchRequest, Function, FunctionType, RerankParamError
from vllm_ranker.core import (
    DEFAULT_CACHE_SIZE,
    ITERATOR_KEYS,
    NO_PROVIDER_CONFIG,
    Flow,
    ProviderConfig,
    Rerank,
    SchemaCache,
    ScoreCache,
    Tokenize,
    chain_flow,
    drive,
    foreign_provider,
    hybrid_flow,
    is_iterator_search,
    is_model_ranker,
    refuse_iterator_rerank,
    search_flow,
    serves_chain,
)
from vllm_ranker.transport import DEFAULT_CLIENT_LIMIT, SyncTransport

from .audit import Audit
from .backend import Backend
from .function_score import keep_boosts, ranker_function
from .kv import int_param as _int
from .kv import kv as _kv
from .kv import set_kv as _set_kv
from .rows import flow_hits, reranked_answer

SERVICE = "/milvus.proto.milvus.MilvusService/"
SEARCH = SERVICE + "Search"
HYBRID_SEARCH = SERVICE + "HybridSearch"
DESCRIBE = SERVICE + "DescribeCollection"
MAX_STATES = 64  # one schema cache and score cache per (database, credentials) seen lately

Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True, slots=True)
class Judged:
    """What a Search/HybridSearch request asks of the gateway, read from its bytes once."""

    request: Any = None  # the SearchRequest / HybridSearchRequest; None when it does not parse (the backend's)
    function: Function | None = None  # a model ranker the gateway serves
    refused: Exception | None = None  # a ranker pymilvus refuses to build: answered with its message
    foreign: str | None = None  # the provider of a model ranker the gateway does not serve (the backend may)
    chains: tuple[schema_pb2.FunctionChain, ...] | None = None  # function chains calling a rerank model we serve


def judge(method: str, payload: bytes) -> Judged:
    try:
        request = (milvus_pb2.SearchRequest if method == SEARCH else milvus_pb2.HybridSearchRequest).FromString(payload)
    except Exception:
        return Judged()
    if method == SEARCH and is_iterator_search(_kv(request.search_params)):
        try:  # an iterator page with a rerank-model function chain: Milvus's refusal (the flow refuses the rest)
            refuse_iterator_rerank(False, request.function_chains)
        except RerankParamError as exc:
            return Judged(request, refused=exc)
    if method == SEARCH and request.function_chains and serves_chain(request.function_chains):
        return Judged(request, chains=tuple(request.function_chains))  # Milvus 3.0 function chains (core/chain/)
    if not request.HasField("function_score"):
        return Judged(request)
    try:
        function = ranker_function(request.function_score, hybrid=method != SEARCH)
    except Exception as exc:
        return Judged(request, refused=exc)
    if is_model_ranker(function):
        return Judged(request, function)
    return Judged(request, foreign=foreign_provider(function))


def with_deadline(function: Function, deadline: float | None) -> Function:
    """A caller's gRPC deadline becomes the rerank's ``timeout`` when the params set none, so the HTTP calls stop
    when the caller has stopped waiting."""
    params = dict(function.params or {})
    if deadline is None or any(key.lower() == "timeout" for key in params):
        return function
    params["timeout"] = str(max(deadline, 0.001))
    return Function(
        name=function.name,
        function_type=FunctionType.RERANK,
        input_field_names=list(function.input_field_names),
        params=params,
    )


@dataclass
class _State:
    """What the Python client keeps per client, kept per (database, credentials): the schema a caller validates
    against was read with that caller's own rights."""

    schemas: SchemaCache = field(default_factory=SchemaCache)
    scores: ScoreCache = field(default_factory=lambda: ScoreCache(DEFAULT_CACHE_SIZE))


@dataclass
class _Steps:
    """The flow's steps for one gRPC call, carried out with protos; keeps the backend's first-stage answers, whose
    rows the reranked answer is made of."""

    backend: Backend
    metadata: Metadata
    timeout: float | None
    db_name: str
    text_field: str
    requests: list[milvus_pb2.SearchRequest]  # the caller's own, one per search of the flow's Searches step
    schemas: SchemaCache
    transport: SyncTransport
    answers: list[schema_pb2.SearchResultData] = field(default_factory=list)
    session_ts: int = 0
    whole_rows: bool = False  # a function chain reads any field: the hits as pymilvus decodes them
    audit: Audit | None = None  # the call's audit line: told what the rerank asks (audit.py)
    fetched: tuple[str, ...] = ()  # the fields the flow asked the backend for (a template's fields among them)

    def describe(self, collection_name: str) -> dict[str, Any]:
        request = milvus_pb2.DescribeCollectionRequest(db_name=self.db_name, collection_name=collection_name)
        raw = self.backend.call(DESCRIBE, request.SerializeToString(), self.metadata, self.timeout)
        answer = milvus_pb2.DescribeCollectionResponse.FromString(raw)
        check_status(answer.status)
        described: dict[str, Any] = CollectionSchema(raw=answer).dict()
        return described

    def searches(self, calls: list[dict[str, Any]]) -> list[list[list[dict[str, Any]]]]:
        # The flow makes its calls in the order of the requests (one for a search, one per sub-request).
        return [self._search(own, call) for own, call in zip(self.requests, calls, strict=True)]

    def _search(self, own: milvus_pb2.SearchRequest, call: dict[str, Any]) -> list[list[dict[str, Any]]]:
        request = milvus_pb2.SearchRequest()
        request.CopyFrom(own)
        keep_boosts(request)  # of its function_score, Milvus applies only the boosts in the first stage's plan
        request.ClearField("function_chains")  # the flow runs the chain: the backend runs the first stage only
        del request.output_fields[:]
        request.output_fields.extend(call.get("output_fields") or [])
        self.fetched = tuple(call.get("output_fields") or ())
        offset = int(call.get("offset") or (call.get("search_params") or {}).get("offset") or 0)
        _set_kv(request.search_params, topk=int(call["limit"]), offset=offset, round_decimal=-1)
        raw = self.backend.call(SEARCH, request.SerializeToString(), self.metadata, self.timeout)
        answer = milvus_pb2.SearchResults.FromString(raw)
        check_status(answer.status)
        self.answers.append(answer.results)
        self.session_ts = max(self.session_ts, answer.session_ts)
        if self.whole_rows:
            return list(SearchResult(answer.results))
        info = self.schemas.get(call["collection_name"])  # what the flow read the primary key's name from
        pk_name = info.pk_name if info else answer.results.primary_field_name or "id"
        return flow_hits(answer.results, pk_name, self.text_field, max(request.nq, answer.results.num_queries))

    def rerank(self, step: Rerank) -> list[list[float]]:
        if self.audit is not None:
            self.audit.saw_rerank(step.spec, step.stats)
        return self.transport.rerank(step.spec, step.batches, step.stats, step.deadline)

    def tokenize(self, step: Tokenize) -> list[list[str]]:
        return self.transport.tokenize(step.spec, step.texts, step.stats, step.deadline)


class Reranker:
    """Serves the reranked searches: the flow's state per (database, credentials), one HTTP transport for all."""

    def __init__(self, backend: Backend, config: ProviderConfig = NO_PROVIDER_CONFIG) -> None:
        self.backend = backend
        self.config = config  # the providers' keys, URLs and enable (--config): what Milvus reads from milvus.yaml
        self._states: dict[tuple[str, str], _State] = {}
        self._lock = threading.Lock()
        self._transport: SyncTransport | None = None

    def _state(self, db_name: str, metadata: Metadata) -> _State:
        auth = next((v for k, v in metadata if k == "authorization"), "")
        key = (db_name, hashlib.sha256(auth if isinstance(auth, bytes) else auth.encode()).hexdigest())
        with self._lock:
            found = self._states.get(key)
            if found is None:
                if len(self._states) >= MAX_STATES:
                    self._states.pop(next(iter(self._states)))
                found = self._states[key] = _State()
            return found

    def _http(self) -> SyncTransport:
        # Made on first use, under the lock: every search shares one HTTP pool and one client-wide limit.
        with self._lock:
            if self._transport is None:
                self._transport = SyncTransport(DEFAULT_CLIENT_LIMIT, policy=self.config.policy)
            return self._transport

    def close(self) -> None:
        """Close the HTTP pool (after the server stopped: no search is using it any more)."""
        with self._lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def forget(self, db_name: str | None, collection_name: str | None) -> None:
        """A schema may have changed (a schema-changing call was forwarded): drop what is cached of the collection
        in that database, or of every collection everywhere (None, None)."""
        with self._lock:
            states = [s for (db, _), s in self._states.items() if db_name is None or db == db_name]
        for state in states:
            state.schemas.forget(collection_name)

    def answer_chain(
        self,
        request: milvus_pb2.SearchRequest,
        chains: Sequence[schema_pb2.FunctionChain],
        metadata: Metadata,
        timeout: float | None,
        db_name: str,
        audit: Audit | None = None,
    ) -> milvus_pb2.SearchResults:
        """The answer of a Search with a function chain calling one of our rerank models (core/chain/)."""
        state = self._state(db_name, metadata)
        steps = _Steps(self.backend, metadata, timeout, db_name, "", [request], state.schemas, self._http())
        steps.whole_rows, steps.audit = True, audit
        flow, limit = _chain_flow(request, chains, state, self.config, timeout)
        result = drive(flow, steps.describe, steps.searches, steps.rerank, steps.tokenize)
        if audit is not None:
            audit.saw_stats(result.extra["rerank"])
        fetched = list(steps.answers[0].output_fields) if steps.answers else []
        data = reranked_answer(result, steps.answers, "", limit, list(request.output_fields), fetched)
        return milvus_pb2.SearchResults(
            status=common_pb2.Status(),
            results=data,
            collection_name=request.collection_name,
            session_ts=steps.session_ts,
        )

    def answer(
        self,
        method: str,
        request: Any,
        function: Function,
        metadata: Metadata,
        timeout: float | None,
        db_name: str,
        audit: Audit | None = None,
    ) -> milvus_pb2.SearchResults:
        """The reranked answer of a Search (``request`` a SearchRequest) or HybridSearch (a HybridSearchRequest)."""
        state = self._state(db_name, metadata)
        text_field = function.input_field_names[0] if function.input_field_names else ""
        requests = [request] if method == SEARCH else sub_requests(request)
        steps = _Steps(self.backend, metadata, timeout, db_name, text_field, requests, state.schemas, self._http())
        steps.audit = audit
        if method == SEARCH:
            flow, limit = _search_flow(request, function, state, self.config)
        else:
            flow, limit = _hybrid_flow(request, requests, function, state, self.config)
        result = drive(flow, steps.describe, steps.searches, steps.rerank, steps.tokenize)
        if audit is not None:
            audit.saw_stats(result.extra["rerank"])
        data = reranked_answer(result, steps.answers, text_field, limit, list(request.output_fields), steps.fetched)
        return milvus_pb2.SearchResults(
            status=common_pb2.Status(),
            results=data,
            collection_name=request.collection_name,
            session_ts=steps.session_ts,
        )


def _search_kwargs(request: milvus_pb2.SearchRequest) -> dict[str, Any]:
    """What ``MilvusClient.search`` would have been given, from what the SDK encoded: the arguments the flows read,
    and those they refuse beside a model ranker (core/search_args.py)."""
    kv = _kv(request.search_params)
    offset = _int(kv.get("offset"), 0)
    kwargs: dict[str, Any] = dict(
        data=_queries_data(request.placeholder_group, request.nq, request.ids),
        limit=_int(kv.get("topk"), 10),
        output_fields=list(request.output_fields),
        search_params={"offset": offset} if offset else {},
        round_decimal=_int(kv.get("round_decimal"), -1),
        anns_field=kv.get("anns_field") or None,
    )
    if kv.get("group_by_field"):
        kwargs["group_by_field"] = kv["group_by_field"]  # the flow refuses grouping with a model ranker
    kwargs.update({key: kv[key] for key in (*ITERATOR_KEYS, "order_by_fields") if kv.get(key)})
    kwargs.update(search_aggregation=request.HasField("search_aggregation") or None)
    kwargs.update(highlighter=request.HasField("highlighter") or None)
    return kwargs


def _chain_flow(
    request: milvus_pb2.SearchRequest,
    chains: Sequence[schema_pb2.FunctionChain],
    state: _State,
    config: ProviderConfig,
    deadline: float | None,
) -> tuple[Flow, int]:
    """The flow of a search with a function chain."""
    kwargs = _search_kwargs(request)
    flow = chain_flow(
        state.schemas,
        request.collection_name,
        list(chains),
        kwargs,
        state.scores,
        config=config,
        has_ranker=request.HasField("function_score"),
        deadline=deadline,
    )
    return flow, kwargs["limit"]


def _search_flow(
    request: milvus_pb2.SearchRequest, function: Function, state: _State, config: ProviderConfig = NO_PROVIDER_CONFIG
) -> tuple[Flow, int]:
    """The flow of a search with a model ranker, and its limit."""
    kwargs = _search_kwargs(request)
    flow = search_flow(state.schemas, request.collection_name, function, kwargs, state.scores, config=config)
    return flow, kwargs["limit"]


def _hybrid_flow(
    request: milvus_pb2.HybridSearchRequest,
    subs: list[milvus_pb2.SearchRequest],
    function: Function,
    state: _State,
    config: ProviderConfig = NO_PROVIDER_CONFIG,
) -> tuple[Flow, int]:
    """The flow of a hybrid search and its limit, from what the SDK encoded."""
    reqs = []
    for sub in subs:
        sub_kv = _kv(sub.search_params)
        data = _queries_data(sub.placeholder_group, sub.nq, sub.ids)
        reqs.append(AnnSearchRequest(data, sub_kv.get("anns_field", ""), {}, _int(sub_kv.get("topk"), 10)))
    kv = _kv(request.rank_params)
    limit = _int(kv.get("limit"), 10)
    common: dict[str, Any] = dict(
        output_fields=list(request.output_fields),
        offset=_int(kv.get("offset"), 0),
        round_decimal=_int(kv.get("round_decimal"), -1),
    )
    if kv.get("group_by_field"):
        common["group_by_field"] = kv["group_by_field"]
    flow = hybrid_flow(
        state.schemas, request.collection_name, reqs, function, limit, common, state.scores, config=config
    )
    return flow, limit


def sub_requests(request: milvus_pb2.HybridSearchRequest) -> list[milvus_pb2.SearchRequest]:
    """Each sub-request as a search of its own, with what the SDK put on the hybrid request only."""
    subs = []
    for sub in request.requests:
        own = milvus_pb2.SearchRequest()
        own.CopyFrom(sub)
        own.collection_name = own.collection_name or request.collection_name
        own.db_name = own.db_name or request.db_name
        if not own.partition_names:
            own.partition_names.extend(request.partition_names)
        # The SDKs put the consistency of a hybrid search on each sub-request too; the default flag is top-level.
        own.guarantee_timestamp = own.guarantee_timestamp or request.guarantee_timestamp
        own.use_default_consistency = request.use_default_consistency
        own.namespace = own.namespace or request.namespace
        subs.append(own)
    return subs


def _queries_data(placeholder_group: bytes, nq: int, ids: schema_pb2.IDs) -> list[Any]:
    """What the flow needs of the searched data: the texts of a text search, else one stand-in per vector."""
    if placeholder_group:
        group = common_pb2.PlaceholderGroup.FromString(placeholder_group)
        if group.placeholders:
            holder = group.placeholders[0]
            if holder.type == common_pb2.PlaceholderType.VarChar:
                return [bytes(v).decode("utf-8", "replace") for v in holder.values]
            nq = nq or len(holder.values)
    kind = ids.WhichOneof("id_field")
    if not nq and kind:
        nq = len(getattr(ids, kind).data)
    return [b""] * max(nq, 1)
