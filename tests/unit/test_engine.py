"""The pure engine: batch plan, union, ordering, pagination, rounding."""

from __future__ import annotations

import numpy as np

from vllm_ranker.core.ordering import (
    Candidate,
    order_hits,
    page,
    plan_batches,
    round_distances,
    scatter,
    union_by_pk,
)


def cands(*pks: int) -> list[Candidate]:
    return [Candidate(pk, f"doc {pk}", {}) for pk in pks]


def test_plan_batches_by_batch_size_and_skips_empty_queries() -> None:
    batches = plan_batches(["a", "b", "c"], [cands(*range(5)), [], cands(9)], 2)
    assert [(b.query_index, b.query, b.start, list(b.documents)) for b in batches] == [
        (0, "a", 0, ["doc 0", "doc 1"]),
        (0, "a", 2, ["doc 2", "doc 3"]),
        (0, "a", 4, ["doc 4"]),
        (2, "c", 0, ["doc 9"]),
    ]


def test_scatter_puts_scores_back_in_place() -> None:
    batches = plan_batches(["a", "b"], [cands(1, 2, 3), cands(4)], 2)
    assert scatter(batches, [[0.1, 0.2], [0.3], [0.9]], [3, 1]) == [[0.1, 0.2, 0.3], [0.9]]


def test_union_first_occurrence_wins() -> None:
    first = [Candidate(3, "x", {"from": "dense"}), Candidate(1, "y", {})]
    second = [
        Candidate(1, "y", {"from": "sparse"}),
        Candidate(2, "z", {}),
        Candidate(3, "x", {"from": "sparse"}),
    ]
    union = union_by_pk([first, second])
    assert [c.pk for c in union] == [3, 1, 2]
    assert union[0].entity == {"from": "dense"}


def test_order_by_float32_score_then_pk() -> None:
    hits = order_hits(cands(5, 2, 9, 1), [0.5, 0.7, 0.5, 0.5])
    assert [h.pk for h in hits] == [2, 1, 5, 9]
    # two scores equal in float32 are a tie, settled by primary key
    a, b = 0.1 + 1e-12, 0.1
    assert np.float32(a) == np.float32(b)
    assert [h.pk for h in order_hits(cands(8, 3), [a, b])] == [3, 8]
    assert hits[0].distance == float(np.float32(0.7))


def test_page_and_round() -> None:
    hits = order_hits(cands(1, 2, 3, 4), [0.4, 0.3, 0.2, 0.1])
    assert [h.pk for h in page(hits, 1, 2)] == [2, 3]
    assert page(hits, 10, 2) == []
    rounded = round_distances(order_hits(cands(1), [0.123456]), 2)
    assert rounded[0].distance == 0.12
    assert round_distances(order_hits(cands(1), [0.123456]), -1)[0].distance == float(np.float32(0.123456))
