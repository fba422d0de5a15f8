"""Exceptions raised by vllm_ranker.

Every error is a ``pymilvus.MilvusException`` so handlers written for Milvus keep catching them; each message
keeps the substring Milvus prints (users grep for them) and then says what to change.
"""

from __future__ import annotations

from pymilvus import MilvusException
from pymilvus.exceptions import ErrorCode


class RerankError(MilvusException):  # type: ignore[misc]
    """Base class of every error raised by the model ranker."""

    def __init__(
        self, message: str, *, code: int = ErrorCode.UNEXPECTED_ERROR, input_error: bool = False
    ) -> None:
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

    ``status`` is the HTTP status when there was an answer, else None; ``retriable`` tells whether it was
    a failure kind that retries are allowed for (connect errors, 429, 5xx).
    """

    def __init__(self, message: str, *, status: int | None = None, kind: str = "service") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class RerankTimeout(RerankServiceError):
    """The whole rerank of one call did not finish within its deadline (the ``timeout`` param)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="timeout")
