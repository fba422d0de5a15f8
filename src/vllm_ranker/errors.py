"""Exceptions raised by vllm_ranker.

The tree::

    pymilvus.MilvusException            what Milvus handlers already catch
    └── RerankError                     every error of the model ranker
        ├── RerankParamError            the ranker's params (or the search they came with) are invalid;
        │                               raised before any search or HTTP call
        └── RerankServiceError          the rerank service failed: .kind says how, .status the HTTP status
            └── RerankTimeout           the call's deadline (params['timeout']) passed

Each message keeps the substring Milvus prints (users grep for them) and then says what to change. The tools
behind the command line (ingest, eval, bench) have their own branch, ``vllm_ranker.tools.errors.ToolError``:
an ``except RerankServiceError`` around a search never catches an embeddings failure of the tools.
"""

from __future__ import annotations

from typing import Literal

from pymilvus import MilvusException
from pymilvus.exceptions import ErrorCode

# How a rerank call failed: no HTTP answer (connect: nothing was sent; broken: the connection was lost; tls: the
# certificate did not verify; timeout), an HTTP error status (http), an answer that is not a rerank answer
# (malformed), or the call's deadline (timeout).
FailureKind = Literal["connect", "broken", "tls", "timeout", "http", "malformed", "service"]


class RerankError(MilvusException):  # type: ignore[misc]
    """Base class of every error raised by the model ranker."""

    def __init__(self, message: str, *, code: int = ErrorCode.UNEXPECTED_ERROR, input_error: bool = False) -> None:
        super().__init__(code=code, message=message, is_input_error=input_error)

    def __str__(self) -> str:
        return self.message  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class RerankParamError(RerankError):
    """The ranker's params, or the search they came with, are invalid. Raised before any search or HTTP call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, input_error=True)


class RerankServiceError(RerankError):
    """The rerank service failed: transport error, non-2xx answer, malformed answer, or deadline exceeded.

    ``status`` is the HTTP status when there was an answer, else None; ``kind`` says how it failed
    (``FailureKind``). Retries happened before this was raised, for the kinds that allow them (connect, broken,
    HTTP 429 and 5xx).
    """

    def __init__(self, message: str, *, status: int | None = None, kind: FailureKind = "service") -> None:
        super().__init__(message)
        self.status = status
        self.kind: FailureKind = kind


class RerankTimeout(RerankServiceError):
    """The whole rerank of one call did not finish within its deadline (the ``timeout`` param)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="timeout")
