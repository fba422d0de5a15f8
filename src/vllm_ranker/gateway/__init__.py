"""``vllm-ranker gateway``: Milvus's own gRPC protocol in front of any Milvus, with the model rankers added.

Any SDK (pymilvus of any version, Node.js, Go, Java, Attu) sends a search with a RERANK Function of
``reranker: model`` and gets reranked hits; everything else is forwarded to the backend untouched.
"""

from __future__ import annotations

from .server import BackendError, Gateway, GatewayError

__all__ = ["BackendError", "Gateway", "GatewayError"]
