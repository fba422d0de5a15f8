"""The library behind ``vllm-ranker ingest``, ``eval``, ``bench`` and ``demo``: corpus files, the text collection,
embeddings, ingest, search pipelines, evaluation and the load bench. Uses the public ``vllm_ranker`` API only;
its failures are ``vllm_ranker.tools.errors.ToolError``s, not the ranker's errors.

The names below are what the command line uses: it imports them from ``vllm_ranker.tools``, never from a module
here. They are loaded on first use (PEP 562), so ``vllm-ranker ingest --help`` pays for none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm_ranker.values import lazy_face

# name -> (module under vllm_ranker.tools, its name there)
_FACE: dict[str, tuple[str, str]] = {
    "format_p": ("comparison", "format_p"),
    "kind_note": ("comparison", "kind_note"),
    "Columns": ("corpus_files", "Columns"),
    "corpus_path": ("corpus_files", "corpus_path"),
    "read_corpus": ("corpus_files", "read_corpus"),
    "read_qrels": ("corpus_files", "read_qrels"),
    "read_queries": ("corpus_files", "read_queries"),
    "stdlib_docs": ("demo_corpus", "stdlib_docs"),
    "Embedder": ("embeddings", "Embedder"),
    "ToolError": ("errors", "ToolError"),
    "ToolInputError": ("errors", "ToolInputError"),
    "EvalReport": ("evaluation", "EvalReport"),
    "embed_queries": ("evaluation", "embed_queries"),
    "evaluate": ("evaluation", "evaluate"),
    "require_extra": ("evaluation", "require_extra"),
    "DENSE_INDEXES": ("ingest", "DENSE_INDEXES"),
    "IngestReport": ("ingest", "IngestReport"),
    "ingest_corpus": ("ingest", "ingest"),  # not "ingest": that is the module's name, an attribute of this package
    "BenchReport": ("load_bench", "BenchReport"),
    "run_bench": ("load_bench", "run_bench"),
    "ALL_PIPELINES": ("pipelines", "ALL_PIPELINES"),
    "Pipeline": ("pipelines", "Pipeline"),
    "RerankConfig": ("pipelines", "RerankConfig"),
    "Searcher": ("pipelines", "Searcher"),
    "parse_pipelines": ("pipelines", "parse_pipelines"),
    "add_text_fields": ("text_collection", "add_text_fields"),
    "text_index_params": ("text_collection", "text_index_params"),
}
__all__ = [
    "ALL_PIPELINES",
    "DENSE_INDEXES",
    "BenchReport",
    "Columns",
    "Embedder",
    "EvalReport",
    "IngestReport",
    "Pipeline",
    "RerankConfig",
    "Searcher",
    "ToolError",
    "ToolInputError",
    "add_text_fields",
    "corpus_path",
    "embed_queries",
    "evaluate",
    "format_p",
    "ingest_corpus",
    "kind_note",
    "parse_pipelines",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "require_extra",
    "run_bench",
    "stdlib_docs",
    "text_index_params",
]

if TYPE_CHECKING:
    from vllm_ranker.tools.comparison import format_p, kind_note
    from vllm_ranker.tools.corpus_files import Columns, corpus_path, read_corpus, read_qrels, read_queries
    from vllm_ranker.tools.demo_corpus import stdlib_docs
    from vllm_ranker.tools.embeddings import Embedder
    from vllm_ranker.tools.errors import ToolError, ToolInputError
    from vllm_ranker.tools.evaluation import EvalReport, embed_queries, evaluate, require_extra
    from vllm_ranker.tools.ingest import DENSE_INDEXES, IngestReport
    from vllm_ranker.tools.ingest import ingest as ingest_corpus
    from vllm_ranker.tools.load_bench import BenchReport, run_bench
    from vllm_ranker.tools.pipelines import ALL_PIPELINES, Pipeline, RerankConfig, Searcher, parse_pipelines
    from vllm_ranker.tools.text_collection import add_text_fields, text_index_params


__getattr__ = lazy_face(globals(), _FACE, within=True)
