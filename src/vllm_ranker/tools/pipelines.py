"""The retrieval pipelines that ``eval`` and ``bench`` measure, on a collection made by ``vllm-ranker ingest``.

``bm25`` (the BM25 Function's sparse field), ``dense`` (cosine on the dense field, query embedded by the same
endpoint as the corpus), ``hybrid`` (both, fused by Milvus's RRF), and each of them ``+rerank``: the first stage
fetches ``window`` hits (for hybrid: ``window`` per request, and their union is reranked, as Milvus does for a
model ranker in hybrid_search) and a RERANK Function with ``reranker: model`` reorders them through
``vllm_ranker.MilvusClient``, so what is measured is this package's real code path and HTTP traffic. With ``window``
below ``depth`` the rest of the first stage follows the reranked window in first-stage order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllm_ranker import RerankStats
from vllm_ranker.tools.errors import ToolInputError

# pymilvus and the collection's layout (tools.ingest, which needs pymilvus) are imported where a search is made:
# `vllm-ranker bench --help` lists this module's pipeline names and must not pay for pymilvus.
if TYPE_CHECKING:
    from pymilvus import Function

    from vllm_ranker import MilvusClient

FIRST_STAGES = ("bm25", "dense", "hybrid")
ALL_PIPELINES = ("bm25", "dense", "hybrid", "bm25+rerank", "dense+rerank", "hybrid+rerank")
RRF_K = 60  # Milvus's default, and the value of the RRF paper
VARIANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True, slots=True)
class Pipeline:
    first_stage: str
    rerank: bool
    # A named variant of a +rerank pipeline (eval --variant NAME=JSON): its params are merged over the others, and
    # it is compared with the plain +rerank of the same first stage.
    variant: str = ""
    variant_params: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return self.first_stage + ("+rerank" if self.rerank else "") + (f":{self.variant}" if self.variant else "")

    @property
    def baseline(self) -> str:
        """The pipeline this one is compared with: a variant with its plain +rerank, a +rerank with its first stage."""
        return self.first_stage + "+rerank" if self.variant else self.first_stage

    def with_variant(self, name: str, params: Mapping[str, Any]) -> Pipeline:
        if not self.rerank:
            raise ToolInputError(f"pipeline {self.name} does not rerank: a variant applies to +rerank pipelines")
        if not VARIANT_NAME.fullmatch(name):
            raise ToolInputError(f"variant name {name!r}: use letters, digits, '_' or '-' (e.g. title, chunk120)")
        return Pipeline(self.first_stage, True, name, dict(params))

    @classmethod
    def parse(cls, name: str) -> Pipeline:
        stage, plus, rest = name.strip().lower().partition("+")
        if stage not in FIRST_STAGES or (plus and rest != "rerank"):
            raise ToolInputError(
                f"unknown pipeline {name!r}: use one of {', '.join(ALL_PIPELINES)} (comma-separated, or 'all')"
            )
        return cls(stage, bool(plus))


def parse_pipelines(spec: str) -> list[Pipeline]:
    names = ALL_PIPELINES if spec.strip().lower() == "all" else [n for n in re.split(r"[,\s]+", spec) if n]
    return [Pipeline.parse(n) for n in names]


@dataclass(frozen=True)
class RerankConfig:
    """The RERANK Function's params: provider, endpoint(s), window and the scoring options."""

    endpoints: tuple[str, ...]
    provider: str = "vllm"
    model: str | None = None
    window: int = 100
    max_batch: int = 32
    truncate_prompt_tokens: int | None = -1
    timeout: float = 600.0  # seconds for one call's whole rerank: a CPU server takes seconds per 100 documents
    max_concurrency: int = 8
    cache: bool = False  # reuse (query, document) scores across calls: pipelines sharing candidates pay once
    api_key: str | None = field(default=None, repr=False)
    # More of the Function's params (eval/bench --rerank-params), e.g. chunk or fuse: merged last, so they win.
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    text_field: str | None = None  # the VARCHAR field the model reads (input_field_names); None: ingest's title + body

    def function(self, queries: Sequence[str], variant: Mapping[str, Any] | None = None) -> Function:
        """The RERANK Function for ``queries``; a variant's params are merged over ``params``."""
        from pymilvus import Function, FunctionType

        from vllm_ranker.tools.ingest import TEXT_FIELD

        params: dict[str, Any] = {
            "reranker": "model",
            "provider": self.provider,
            "queries": list(queries),
            "endpoint": list(self.endpoints) if len(self.endpoints) > 1 else self.endpoints[0],
            "maxBatch": self.max_batch,
            "timeout": self.timeout,
            "max_concurrency": self.max_concurrency,
        }
        if self.model:
            params["model_name"] = self.model
        if self.truncate_prompt_tokens is not None and self.provider == "vllm":
            params["truncate_prompt_tokens"] = self.truncate_prompt_tokens
        if self.cache:
            params["cache"] = True
        if self.api_key:
            params["api_key"] = self.api_key
        params.update(self.params)
        params.update(variant or {})
        return Function(
            name="rerank",
            input_field_names=[self.text_field or TEXT_FIELD],
            function_type=FunctionType.RERANK,
            params=params,
        )


@dataclass
class Ranked:
    """One query's answer: document ids best first, and (for +rerank) the call's stats."""

    ids: list[str]
    stats: RerankStats | None = None


class Searcher:
    """Runs pipelines on one collection; queries come as texts and their dense vectors (same order)."""

    def __init__(
        self,
        client: MilvusClient,
        collection: str,
        *,
        depth: int = 100,
        rerank: RerankConfig | None = None,
    ) -> None:
        if depth < 1:
            raise ToolInputError(f"depth {depth} must be at least 1")
        self.client = client
        self.collection = collection
        self.depth = depth
        self.rerank = rerank

    def run(self, pipeline: Pipeline, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> list[Ranked]:
        """Answers for a batch of queries (one Milvus call per request kind, nq = len(texts))."""
        from pymilvus import AnnSearchRequest, RRFRanker

        from vllm_ranker.tools.ingest import DENSE_FIELD, ID_FIELD, SPARSE_FIELD

        if len(texts) != len(vectors):
            raise ToolInputError(f"{len(texts)} query texts but {len(vectors)} query vectors")
        if not texts:
            return []
        if pipeline.rerank and self.rerank is None:
            raise ToolInputError(f"pipeline {pipeline.name} needs a rerank endpoint (--rerank-endpoint)")
        window = self.rerank.window if (pipeline.rerank and self.rerank) else self.depth
        ranker = self.rerank.function(texts, pipeline.variant_params) if (pipeline.rerank and self.rerank) else None
        vecs = [list(v) for v in vectors]
        out_fields = [ID_FIELD]
        if pipeline.first_stage == "hybrid":
            reqs = [
                AnnSearchRequest(vecs, DENSE_FIELD, {"metric_type": "COSINE"}, limit=window),
                AnnSearchRequest(list(texts), SPARSE_FIELD, {"metric_type": "BM25"}, limit=window),
            ]
            # A model ranker reranks the union of both requests (up to 2 x window) and returns `depth` of them.
            result = self.client.hybrid_search(
                self.collection,
                reqs,
                ranker=ranker if ranker is not None else RRFRanker(RRF_K),
                limit=self.depth,
                output_fields=out_fields,
            )
        else:
            dense = pipeline.first_stage == "dense"
            result = self.client.search(
                self.collection,
                data=vecs if dense else list(texts),
                anns_field=DENSE_FIELD if dense else SPARSE_FIELD,
                search_params={"metric_type": "COSINE" if dense else "BM25"},
                limit=window,
                output_fields=out_fields,
                ranker=ranker,
            )
        stats = result.extra.get("rerank") if ranker is not None and hasattr(result, "extra") else None
        # One stats record covers the whole call; with nq > 1 it is shared by its queries.
        ranked = [Ranked([str(hit[ID_FIELD]) for hit in hits][: self.depth], stats) for hits in result]
        if ranker is not None and window < self.depth:
            # The usual practice: the reranked window first, then the rest of the first stage in its own order, so
            # every pipeline is scored on the same depth (a bare window would cut Recall@depth for no reason).
            first = self.run(Pipeline(pipeline.first_stage, False), texts, vectors)
            for answer, base in zip(ranked, first, strict=True):
                seen = set(answer.ids)
                answer.ids.extend(d for d in base.ids if d not in seen)
                del answer.ids[self.depth :]
        return ranked
