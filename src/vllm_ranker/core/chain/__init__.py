"""Milvus 3.0 function chains (``search(..., function_chains=chain)``) whose ``rerank_model`` names a provider we
serve: decoded from the chain's proto (``decode``), checked as Milvus Lite checks them (``validate``), planned into a
first stage and the ops after it (``plan``), and evaluated with Milvus's semantics (``evaluate``); ``flow`` is the
search as a generator of the same steps as core/flow.py, so the three drivers carry it out unchanged. No I/O."""

from vllm_ranker.core.chain.decode import chain_protos, has_model_rerank
from vllm_ranker.core.chain.flow import chain_flow, serves_chain

__all__ = ["chain_flow", "chain_protos", "has_model_rerank", "serves_chain"]
