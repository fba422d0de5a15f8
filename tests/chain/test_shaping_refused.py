"""A chain's ``rerank_model`` refuses the 2.6 Function's opt-in shaping params (``chunk``, ``document_template``,
``keep_first_stage``, ``fuse``: docs/beyond-milvus.md): the chain path reranks the plain texts and writes only the
model's score into its column, so the params would be silently ignored. Both clients refuse them before any
search, naming the param and what to do instead (tests/gateway/test_chain_shaping_refused.py: the gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import rerank_requests
from vllm_ranker import RerankParamError
from vllm_ranker.testing import RerankServer

Q1 = "AI research progress"
# Each param with a value the 2.6 Function accepts (docs/beyond-milvus.md), so the refusal is the chain's alone.
SHAPING = {
    "chunk": {"words": 50, "overlap": 10},
    "document_template": "{document}",
    "keep_first_stage": True,
    "fuse": {"method": "rrf", "k": 60},
}


def shaped_chain(endpoint: str, **extra: Any) -> FunctionChain:
    model = fn.rerank_model(col("document"), queries=[Q1], provider="vllm", endpoint=endpoint, **extra)
    return FunctionChain(FunctionChainStage.L2_RERANK).map("$score", model).limit(3)


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every first-stage search that reaches pymilvus (both clients' flows search through their pymilvus base)."""
    calls: list[Any] = []
    for cls in (pymilvus.MilvusClient, pymilvus.AsyncMilvusClient):
        original = cls.search

        def spy(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "search", spy)
    yield calls


def assert_refused(message: str, *names: str) -> None:
    for name in names:
        assert name in message, message
    assert "ranker=" in message, message  # where the params do apply
    assert "num_combine" in message, message  # what a chain uses instead


@pytest.mark.parametrize("param", sorted(SHAPING))
def test_each_shaping_param_is_refused_before_any_search(
    client: Any, server: RerankServer, searched: list[Any], param: str
) -> None:
    chain = shaped_chain(server.endpoint, **{param: SHAPING[param]})
    with pytest.raises(RerankParamError) as refused:
        client.search("docs", data=[Q1], anns_field="dense_vector", limit=5, function_chains=chain)
    message = str(refused.value)
    assert message.startswith(f"function chain op[0] expression rerank_model: {param} "), message
    assert_refused(message, param)
    assert searched == []
    assert rerank_requests(server) == []


def test_every_shaping_param_is_named_and_case_does_not_hide_one(
    client: Any, server: RerankServer, searched: list[Any]
) -> None:
    # core/spec.py reads params case-insensitively, so an upper-case key would have been read too.
    extra = {"Chunk": SHAPING["chunk"], "FUSE": SHAPING["fuse"], "keep_first_stage": False}
    chain = shaped_chain(server.endpoint, **extra)
    with pytest.raises(RerankParamError) as refused:
        client.search("docs", data=[Q1], anns_field="dense_vector", limit=5, function_chains=chain)
    assert_refused(str(refused.value), "Chunk", "FUSE", "keep_first_stage")
    assert searched == []


def test_a_chain_without_shaping_still_reranks(client: Any, server: RerankServer) -> None:
    res = client.search(
        "docs", data=[Q1], anns_field="dense_vector", limit=5, function_chains=shaped_chain(server.endpoint)
    )
    assert len(res[0]) == 3
    assert len(rerank_requests(server)) == 1


def test_hybrid_search_with_a_shaped_chain_is_refused_before_any_search(
    client: Any, server: RerankServer, searched: list[Any]
) -> None:
    # A chain on hybrid_search is refused whatever it holds (Milvus: not supported yet); shaping changes nothing.
    request = pymilvus.AnnSearchRequest([Q1], "dense_vector", {}, limit=5)
    chain = shaped_chain(server.endpoint, chunk=SHAPING["chunk"])
    with pytest.raises(RerankParamError, match=r"^function_chains is not supported for hybrid search yet: "):
        client.hybrid_search("docs", [request], pymilvus.RRFRanker(), limit=3, function_chains=chain)
    assert searched == []
