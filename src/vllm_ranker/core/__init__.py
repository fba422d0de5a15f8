"""The library's core: no I/O. Parses a ranker's params, plans and orders a rerank, shapes the results.

- ``flow.py``: a model-reranked search written once, as a generator of I/O steps both clients carry out.
- ``spec.py``: the Function's params parsed and validated once (every validation message lives there).
- ``schema.py``: what the ranker needs from a collection's schema, cached per client.
- ``ordering.py``: candidates, batch plan, ordering, pagination, rounding, score normalisation.
- ``score_cache.py``, ``results.py``, ``metrics.py``, ``endpoint_checks.py``, ``endpoint_policy.py``, ...
Nothing here imports the transport, the clients or an outer room (docs/modules.md's table, tests/unit/test_layout.py).

The names below are what an outer room may use (the gateway, the third driver of the flow): it imports them from
``vllm_ranker.core``, never from a module here, so a module can move without breaking it. They are loaded on first
use (PEP 562): ``vllm-ranker gateway --help`` must not pay for pymilvus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm_ranker.values import lazy_face

# name -> (module under vllm_ranker.core, its name there)
_FACE: dict[str, tuple[str, str]] = {
    "MODEL_EXPR": ("chain.decode", "MODEL_EXPR"),
    "chain_flow": ("chain", "chain_flow"),
    "serves_chain": ("chain", "serves_chain"),
    "drive": ("driver", "drive"),
    "EndpointPolicy": ("endpoint_policy", "EndpointPolicy"),
    "Flow": ("flow", "Flow"),
    "Rerank": ("flow", "Rerank"),
    "hybrid_flow": ("flow", "hybrid_flow"),
    "search_flow": ("flow", "search_flow"),
    "BOOST": ("function_score", "BOOST"),
    "refuse_on_hybrid": ("function_score", "refuse_on_hybrid"),
    "split_functions": ("function_score", "split_functions"),
    "LazyMetrics": ("metrics", "LazyMetrics"),
    "metrics_available": ("metrics", "available"),
    "NO_PROVIDER_CONFIG": ("provider_config", "EMPTY"),
    "ProviderConfig": ("provider_config", "ProviderConfig"),
    "ProviderConfigError": ("provider_config", "ProviderConfigError"),
    "SCHEMA_CHANGES": ("schema", "SCHEMA_CHANGES"),
    "SchemaCache": ("schema", "SchemaCache"),
    "Tokenize": ("token_chunks", "Tokenize"),
    "DEFAULT_CACHE_SIZE": ("score_cache", "DEFAULT_CACHE_SIZE"),
    "ScoreCache": ("score_cache", "ScoreCache"),
    "ITERATOR_KEYS": ("search_args", "ITERATOR_KEYS"),
    "is_iterator_search": ("search_args", "is_iterator_search"),
    "refuse_iterator_rerank": ("search_args", "refuse_iterator_rerank"),
    "RerankSpec": ("spec", "RerankSpec"),
    "foreign_provider": ("spec", "foreign_provider"),
    "is_model_ranker": ("spec", "is_model_ranker"),
    "unknown_everywhere": ("spec", "unknown_everywhere"),
}
__all__ = [
    "BOOST",
    "DEFAULT_CACHE_SIZE",
    "ITERATOR_KEYS",
    "MODEL_EXPR",
    "NO_PROVIDER_CONFIG",
    "SCHEMA_CHANGES",
    "EndpointPolicy",
    "Flow",
    "LazyMetrics",
    "ProviderConfig",
    "ProviderConfigError",
    "Rerank",
    "RerankSpec",
    "SchemaCache",
    "ScoreCache",
    "Tokenize",
    "chain_flow",
    "drive",
    "foreign_provider",
    "hybrid_flow",
    "is_iterator_search",
    "is_model_ranker",
    "metrics_available",
    "refuse_iterator_rerank",
    "refuse_on_hybrid",
    "search_flow",
    "serves_chain",
    "split_functions",
    "unknown_everywhere",
]

if TYPE_CHECKING:
    from vllm_ranker.core.chain import chain_flow, serves_chain
    from vllm_ranker.core.chain.decode import MODEL_EXPR
    from vllm_ranker.core.driver import drive
    from vllm_ranker.core.endpoint_policy import EndpointPolicy
    from vllm_ranker.core.flow import Flow, Rerank, hybrid_flow, search_flow
    from vllm_ranker.core.function_score import BOOST, refuse_on_hybrid, split_functions
    from vllm_ranker.core.metrics import LazyMetrics
    from vllm_ranker.core.metrics import available as metrics_available
    from vllm_ranker.core.provider_config import EMPTY as NO_PROVIDER_CONFIG
    from vllm_ranker.core.provider_config import ProviderConfig, ProviderConfigError
    from vllm_ranker.core.schema import SCHEMA_CHANGES, SchemaCache
    from vllm_ranker.core.score_cache import DEFAULT_CACHE_SIZE, ScoreCache
    from vllm_ranker.core.search_args import ITERATOR_KEYS, is_iterator_search, refuse_iterator_rerank
    from vllm_ranker.core.spec import RerankSpec, foreign_provider, is_model_ranker, unknown_everywhere
    from vllm_ranker.core.token_chunks import Tokenize


__getattr__ = lazy_face(globals(), _FACE, within=True)
