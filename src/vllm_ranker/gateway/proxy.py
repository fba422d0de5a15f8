"""The gRPC handler: every method forwarded as raw bytes, except the searches a model ranker reranks.

Bytes in, bytes out: the gateway does not parse what it forwards, so new Milvus methods and fields pass through
an old gateway unchanged. Search/HybridSearch are parsed, once per call, only to look for a model ranker in
``function_score``; one whose provider the gateway does not serve goes to the backend as it came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from vllm_ranker import RerankParamError, RerankTimeout
from vllm_ranker.core import SCHEMA_CHANGES as SCHEMA_CHANGING_CALLS
from vllm_ranker.core import unknown_everywhere
from vllm_ranker.transport import cancel_scope

from . import metrics
from .audit import Audit
from .backend import Backend, deadline_of, forwarded_metadata
from .rerank import HYBRID_SEARCH, SEARCH, SERVICE, Judged, Reranker, judge, with_deadline
from .status import answer_with_status, status_of, unavailable

log = logging.getLogger(__name__)
# A rerank that timed out with less than this left of the caller's deadline was cut by that deadline.
_DEADLINE_SLACK_S = 0.05

_SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
# Forwarded RPCs after which a cached schema may be stale: core/schema.py's one list, shared with the Python
# clients; the whole cache is dropped after those that may concern other collections than the one they name.
SCHEMA_CHANGES = frozenset(SERVICE + change.rpc for change in SCHEMA_CHANGING_CALLS)
_CHANGES_ALL = frozenset(SERVICE + change.rpc for change in SCHEMA_CHANGING_CALLS if change.whole)
# Requests judged by ``claims`` waiting for their ``unary_call`` (the splicing front calls both, from two threads,
# with the same bytes): enough for every worker of the gateway; past it a request is only read twice.
JUDGED_KEPT = 256

Metadata = Sequence[tuple[str, str | bytes]]


class GatewayHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, backend: Backend, reranker: Reranker) -> None:
        self.backend = backend
        self.reranker = reranker
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        # Providers the gateway does not serve that the backend answered a search with: bounded by the backend's
        # own table (only a provider it serves is ever added).
        self._backend_serves: set[str] = set()
        self._judged: OrderedDict[int, tuple[bytes, Judged]] = OrderedDict()
        self._judged_lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        found = self._handlers.get(method)
        if found is None:
            found = self._handlers[method] = self._make_handler(method)
        return found

    def _make_handler(self, method: str) -> grpc.RpcMethodHandler:
        service, _, name = method.lstrip("/").rpartition("/")
        described = _SERVICE.methods_by_name.get(name) if service == _SERVICE.full_name else None
        client_streaming = bool(described and described.client_streaming)
        server_streaming = bool(described and described.server_streaming)
        if client_streaming or server_streaming:
            return _streaming_handler(self.backend, method, client_streaming, server_streaming)

        def unary(payload: bytes, context: grpc.ServicerContext) -> bytes:
            return self.unary_call(method, payload, context)

        return grpc.unary_unary_rpc_method_handler(unary)  # unknown methods: unary, the common case

    def claims(self, method: str, payload: bytes) -> bool:
        """Whether the gateway answers this call itself: a Search/HybridSearch with a model ranker it serves, with
        a ranker pymilvus refuses to build (answered with its message), or with a provider the backend has not
        yet been seen serving (forwarded by the handler, to name both tables if the backend refuses it too). A
        request that does not parse is the backend's to refuse."""
        if method not in (SEARCH, HYBRID_SEARCH):
            return False
        judged = judge(method, payload)
        if judged.foreign is not None:
            ours = judged.foreign.lower() not in self._backend_serves
        else:
            ours = judged.function is not None or judged.refused is not None or judged.chains is not None
        if ours:  # read once: kept for the unary_call that follows
            with self._judged_lock:
                self._judged[id(payload)] = (payload, judged)  # holding the bytes keeps their id unique
                if len(self._judged) > JUDGED_KEPT:
                    self._judged.popitem(last=False)
        return ours

    def _judge(self, method: str, payload: bytes) -> Judged:
        """The request as ``claims`` read it, or read now (a call the front did not judge, or the gRPC server's)."""
        with self._judged_lock:
            kept = self._judged.pop(id(payload), None)
        if kept is not None and kept[0] is payload:
            return kept[1]
        return judge(method, payload)

    def unary_call(self, method: str, payload: bytes, context: grpc.ServicerContext) -> bytes:
        """One unary call: reranked when it is ours, else forwarded; ``context`` is the gRPC server's or the
        splicing front's ``LocalCall``."""
        started = time.perf_counter()
        route, outcome = "passthrough", "ok"
        audit: Audit | None = None  # the audit line of a search the gateway answers itself (audit.py)
        try:
            caller = context.invocation_metadata()
            metadata = forwarded_metadata(caller, self.backend.token_header)
            timeout = deadline_of(context.time_remaining())
            foreign = None
            if method in (SEARCH, HYBRID_SEARCH):
                judged = self._judge(method, payload)
                foreign = judged.foreign
                if judged.refused is not None or judged.function is not None or judged.chains is not None:
                    route = "rerank"
                    audit = Audit.of_call(method, judged.request, context, metadata, caller)
                if judged.refused is not None:  # pymilvus refused to build the Function: answer its message
                    outcome, status = "error", status_of(judged.refused)
                    assert audit is not None
                    audit.outcome = f"error:{status.code}"
                    return _search_failed(status)
                if audit is not None:
                    answer, outcome = self._rerank(method, judged, metadata, timeout, context, audit)
                    return answer
            try:
                answer = self.backend.call(method, payload, metadata, timeout)
            except grpc.RpcError as exc:
                outcome = exc.code().name if hasattr(exc, "code") else "error"
                return self._backend_failed(method, exc, context)
            if method in SCHEMA_CHANGES:
                self.forget(method, payload, metadata)
            if foreign is not None and foreign.lower() not in self._backend_serves:
                answer, outcome = self._foreign_answer(foreign, answer)
            return answer
        finally:
            if audit is not None:
                audit.emit()
            metrics.observe(method, route, outcome, time.perf_counter() - started)

    def _foreign_answer(self, provider: str, answer: bytes) -> tuple[bytes, str]:
        """The backend's answer to a search with a provider the gateway does not serve, as it is; a refusal of the
        provider as unknown becomes Milvus's message naming what the gateway and the backend serve. A provider
        the backend served once is released to it by the splicing front from then on (``claims``)."""
        status = milvus_pb2.SearchResults.FromString(answer).status
        if status.code == 0 and status.error_code == 0:
            self._backend_serves.add(provider.lower())
            return answer, "ok"
        message = unknown_everywhere(provider, status.reason)
        if message is None:
            return answer, "error"
        return _search_failed(status_of(RerankParamError(message))), "error"

    def _backend_failed(self, method: str, exc: grpc.RpcError, context: grpc.ServicerContext) -> bytes:
        code: grpc.StatusCode = exc.code()
        details: str = exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            body = answer_with_status(method, unavailable(self.backend.uri, details))
            if body is not None:
                return body
            details = f"the gateway cannot reach the Milvus backend {self.backend.uri} ({details})"
        context.abort(code, details)  # the backend's own code (UNIMPLEMENTED, DEADLINE_EXCEEDED, ...)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises

    def _rerank(
        self,
        method: str,
        judged: Judged,
        metadata: Metadata,
        timeout: float | None,
        context: grpc.ServicerContext,
        audit: Audit,
    ) -> tuple[bytes, str]:
        """The answer of a reranked search (a model ranker, or a function chain calling a model) and its outcome;
        ``audit`` learns what was asked and how it ended."""
        request = judged.request
        if judged.function is not None:
            params = judged.function.params or {}
            audit.saw_function(params.get("provider"), params)
        elif judged.chains is not None:
            audit.saw_chains(judged.chains)
        db_name = request.db_name or _first(metadata, "dbname")
        # A caller that cancels or hangs up (with or without a deadline) ends the rerank's HTTP requests at once,
        # instead of leaving the service working for nobody until the rerank timeout.
        gone = threading.Event()
        context.add_callback(gone.set)
        try:
            with cancel_scope(gone):
                if judged.chains is not None:
                    answer = self.reranker.answer_chain(request, judged.chains, metadata, timeout, db_name, audit)
                else:
                    assert judged.function is not None
                    function = with_deadline(judged.function, timeout)
                    answer = self.reranker.answer(method, request, function, metadata, timeout, db_name, audit)
            audit.outcome = "ok"
            return answer.SerializeToString(), "ok"
        except grpc.RpcError as exc:
            code = exc.code()
            audit.outcome = f"error:{code.name}"
            if code != grpc.StatusCode.UNAVAILABLE:
                context.abort(code, exc.details() or "")
            status = unavailable(self.backend.uri, exc.details() or "")
        except Exception as exc:  # every failure becomes a Status: the SDK raises it, the gateway stays up
            if isinstance(exc, RerankTimeout) and _caller_out_of_time(context):
                # The rerank was cut at the caller's own deadline: the caller's gRPC status, as Milvus would end it.
                audit.outcome = "error:DEADLINE_EXCEEDED"
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
            if not hasattr(exc, "code"):
                log.exception("reranked %s failed", method.rpartition("/")[2])
            status = status_of(exc)
        audit.outcome = f"error:{status.code}"
        return _search_failed(status), "error"

    def forget(self, method: str, payload: bytes, metadata: Metadata) -> None:
        """A forwarded schema-changing call (``SCHEMA_CHANGES``) succeeded: drop the schemas it may have changed."""
        if method in _CHANGES_ALL:
            self.reranker.forget(None, None)
            return
        described = _SERVICE.methods_by_name[method.rpartition("/")[2]]
        request: Any = message_factory.GetMessageClass(described.input_type).FromString(payload)
        name = getattr(request, "collection_name", "")
        self.reranker.forget(getattr(request, "db_name", "") or _first(metadata, "dbname"), name)


def _search_failed(status: common_pb2.Status) -> bytes:
    """The answer of a Search/HybridSearch that failed with ``status`` (both answer a ``SearchResults``)."""
    return bytes(milvus_pb2.SearchResults(status=status).SerializeToString())


def _caller_out_of_time(context: grpc.ServicerContext) -> bool:
    remaining = deadline_of(context.time_remaining())
    return remaining is not None and remaining < _DEADLINE_SLACK_S


def _first(metadata: Metadata, key: str) -> str:
    value = next((v for k, v in metadata if k == key), "")
    return value.decode() if isinstance(value, bytes) else value


def _streaming_handler(
    backend: Backend, method: str, client_streaming: bool, server_streaming: bool
) -> grpc.RpcMethodHandler:
    """The streaming methods (replication), forwarded message by message; a backend error ends the caller's
    stream with the backend's own code (a backend that cannot be reached: named, as a unary call names it)."""

    def abort(exc: grpc.RpcError, context: grpc.ServicerContext) -> None:
        code: grpc.StatusCode = exc.code()
        details: str = exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:  # a stream has no Status to carry Milvus's message: gRPC's details
            details = f"the gateway cannot reach the Milvus backend {backend.uri} ({details})"
        context.abort(code, details)

    def target(context: grpc.ServicerContext) -> dict[str, Any]:
        return {
            "metadata": forwarded_metadata(context.invocation_metadata(), backend.token_header),
            "timeout": deadline_of(context.time_remaining()),
        }

    def relay(answers: Callable[[], Iterator[bytes]], context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            yield from answers()
        except grpc.RpcError as exc:
            abort(exc, context)

    if server_streaming:
        if client_streaming:
            call_ss = backend.channel.stream_stream(method)

            def stream_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
                return relay(lambda: iter(call_ss(requests, **target(context))), context)

            return grpc.stream_stream_rpc_method_handler(stream_stream)
        call_us = backend.channel.unary_stream(method)

        def unary_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            return relay(lambda: iter(call_us(request, **target(context))), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream)
    call_su = backend.channel.stream_unary(method)

    def stream_unary(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        try:
            answer: bytes = call_su(requests, **target(context))
            return answer
        except grpc.RpcError as exc:
            abort(exc, context)
            raise  # pragma: no cover - abort raises

    return grpc.stream_unary_rpc_method_handler(stream_unary)
