"""The provider table: provider name -> its row. Adding a provider = one module + one entry here."""

from __future__ import annotations

from .ali import PROVIDER as ALI
from .base import MalformedAnswer, Option, Provider, Target
from .cohere import PROVIDER as COHERE
from .huggingface import PROVIDER as HUGGINGFACE
from .sglang import PROVIDER as SGLANG
from .siliconflow import PROVIDER as SILICONFLOW
from .tei import PROVIDER as TEI
from .vllm import PROVIDER as VLLM
from .voyageai import PROVIDER as VOYAGEAI

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (VLLM, TEI, COHERE, VOYAGEAI, SILICONFLOW, ALI, HUGGINGFACE, SGLANG)
}

_OURS = (
    f"use a provider vllm_ranker serves instead: {', '.join(p for p in PROVIDERS if PROVIDERS[p].self_hosted)} for "
    f"a model you run, or {', '.join(p for p in PROVIDERS if not PROVIDERS[p].self_hosted)} with an API key"
)
# Providers a Milvus has that nothing outside their own cloud can reach: refused before any I/O (core/spec.py),
# never handed to the Milvus backend either (Milvus Lite would only say "Unknown rerank provider").
UNREACHABLE: dict[str, str] = {
    "zilliz": "rerank model provider zilliz is Zilliz Cloud's own model service (a model deployed in a Zilliz "
    "Cloud cluster, named by model_deployment_id), not a public API: it cannot be reached from here. Run this "
    f"search on Zilliz Cloud, or {_OURS}",
}

__all__ = ["PROVIDERS", "UNREACHABLE", "MalformedAnswer", "Option", "Provider", "Target"]
