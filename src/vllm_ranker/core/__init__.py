"""The library's core: no I/O. Parses a ranker's params, plans and orders a rerank, shapes the results.

- ``flow.py``: a model-reranked search written once, as a generator of I/O steps both clients carry out.
- ``spec.py``: the Function's params parsed and validated once (every validation message lives there).
- ``schema.py``: what the ranker needs from a collection's schema, cached per client.
- ``ordering.py``: candidates, batch plan, ordering, pagination, rounding, score normalisation.
- ``score_cache.py``, ``results.py``, ``metrics.py``, ``redaction.py``, ``coercion.py``, ``endpoint_checks.py``.
Nothing here imports the transport, the command line, the tools, the local vLLM manager or the test kit.
"""
