"""The library behind ``vllm-ranker ingest``, ``eval``, ``bench`` and ``demo``: corpus files, the text collection,
embeddings, ingest, search pipelines, evaluation and the load bench. Uses the public ``vllm_ranker`` API only;
its failures are ``vllm_ranker.tools.errors.ToolError``s, not the ranker's errors.
"""
