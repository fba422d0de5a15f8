"""The provider table: provider name -> its row. Adding a provider = one module + one entry here."""

from __future__ import annotations

from .base import MalformedAnswer, Option, Provider, Target
from .vllm import PROVIDER as VLLM

PROVIDERS: dict[str, Provider] = {p.name: p for p in (VLLM,)}

__all__ = ["PROVIDERS", "MalformedAnswer", "Option", "Provider", "Target"]
