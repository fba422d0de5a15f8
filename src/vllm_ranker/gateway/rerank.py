"""Search and HybridSearch with a model ranker, answered by the project's own client.

The request is turned into a call of ``vllm_ranker.MilvusClient.search`` / ``.hybrid_search`` (validation, first
stage, batching, transport, ordering and paging: the one implementation the Python clients use). That client's
pymilvus layer (``describe_collection`` and ``search``) is replaced by ``_ProtoLayer``: it sends the caller's own
request protos to the backend, changed only where the ranker's flow changed them (output fields, limit, offset,
rounding, ranker removed), with the caller's metadata. So filters, vectors of every type, expression templates,
consistency, partitions and namespaces reach the backend exactly as the SDK encoded them, and the answer reuses
the backend's encoding of every output field (rows.py) instead of decoding and re-encoding entities.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pymilvus
from pymilvus.client.abstract import CollectionSchema
from pymilvus.client.utils import check_status
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from vllm_ranker import AnnSearchRequest, Function, FunctionType, MilvusClient
from vllm_ranker.core.spec import foreign_provider, is_model_ranker  # the rules of what a ranker is

from .backend import Backend
from .rows import take_rows

SERVICE = "/milvus.proto.milvus.MilvusService/"
SEARCH = SERVICE + "Search"
HYBRID_SEARCH = SERVICE + "HybridSearch"
DESCRIBE = SERVICE + "DescribeCollection"
# Marks which of a hybrid request's sub-requests a first-stage search of the flow stands for.
SUB_KEY = "__vllm_ranker_gateway_sub_request__"
MAX_CLIENTS = 64  # one client (schema cache, HTTP pool) per (database, credentials) seen lately


@dataclass
class _Call:
    """What the replaced pymilvus layer needs of the gRPC call being served (kept per thread: the flow calls
    ``describe_collection(name)`` with nothing else)."""

    backend: Backend
    metadata: Sequence[tuple[str, str | bytes]]
    timeout: float | None
    db_name: str
    text_field: str
    requests: list[milvus_pb2.SearchRequest]
    answers: list[schema_pb2.SearchResultData] = field(default_factory=list)
    session_ts: int = 0


_current = threading.local()


def _call() -> _Call:
    call: _Call | None = getattr(_current, "call", None)
    if call is None:  # pragma: no cover - only the gateway drives these clients
        raise RuntimeError("gateway client used outside of a gateway call")
    return call


class _ProtoLayer(pymilvus.MilvusClient):  # type: ignore[misc]
    """The pymilvus layer under ``GatewayClient``: no connection of its own; describe and search go as protos
    over the gateway's backend channel. Schema-changing methods are no-ops: the gateway has forwarded the
    caller's RPC already, and calling them on the client only makes it forget its cached schema."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pk_names: dict[str, str] = {}

    def describe_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        call = _call()
        request = milvus_pb2.DescribeCollectionRequest(db_name=call.db_name, collection_name=collection_name)
        raw = call.backend.call(DESCRIBE, request.SerializeToString(), call.metadata, call.timeout)
        answer = milvus_pb2.DescribeCollectionResponse.FromString(raw)
        check_status(answer.status)
        described: dict[str, Any] = CollectionSchema(raw=answer).dict()
        for spec in described.get("fields", []):
            if spec.get("is_primary"):
                self._pk_names[collection_name] = spec["name"]
        return described

    def search(self, collection_name: str, *args: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
        call = _call()
        params = dict(kwargs.get("search_params") or {})
        request = milvus_pb2.SearchRequest()
        request.CopyFrom(call.requests[int(params.pop(SUB_KEY, 0))])
        request.ClearField("function_score")
        del request.output_fields[:]
        request.output_fields.extend(kwargs.get("output_fields") or [])
        offset = int(kwargs.get("offset") or params.get("offset") or 0)
        _set_kv(request.search_params, topk=int(kwargs["limit"]), offset=offset, round_decimal=-1)
        raw = call.backend.call(SEARCH, request.SerializeToString(), call.metadata, call.timeout)
        answer = milvus_pb2.SearchResults.FromString(raw)
        check_status(answer.status)
        call.answers.append(answer.results)
        call.session_ts = max(call.session_ts, answer.session_ts)
        pk_name = self._pk_names.get(collection_name) or answer.results.primary_field_name or "id"
        return _hits(answer.results, pk_name, call.text_field, max(request.nq, answer.results.num_queries))

    def create_collection(self, *args: Any, **kwargs: Any) -> None:
        return None

    def drop_collection(self, *args: Any, **kwargs: Any) -> None:
        return None

    def rename_collection(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_collection_field(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


class GatewayClient(MilvusClient, _ProtoLayer):
    """``vllm_ranker.MilvusClient`` over ``_ProtoLayer``: its flow calls ``super().search`` and
    ``super().describe_collection``, which the method order resolves to ``_ProtoLayer``."""


def _set_kv(pairs: Any, **values: Any) -> None:
    for key, value in values.items():
        for pair in pairs:
            if pair.key == key:
                pair.value = str(value)
                break
        else:
            pairs.append(common_pb2.KeyValuePair(key=key, value=str(value)))


def _kv(pairs: Any) -> dict[str, str]:
    return {pair.key: pair.value for pair in pairs}


def _int(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(json.loads(raw))
    except (ValueError, TypeError):
        return default


def _hits(results: schema_pb2.SearchResultData, pk_name: str, text_field: str, nq: int) -> list[list[dict[str, Any]]]:
    """Each query's hits in the shape the flow reads from pymilvus (pk, distance, the text in the entity)."""
    kind = results.ids.WhichOneof("id_field")
    ids: Sequence[Any] = getattr(results.ids, kind).data if kind else []
    texts = next((f.scalars.string_data.data for f in results.fields_data if f.field_name == text_field), None)
    out: list[list[dict[str, Any]]] = []
    start = 0
    for count in results.topks:
        out.append(
            [
                {pk_name: ids[r], "distance": results.scores[r], "entity": {text_field: texts[r] if texts else ""}}
                for r in range(start, start + count)
            ]
        )
        start += count
    out.extend([] for _ in range(nq - len(out)))
    return out


@dataclass(frozen=True, slots=True)
class Judged:
    """What a Search/HybridSearch request asks of the gateway, read from its bytes once."""

    request: Any = None  # the SearchRequest / HybridSearchRequest; None when it does not parse (the backend's)
    function: Function | None = None  # a model ranker the gateway serves
    refused: Exception | None = None  # a ranker pymilvus refuses to build: answered with its message
    foreign: str | None = None  # the provider of a model ranker the gateway does not serve (the backend may)


def judge(method: str, payload: bytes) -> Judged:
    try:
        request = (milvus_pb2.SearchRequest if method == SEARCH else milvus_pb2.HybridSearchRequest).FromString(payload)
    except Exception:
        return Judged()
    if not request.HasField("function_score"):
        return Judged(request)
    try:
        function = ranker_function(request.function_score)
    except Exception as exc:
        return Judged(request, refused=exc)
    if is_model_ranker(function):
        return Judged(request, function)
    return Judged(request, foreign=foreign_provider(function))


def ranker_function(function_score: schema_pb2.FunctionScore) -> Function | None:
    """A lone RERANK function as a pymilvus ``Function`` (raises what pymilvus raises for a bad one), else None."""
    if len(function_score.functions) != 1 or len(function_score.params):
        return None
    schema = function_score.functions[0]
    if schema.type != FunctionType.RERANK:
        return None
    return Function(
        name=schema.name or "ranker",
        function_type=FunctionType.RERANK,
        input_field_names=list(schema.input_field_names),
        params={pair.key: pair.value for pair in schema.params},
    )


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


class Reranker:
    """Serves the reranked searches: one ``GatewayClient`` per (database, credentials), so the schema a caller
    validates against was read with that caller's own rights."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._clients: dict[tuple[str, str], GatewayClient] = {}
        self._lock = threading.Lock()

    def client(self, db_name: str, metadata: Sequence[tuple[str, str | bytes]]) -> GatewayClient:
        auth = next((v for k, v in metadata if k == "authorization"), "")
        key = (db_name, hashlib.sha256(auth if isinstance(auth, bytes) else auth.encode()).hexdigest())
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                if len(self._clients) >= MAX_CLIENTS:
                    # Dropped, not closed: a search of another thread may still be using its HTTP pool.
                    self._clients.pop(next(iter(self._clients)))
                found = self._clients[key] = GatewayClient(uri=self.backend.uri)
            return found

    def close(self) -> None:
        """Close the HTTP pools (after the server stopped: no search is using them any more)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def forget(self, db_name: str, collection_name: str) -> None:
        """A collection's schema may have changed (create/drop/rename/alter forwarded): drop cached schemas."""
        with self._lock:
            clients = [c for (db, _), c in self._clients.items() if db == db_name]
        for client in clients:
            client.drop_collection(collection_name)  # forgets the cached schema; _ProtoLayer sends nothing

    def search(self, request: milvus_pb2.SearchRequest, function: Function, call: _Call) -> milvus_pb2.SearchResults:
        kv = _kv(request.search_params)
        offset = _int(kv.get("offset"), 0)
        kwargs: dict[str, Any] = dict(
            data=_queries_data(request.placeholder_group, request.nq, request.ids),
            limit=_int(kv.get("topk"), 10),
            output_fields=list(request.output_fields),
            search_params={"offset": offset} if offset else {},
            round_decimal=_int(kv.get("round_decimal"), -1),
            anns_field=kv.get("anns_field") or None,
            timeout=call.timeout,
        )
        if kv.get("group_by_field"):
            kwargs["group_by_field"] = kv["group_by_field"]
        result = self._run(call, lambda client: client.search(request.collection_name, ranker=function, **kwargs))
        return _answer(request.collection_name, call, result, kwargs["limit"], list(request.output_fields))

    def hybrid_search(
        self, request: milvus_pb2.HybridSearchRequest, function: Function, call: _Call
    ) -> milvus_pb2.SearchResults:
        kv = _kv(request.rank_params)
        reqs = []
        for index, sub in enumerate(call.requests):
            sub_kv = _kv(sub.search_params)
            data = _queries_data(sub.placeholder_group, sub.nq, sub.ids)
            reqs.append(
                AnnSearchRequest(data, sub_kv.get("anns_field", ""), {SUB_KEY: index}, _int(sub_kv.get("topk"), 10))
            )
        limit = _int(kv.get("limit"), 10)
        kwargs: dict[str, Any] = dict(
            limit=limit,
            output_fields=list(request.output_fields),
            offset=_int(kv.get("offset"), 0),
            round_decimal=_int(kv.get("round_decimal"), -1),
            timeout=call.timeout,
        )
        if kv.get("group_by_field"):
            kwargs["group_by_field"] = kv["group_by_field"]  # the flow refuses grouping with a model ranker
        result = self._run(
            call, lambda client: client.hybrid_search(request.collection_name, reqs, ranker=function, **kwargs)
        )
        return _answer(request.collection_name, call, result, limit, list(request.output_fields))

    def _run(self, call: _Call, search: Any) -> Any:
        client = self.client(call.db_name, call.metadata)
        _current.call = call
        try:
            return search(client)
        finally:
            _current.call = None


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


def _answer(
    collection_name: str, call: _Call, result: Any, limit: int, requested: list[str]
) -> milvus_pb2.SearchResults:
    """The reranked hits as Milvus shapes a search answer: ids, scores, topks, the requested fields' rows."""
    added = call.text_field not in requested and "*" not in requested  # fetched for the ranker only
    drop = frozenset([call.text_field]) if added else frozenset()
    data = schema_pb2.SearchResultData(num_queries=len(result), top_k=limit)
    answers = call.answers
    first = answers[0] if answers else schema_pb2.SearchResultData()
    pk_kind = first.ids.WhichOneof("id_field") or "int_id"
    picks: list[tuple[int, int]] = []
    for q, hits in enumerate(result):
        where: dict[Any, tuple[int, int]] = {}
        for a, answer in enumerate(answers):
            start = sum(answer.topks[:q])
            kind = answer.ids.WhichOneof("id_field")
            if kind is None or q >= len(answer.topks):
                continue
            ids = getattr(answer.ids, kind).data
            for row in range(start, start + answer.topks[q]):
                where.setdefault(ids[row], (a, row))  # first occurrence wins, like the flow's union
        for pk in hits.ids:
            picks.append(where[pk])
        getattr(data.ids, pk_kind).data.extend(hits.ids)
        data.scores.extend(float(d) for d in hits.distances)
        data.topks.append(len(hits))
    data.fields_data.extend(take_rows(answers, picks, drop))
    data.output_fields.extend(f for f in first.output_fields if f not in drop)
    data.primary_field_name = first.primary_field_name
    data.all_search_count = sum(a.all_search_count for a in answers)
    return milvus_pb2.SearchResults(
        status=common_pb2.Status(), results=data, collection_name=collection_name, session_ts=call.session_ts
    )
