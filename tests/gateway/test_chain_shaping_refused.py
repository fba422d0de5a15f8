"""Through the gateway (plain pymilvus, chains decoded from the wire): a chain's ``rerank_model`` with one of the
2.6 Function's shaping params is refused with the clients' message (tests/chain/test_shaping_refused.py) before
the backend sees any search, and the model is never called."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import rerank_requests
from tests.gateway.recording_backend import RecordingBackend
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer

Q1 = "AI research progress"
SHAPING = {
    "chunk": {"words": 50, "overlap": 10},
    "document_template": "{document}",
    "keep_first_stage": True,
    "fuse": {"method": "weighted", "weight": 0.7},
}


@pytest.fixture(scope="module")
def recorded_client(recorded: RecordingBackend) -> Iterator[pymilvus.MilvusClient]:
    """Plain pymilvus on a gateway in front of the recording backend (which relays to the session's data)."""
    with Gateway(recorded.uri, port=0, grace=1.0) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        yield client
        client.close()


def _chain(endpoint: str, **extra: Any) -> FunctionChain:
    model = fn.rerank_model(col("document"), queries=[Q1], provider="vllm", endpoint=endpoint, **extra)
    return FunctionChain(FunctionChainStage.L2_RERANK).map("$score", model).limit(3)


@pytest.mark.parametrize("param", sorted(SHAPING))
def test_a_shaped_chain_is_refused_by_the_gateway_before_any_search(
    recorded_client: pymilvus.MilvusClient, recorded: RecordingBackend, server: RerankServer, param: str
) -> None:
    kw: dict[str, Any] = dict(data=[Q1], anns_field="dense_vector", limit=5)
    recorded.seen.clear()
    with pytest.raises(pymilvus.MilvusException) as refused:
        recorded_client.search("docs", **kw, function_chains=_chain(server.endpoint, **{param: SHAPING[param]}))
    message = refused.value.message
    assert message.startswith(f"function chain op[0] expression rerank_model: {param} is a RERANK Function param, "), (
        message
    )
    assert "ranker=" in message and "num_combine" in message, message
    assert recorded.calls("Search") == []
    assert rerank_requests(server) == []
    # The same chain without the param is served: the refusal is the param's, not the chain's.
    assert len(recorded_client.search("docs", **kw, function_chains=_chain(server.endpoint))[0]) == 3
    assert len(recorded.calls("Search")) == 1
