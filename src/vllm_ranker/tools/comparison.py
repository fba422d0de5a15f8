"""What makes an evaluation checkable: TREC run files anyone can rescore, and each ``+rerank`` pipeline compared
with its own first stage query by query (wins / ties / losses and paired significance tests from SciPy).

Run files have the six columns trec_eval, ranx, pytrec_eval and ir-measures read: ``qid Q0 docid rank score tag``.
The score column is derived from the rank (``len(ranking) - rank + 1``): trec_eval orders by score and breaks ties
by document id, so distinct descending scores make every tool see exactly the order that was scored (model scores
can tie, and a +rerank ranking's tail keeps first-stage scores on another scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vllm_ranker.tools.errors import ExtraMissing

# Differences smaller than this are ties (nDCG values computed from the same judgments).
TIE_TOLERANCE = 1e-9
RANDOMISATION_RESAMPLES = 10_000
RANDOMISATION_SEED = 42

# What a rerank model is, as the tools say it (see vllm_ranker.local_vllm.model_kind).
KIND_NOTES = {
    "cross-encoder": "cross-encoder: +rerank scores each (query, document) pair",
    "llm-reranker": "LLM reranker: +rerank scores each (query, document) pair by its answer token, in its prompt",
    "late-interaction": "late interaction (ColBERT): +rerank scores by MaxSim over query and document tokens",
    "bi-encoder": "bi-encoder (an embedding model): +rerank only re-sorts by the cosine of its embeddings",
    "unknown": "unknown model kind (no access to the model's config)",
}


def kind_note(kind: str | None) -> str:
    return KIND_NOTES.get(kind or "unknown", KIND_NOTES["unknown"])


def write_run_file(path: str | Path, run: Mapping[str, Sequence[str]], tag: str) -> Path:
    """Write ``run`` (query id -> document ids, best first) as a TREC run file; ``tag`` must have no spaces."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = "_".join(tag.split()) or "run"
    with out.open("w", encoding="utf-8") as handle:
        for qid, ids in run.items():
            for rank, doc_id in enumerate(ids, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {len(ids) - rank + 1} {tag}\n")
    return out


def run_file_name(collection: str, pipeline: str) -> str:
    # No '+' or ':' in file names (a variant is "bm25+rerank:title"): "scifact-bm25_rerank-title.trec".
    return f"{collection}-{pipeline.replace('+', '_').replace(':', '-')}.trec"


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise ExtraMissing("the significance tests need scipy: pip install 'vllm-ranker[eval]'") from None
    return stats


def _p_value(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def compare(
    base: Mapping[str, Mapping[str, float]],
    reranked: Mapping[str, Mapping[str, float]],
    metric: str = "nDCG@10",
) -> dict[str, Any]:
    """Per-query comparison of a +rerank pipeline with its first stage on ``metric`` (over the queries of ``base``).

    ``p_ttest``: two-sided paired t-test (scipy.stats.ttest_rel); ``p_randomisation``: two-sided paired
    randomisation (sign-flip) test of the mean difference (scipy.stats.permutation_test, 10,000 resamples, fixed
    seed). A p-value is None when every query ties (nothing to test).
    """
    stats = _scipy_stats()
    queries = list(base)
    a = [float(base[q].get(metric, 0.0)) for q in queries]
    b = [float(reranked.get(q, {}).get(metric, 0.0)) for q in queries]
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    wins = sum(d > TIE_TOLERANCE for d in diffs)
    losses = sum(d < -TIE_TOLERANCE for d in diffs)
    p_ttest: float | None = None
    p_random: float | None = None
    if len(queries) >= 2 and wins + losses > 0:
        p_ttest = _p_value(stats.ttest_rel(b, a).pvalue)

        def mean_difference(x: Any, y: Any, axis: int = -1) -> Any:
            return (x - y).mean(axis=axis)

        result = stats.permutation_test(
            (b, a),
            mean_difference,
            permutation_type="samples",
            vectorized=True,
            n_resamples=RANDOMISATION_RESAMPLES,
            alternative="two-sided",
            random_state=RANDOMISATION_SEED,
        )
        p_random = _p_value(result.pvalue)
    n = max(len(queries), 1)
    return {
        "metric": metric,
        "queries": len(queries),
        "wins": wins,
        "ties": len(queries) - wins - losses,
        "losses": losses,
        "mean_delta": sum(diffs) / n,
        "p_ttest": p_ttest,
        "p_randomisation": p_random,
        "tests": "scipy.stats.ttest_rel (two-sided, paired); scipy.stats.permutation_test (paired sign flips, "
        f"{RANDOMISATION_RESAMPLES} resamples, seed {RANDOMISATION_SEED})",
    }


def format_p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"
