"""Score pipelines against relevance judgments: nDCG@10, Recall@100 and MRR@10 by ir-measures (pytrec_eval,
i.e. trec_eval's definitions, as BEIR and MTEB report them); a rich table, a JSON report and a PNG chart.

Every judged query counts: a query a pipeline returned nothing for scores 0 (pytrec_eval alone would leave it
out of the mean and flatter the pipeline). Each pipeline's ranking is also written as a TREC run file, and each
``+rerank`` pipeline is compared with its own first stage (see comparison.py); the report says what kind of model
reranked (a bi-encoder's "rerank" is a cosine re-sort, and the table says so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm_ranker.tools.comparison import compare, format_p, kind_note, run_file_name, write_run_file
from vllm_ranker.tools.embeddings import Embedder
from vllm_ranker.tools.errors import ExtraMissing, ToolInputError
from vllm_ranker.tools.pipelines import Pipeline, Searcher

METRICS = ("nDCG@10", "Recall@100", "MRR@10")


def require_extra() -> None:
    """Raise ExtraMissing, naming the install command, unless what eval needs (ir-measures, matplotlib) is there.
    Called before any work, so a missing extra never costs a whole pipeline run first."""
    import importlib

    missing = []
    for name in ("ir_measures", "matplotlib", "scipy"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExtraMissing(
            f"vllm-ranker eval needs {' and '.join(missing)}: pip install 'vllm-ranker[eval]' "
            "(from a checkout: pip install -e '.[eval]')"
        )


def _measures() -> dict[str, Any]:
    try:
        import ir_measures
    except ImportError:
        raise ExtraMissing("vllm-ranker eval needs ir-measures: pip install 'vllm-ranker[eval]'") from None
    # Our names -> ir-measures' (RR is reciprocal rank, R is recall).
    return {"nDCG@10": ir_measures.nDCG @ 10, "Recall@100": ir_measures.R @ 100, "MRR@10": ir_measures.RR @ 10}


def score_run(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over every query in ``qrels``, and per query; ``run`` maps a query id to doc ids, best first."""
    import ir_measures

    measures = _measures()
    by_name = {str(m): name for name, m in measures.items()}
    # Scores from ranks: trec_eval sorts by score (ties by doc id), so distinct descending scores keep our order.
    scored = {q: {d: float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in run.items() if ids}
    per_query: dict[str, dict[str, float]] = {q: dict.fromkeys(METRICS, 0.0) for q in qrels}
    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), judged, scored):
        if metric.query_id in per_query:
            per_query[metric.query_id][by_name[str(metric.measure)]] = float(metric.value)
    n = max(len(per_query), 1)
    means = {name: sum(q[name] for q in per_query.values()) / n for name in METRICS}
    return means, per_query


@dataclass
class PipelineResult:
    name: str
    metrics: dict[str, float]
    seconds: float
    queries: int
    rerank: dict[str, float] = field(default_factory=dict)  # summed RerankStats of the +rerank calls
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    run: dict[str, list[str]] = field(default_factory=dict, repr=False)  # written as a run file, not in the JSON
    run_file: str | None = None
    # For a +rerank pipeline: compared with its own first stage (comparison.compare), when that ran too.
    vs_first_stage: dict[str, Any] | None = None
    # What the table compares it with: a variant with its plain +rerank (else its first stage), a +rerank with its
    # first stage; None for a first stage.
    baseline: str | None = None
    vs_baseline: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # a variant's own RERANK params

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "run"}


@dataclass
class EvalReport:
    collection: str
    split: str
    queries: int
    config: dict[str, Any]
    results: list[PipelineResult]

    @property
    def rerank_kind(self) -> str:
        return str(self.config.get("rerank_model_kind") or "unknown")

    def compare_with_first_stages(self) -> None:
        """Fill ``vs_first_stage`` of each +rerank pipeline (variants too) whose first stage is in the report, and
        ``vs_baseline``: a variant against its plain +rerank when that ran, else like ``vs_first_stage``."""
        by_name = {r.name: r for r in self.results}
        for r in self.results:
            stage, plus, _ = r.name.partition("+")
            first = by_name.get(stage) if plus else None
            if first is not None:
                r.vs_first_stage = compare(first.per_query, r.per_query)
                r.baseline, r.vs_baseline = first.name, r.vs_first_stage
            plain = by_name.get(stage + "+rerank") if ":" in r.name else None
            if plain is not None:
                r.baseline, r.vs_baseline = plain.name, compare(plain.per_query, r.per_query)

    def write_runs(self, directory: str | Path) -> list[Path]:
        """One TREC run file per pipeline in *directory*; each result records its file's name."""
        paths = []
        for r in self.results:
            path = write_run_file(Path(directory) / run_file_name(self.collection, r.name), r.run, r.name)
            r.run_file = path.name
            paths.append(path)
        return paths

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "split": self.split,
            "queries": self.queries,
            "metrics": list(METRICS),
            "rerank_model_kind": self.rerank_kind,
            "rerank_model_kind_note": kind_note(self.rerank_kind),
            "rerank_model_family": str(self.config.get("rerank_model_family") or "unknown"),
            "config": self.config,
            "pipelines": [r.as_dict() for r in self.results],
        }

    def write_json(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return out

    def label(self, name: str) -> str:
        """A pipeline's name as tables and charts show it: a bi-encoder's +rerank is called a re-sort."""
        if "+rerank" in name and self.rerank_kind == "bi-encoder":
            return f"{name} (bi-encoder re-sort)"
        return name

    def table(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"{self.collection} ({self.split} split, {self.queries} queries)",
            caption=f"reranker: {self.config.get('rerank_model') or 'the server model'}: {kind_note(self.rerank_kind)}"
            "; Δ, W/T/L and p: nDCG@10 against the pipeline in 'vs' (a +rerank against its first stage, a variant "
            "against its plain +rerank; paired t-test, randomisation)",
        )
        table.add_column("pipeline")
        for name in METRICS:
            table.add_column(name, justify="right")
        for name in ("vs", "Δ nDCG@10", "W/T/L", "p t-test", "p rand."):
            table.add_column(name, justify="right")
        table.add_column("time", justify="right")
        for r in self.results:
            c = r.vs_baseline
            extra = ["", "", "", "", ""]
            if c:
                extra = [r.baseline or "", f"{c['mean_delta']:+.4f}", f"{c['wins']}/{c['ties']}/{c['losses']}"]
                extra += [format_p(c["p_ttest"]), format_p(c["p_randomisation"])]
            table.add_row(self.label(r.name), *(f"{r.metrics[m]:.4f}" for m in METRICS), *extra, f"{r.seconds:.1f} s")
        return table

    def write_chart(self, path: str | Path) -> Path:
        """Grouped bars: one group per metric, one bar per pipeline, values printed on the bars."""
        try:
            import matplotlib
        except ImportError:
            raise ExtraMissing("the chart needs matplotlib: pip install 'vllm-ranker[eval]'") from None
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = max(len(self.results), 1)
        # The legend goes below the bars (with variants it is a dozen lines) and the figure grows to hold it.
        fig, ax = plt.subplots(figsize=(max(10, 0.5 * n * len(METRICS)), 5 + 0.2 * n))
        width = 0.8 / n
        cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")  # no two pipelines share a colour (up to 20)
        colours = [cmap(i) for i in range(cmap.N)]
        for i, r in enumerate(self.results):
            xs = [m + (i - (len(self.results) - 1) / 2) * width for m in range(len(METRICS))]
            c = r.vs_baseline
            p = f" (nDCG@10 p={format_p(c['p_ttest'])} t-test vs {r.baseline})" if c else ""
            colour = colours[i % len(colours)]
            bars = ax.bar(xs, [r.metrics[m] for m in METRICS], width, label=self.label(r.name) + p, color=colour)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
        ax.set_xticks(range(len(METRICS)), list(METRICS))
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("score")
        ax.set_title(
            f"{self.collection}: {self.split} split, {self.queries} queries\nreranker: {kind_note(self.rerank_kind)}",
            fontsize=10,
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=1 if n <= 6 else 2, fontsize=8)
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return out


def embed_queries(embedder: Embedder, texts: Sequence[str], batch: int = 64) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        vectors.extend(embedder.embed(texts[start : start + batch]))
    return vectors


def evaluate(
    searcher: Searcher,
    pipelines: Sequence[Pipeline],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    vectors: Mapping[str, Sequence[float]],
    *,
    chunk: int = 8,
    progress: Callable[[Pipeline, int, int], None] | None = None,
    config: Mapping[str, Any] | None = None,
    split: str = "test",
) -> EvalReport:
    """Run each pipeline over the judged queries (``chunk`` queries per Milvus call) and score it."""
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise ToolInputError(
            f"{len(missing)} judged queries have no text in the queries file (e.g. {missing[:3]}): "
            "check that the qrels and queries belong to the same collection"
        )
    ids = list(qrels)
    texts = [queries[q] for q in ids]
    results: list[PipelineResult] = []
    for pipeline in pipelines:
        run: dict[str, list[str]] = {}
        rerank_totals: dict[str, float] = {}
        started = time.perf_counter()
        if progress is not None:
            progress(pipeline, 0, len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            answers = searcher.run(pipeline, texts[start : start + chunk], [vectors[q] for q in part])
            for qid, answer in zip(part, answers, strict=True):
                run[qid] = answer.ids
            stats = answers[0].stats if answers else None
            if stats is not None:
                for key, value in stats.as_dict().items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        rerank_totals[key] = rerank_totals.get(key, 0.0) + float(value)
            if progress is not None:
                progress(pipeline, min(start + chunk, len(ids)), len(ids))
        seconds = time.perf_counter() - started
        means, per_query = score_run(run, qrels)
        result = PipelineResult(pipeline.name, means, seconds, len(ids), rerank_totals, per_query, run)
        result.params = dict(pipeline.variant_params)
        results.append(result)
    report = EvalReport(searcher.collection, split, len(ids), dict(config or {}), results)
    report.compare_with_first_stages()
    return report
