"""The provider table: provider name -> its row. Adding a provider = one module + one entry here."""

from __future__ import annotations

from .ali import PROVIDER as ALI
from .base import MalformedAnswer, Option, Provider, Target
from .cohere import PROVIDER as COHERE
from .huggingface import PROVIDER as HUGGINGFACE
from .siliconflow import PROVIDER as SILICONFLOW
from .tei import PROVIDER as TEI
from .vllm import PROVIDER as VLLM
from .voyageai import PROVIDER as VOYAGEAI

PROVIDERS: dict[str, Provider] = {p.name: p for p in (VLLM, TEI, COHERE, VOYAGEAI, SILICONFLOW, ALI, HUGGINGFACE)}

__all__ = ["PROVIDERS", "MalformedAnswer", "Option", "Provider", "Target"]
