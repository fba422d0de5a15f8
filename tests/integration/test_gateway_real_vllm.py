"""The real-vLLM tier through the gateway: the seed's search, plain pymilvus -> gateway -> a real vLLM server.
Skipped (failed when CI=true) where the vLLM venv is missing, like the rest of the ``vllm`` tier."""

from __future__ import annotations

from typing import Any

import pymilvus
import pytest

from tests.conftest import rerank_function

# In this tier so that it shares the tier's one vLLM; the gateway's fixtures (a milvus-lite server and a gateway
# in front of it) are cheap to start a second time.
from tests.gateway.conftest import gateway, gw_backend, ours, plain
from vllm_ranker import MilvusClient

pytestmark = pytest.mark.vllm
__all__ = ["gateway", "gw_backend", "ours", "plain"]

BF16_TOLERANCE = 2e-2


def test_seed_search_through_the_gateway_with_a_real_vllm(
    minilm_server: Any, plain: pymilvus.MilvusClient, ours: MilvusClient
) -> None:
    """minilm_server first: without vLLM the test skips before any backend starts."""
    queries = ["AI Research Progress", "What is AI"]
    fn = rerank_function(minilm_server.endpoint, queries, maxBatch=64, truncate_prompt_tokens=256)
    kwargs: dict[str, Any] = dict(
        data=queries, anns_field="sparse_vector", limit=5, output_fields=["document"], ranker=fn
    )
    got = plain.search("docs", **kwargs)
    want = ours.search("docs", **kwargs)
    # vLLM on CPU computes in bfloat16 where the CPU has it: a score depends on which requests the engine batched
    # together (padding), so two identical searches may differ in the 3rd decimal and swap near-ties. Compare per
    # hit with a bf16-sized tolerance, and require the order to differ only where scores tie within it.
    for q in range(len(queries)):
        through_gateway = {h["id"]: h["distance"] for h in got[q]}
        direct = {h["id"]: h["distance"] for h in want[q]}
        assert through_gateway.keys() == direct.keys()
        for hit_id, score in direct.items():
            assert through_gateway[hit_id] == pytest.approx(score, abs=BF16_TOLERANCE)
        for mine, theirs in zip(got[q], want[q], strict=True):
            if mine["id"] != theirs["id"]:
                assert mine["distance"] == pytest.approx(theirs["distance"], abs=BF16_TOLERANCE)
