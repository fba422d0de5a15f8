"""vllm-ranker: Milvus 2.6's model rankers (vLLM and friends) on every Milvus, as a drop-in pymilvus client.

    from vllm_ranker import MilvusClient, Function, FunctionType, AnnSearchRequest

The names below are the supported API. They are loaded on first use (PEP 562), so ``import vllm_ranker`` and
the ``vllm-ranker`` command start without importing pymilvus. ``vllm_ranker.testing`` is the public test kit;
every other module is internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm_ranker.values import lazy_face

__version__ = "0.1.0"

_WHERE = {
    "AnnSearchRequest": "pymilvus",
    "DataType": "pymilvus",
    "FunctionType": "pymilvus",
    "Function": "vllm_ranker.function",  # pymilvus's, with API keys masked in its repr
    "MilvusClient": "vllm_ranker.milvus",
    "AsyncMilvusClient": "vllm_ranker.async_milvus",
    "EndpointPolicy": "vllm_ranker.core.endpoint_policy",  # the clients' endpoint_policy=
    "RerankError": "vllm_ranker.errors",
    "RerankParamError": "vllm_ranker.errors",
    "RerankServiceError": "vllm_ranker.errors",
    "RerankTimeout": "vllm_ranker.errors",
    "RerankStats": "vllm_ranker.stats",
}

__all__ = [
    "AnnSearchRequest",
    "AsyncMilvusClient",
    "DataType",
    "EndpointPolicy",
    "Function",
    "FunctionType",
    "MilvusClient",
    "RerankError",
    "RerankParamError",
    "RerankServiceError",
    "RerankStats",
    "RerankTimeout",
    "__version__",
]

if TYPE_CHECKING:
    from pymilvus import AnnSearchRequest, DataType, FunctionType

    from vllm_ranker.async_milvus import AsyncMilvusClient
    from vllm_ranker.core.endpoint_policy import EndpointPolicy
    from vllm_ranker.errors import RerankError, RerankParamError, RerankServiceError, RerankTimeout
    from vllm_ranker.function import Function
    from vllm_ranker.milvus import MilvusClient
    from vllm_ranker.stats import RerankStats


__getattr__ = lazy_face(globals(), {name: (module, name) for name, module in _WHERE.items()})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
