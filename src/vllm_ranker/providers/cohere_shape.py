"""The Cohere-shaped rerank API, shared by Cohere, Voyage AI and SiliconFlow.

Request ``{"model", "query", "documents", <options>}`` with no top-n, so every document comes back; answer
``{<container>: [{"index", "relevance_score"}], ...}`` sorted by score and mapped back by ``index``. The three
services differ only in the route, the answer's container key and their options (each module's row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Json, MalformedAnswer, Target, scores_by_index


@dataclass(frozen=True, slots=True)
class CohereShape:
    container: str  # the answer's key holding the scored items

    def build_body(self, target: Target, query: str, documents: Sequence[str]) -> Json:
        body: dict[str, Any] = {"model": target.model, "query": query, "documents": list(documents)}
        body.update(target.options)
        return body

    def parse_scores(self, answer: Json, n_docs: int) -> list[float]:
        if not isinstance(answer, dict) or self.container not in answer:
            raise MalformedAnswer(f"expected a JSON object with `{self.container}`")
        return scores_by_index(answer[self.container], n_docs, score_key="relevance_score", container=self.container)
