"""vllm-ranker: Milvus 2.6's model rankers (vLLM and friends) on every Milvus, as a drop-in pymilvus client.

from vllm_ranker import MilvusClient, Function, FunctionType, AnnSearchRequest
"""

from __future__ import annotations

from pymilvus import (
    AnnSearchRequest,
    DataType,
    FunctionType,
    MilvusException,
    RRFRanker,
    WeightedRanker,
)

from .async_milvus import AsyncMilvusClient
from .errors import RerankError, RerankParamError, RerankServiceError, RerankTimeout
from .function import Function  # pymilvus's, with API keys masked in its repr
from .milvus import MilvusClient
from .spec import RerankSpec, is_model_ranker, parse_ranker
from .stats import RerankStats

__version__ = "0.1.0"

__all__ = [
    "AnnSearchRequest",
    "AsyncMilvusClient",
    "DataType",
    "Function",
    "FunctionType",
    "MilvusClient",
    "MilvusException",
    "RRFRanker",
    "RerankError",
    "RerankParamError",
    "RerankServiceError",
    "RerankSpec",
    "RerankStats",
    "RerankTimeout",
    "WeightedRanker",
    "is_model_ranker",
    "parse_ranker",
]
