"""Reranked hits as the very types pymilvus returns (``SearchResult`` of ``HybridHits`` of ``Hit``), so code
written for pymilvus (``res[0][0]["distance"]``, ``hit["entity"]["document"]``, ``res[0].ids``) keeps working."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymilvus.client.search_result import Hit, HybridHits, SearchResult

from vllm_ranker.core.ordering import ScoredHit


def make_hits(hits: Sequence[ScoredHit], pk_name: str) -> HybridHits:
    built = HybridHits.__new__(HybridHits)
    list.__init__(
        built,
        [Hit({pk_name: h.pk, "distance": h.distance, "entity": h.entity}, pk_name=pk_name) for h in hits],
    )
    built.ids = [h.pk for h in hits]
    built.distances = [h.distance for h in hits]
    built.lazy_field_data = []
    built.has_materialized = True
    built.dynamic_fields = []
    built.start = 0
    built._prefix_sum_cache = {}
    return built


def make_result(per_query: Sequence[Sequence[ScoredHit]], pk_name: str, extra: dict[str, Any]) -> SearchResult:
    result = SearchResult.__new__(SearchResult)
    list.__init__(result, [make_hits(hits, pk_name) for hits in per_query])
    result.recalls = None
    result.extra = extra
    result._session_ts = 0
    result._search_iterator_v2_results = None
    result.agg_buckets = []
    return result
