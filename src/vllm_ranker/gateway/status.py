"""Errors as Milvus returns them: a ``common.Status`` inside the answer, so every SDK raises its usual exception.

A Status (rather than a gRPC error) also keeps pymilvus from retrying: it retries UNAVAILABLE gRPC errors for
up to a minute, but raises a Status error at once.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from pymilvus import MilvusException
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from vllm_ranker import RerankParamError

# Milvus's own codes (pkg/util/merr): 2 service unavailable, 1100 parameter invalid.
CODE_UNAVAILABLE = 2
_SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]


def status_of(exc: BaseException) -> common_pb2.Status:
    """The Status for an exception raised while serving a call; the reason is the text the Python client raises."""
    if isinstance(exc, MilvusException):
        status = common_pb2.Status(
            code=int(exc.code),
            error_code=common_pb2.IllegalArgument if isinstance(exc, RerankParamError) else int(exc.compatible_code),
            reason=str(exc.message),
            retriable=bool(exc.retriable),
        )
        if exc.is_input_error:
            status.extra_info["is_input_error"] = "true"
        if status.code == 0 and status.error_code == 0:  # a MilvusException always means failure
            status.code = 1
        return status
    return common_pb2.Status(
        code=1, error_code=common_pb2.UnexpectedError, reason=f"gateway error: {type(exc).__name__}: {exc}"
    )


def unavailable(backend: str, detail: str) -> common_pb2.Status:
    return common_pb2.Status(
        code=CODE_UNAVAILABLE,
        error_code=common_pb2.UnexpectedError,
        reason=f"service unavailable: the gateway cannot reach the Milvus backend {backend} ({detail})",
        retriable=True,
    )


def response_type(method: str) -> type[Message] | None:
    """The answer message class of a MilvusService method (``/milvus.proto.milvus.MilvusService/Search``)."""
    service, _, name = method.lstrip("/").rpartition("/")
    if service != _SERVICE.full_name:
        return None
    found = _SERVICE.methods_by_name.get(name)
    if found is None or found.server_streaming:
        return None
    cls: Any = _message_class(found.output_type)
    return cls if isinstance(cls, type) and issubclass(cls, Message) else None


def _message_class(descriptor: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def answer_with_status(method: str, status: common_pb2.Status) -> bytes | None:
    """The serialized answer of ``method`` carrying only ``status``; None when the method has no such answer."""
    cls = response_type(method)
    if cls is None:
        return None
    if cls is common_pb2.Status or cls.DESCRIPTOR.full_name == common_pb2.Status.DESCRIPTOR.full_name:
        return bytes(status.SerializeToString())
    if "status" not in cls.DESCRIPTOR.fields_by_name:
        return None
    answer = cls()
    getattr(answer, "status").CopyFrom(status)  # noqa: B009 - the class is only known at run time
    return bytes(answer.SerializeToString())
