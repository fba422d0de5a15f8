"""Score normalisation and min_score (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllm_ranker.core.ordering import Candidate, at_least, normalize, order_hits


def ordered(scores: list[float]) -> list:  # type: ignore[type-arg]
    return order_hits([Candidate(i, f"d{i}", {}) for i in range(len(scores))], scores)


def test_sigmoid_maps_logits_and_survives_extremes() -> None:
    hits = normalize(ordered([2.0, 0.0, -3.0, -1000.0, 1000.0]), "sigmoid")
    assert [h.pk for h in hits] == [4, 0, 1, 2, 3]
    assert [h.distance for h in hits] == pytest.approx([1.0, 1 / (1 + math.exp(-2)), 0.5, 1 / (1 + math.exp(3)), 0.0])


def test_minmax_spans_zero_to_one_and_flat_scores_are_one() -> None:
    assert [h.distance for h in normalize(ordered([0.2, 0.8, 0.5]), "minmax")] == pytest.approx([1.0, 0.5, 0.0])
    assert [h.distance for h in normalize(ordered([0.3, 0.3]), "minmax")] == [1.0, 1.0]
    assert normalize([], "minmax") == []


def test_raw_is_untouched_and_unknown_is_refused() -> None:
    assert [h.distance for h in normalize(ordered([-2.5, 7.0]), "raw")] == [7.0, -2.5]
    with pytest.raises(ValueError):
        normalize(ordered([1.0]), "softmax")


def test_min_score_cuts_ordered_hits() -> None:
    hits = ordered([0.9, 0.1, 0.5, 0.5])
    assert [h.pk for h in at_least(hits, 0.5)] == [0, 2, 3]
    assert at_least(hits, None) == hits
    assert at_least(hits, 2.0) == []


def test_minmax_puts_infinities_at_the_ends() -> None:
    hits = normalize(ordered([0.2, math.inf, 0.8, -math.inf, 0.5]), "minmax")
    assert [h.pk for h in hits] == [1, 2, 4, 0, 3]
    assert [h.distance for h in hits] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    assert [h.distance for h in normalize(ordered([math.inf, 3.0, 3.0]), "minmax")] == [1.0, 0.0, 0.0]
    assert [h.distance for h in normalize(ordered([-math.inf, -math.inf]), "minmax")] == [0.0, 0.0]


scores_with_infinities = st.floats(-50, 50, allow_nan=False) | st.sampled_from([math.inf, -math.inf])


@given(st.lists(scores_with_infinities, min_size=1, max_size=30), st.sampled_from(["sigmoid", "minmax"]))
def test_normalisation_never_changes_the_order(scores: list[float], method: str) -> None:
    raw = ordered(scores)
    pks = [h.pk for h in raw]
    normalised = normalize(ordered(scores), method)
    assert [h.pk for h in normalised] == pks
    values = [h.distance for h in normalised]
    assert values == sorted(values, reverse=True) and all(0.0 <= v <= 1.0 for v in values)
