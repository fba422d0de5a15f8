"""``vllm-ranker gateway``: Milvus's own gRPC protocol in front of any Milvus, with the model rankers added.

Any SDK (pymilvus of any version, Node.js, Go, Java, Attu) sends a search with a RERANK Function of
``reranker: model`` and gets reranked hits; everything else is forwarded to the backend untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import BackendError, GatewayError

if TYPE_CHECKING:
    from .server import Gateway

__all__ = ["BackendError", "Gateway", "GatewayError"]


def __getattr__(name: str) -> Any:
    # Gateway (grpc, pymilvus) is loaded on first use, so the command's --help and its errors stay light.
    if name == "Gateway":
        from .server import Gateway

        return Gateway
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
