"""The endpoint policy in the clients (issue 26): where documents may go, checked before the first-stage search by
name, and where the socket is made by address (a name cannot route around the list)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import CORPUS, create_docs_collection, rerank_function, rerank_requests
from vllm_ranker import AsyncMilvusClient, MilvusClient, RerankParamError
from vllm_ranker.core.driver import drive
from vllm_ranker.core.endpoint_policy import ANY, EndpointPolicy
from vllm_ranker.core.provider_config import ProviderConfigError
from vllm_ranker.testing import RerankServer

Q = "AI research progress"
KW: dict[str, Any] = dict(data=[Q], anns_field="dense_vector", limit=4, output_fields=["document"])


def _policy(allowed: list[str], denied: list[str] | None = None) -> dict[str, Any]:
    """The configuration file's section, as a mapping (rerank_config= takes either)."""
    return {"vllm_ranker": {"allowed_endpoints": allowed, "denied_addresses": denied or []}}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, server: RerankServer) -> str:
    path = str(tmp_path_factory.mktemp("policy") / "policy.db")
    client = MilvusClient(uri=path)
    create_docs_collection(client, "docs", server.endpoint, CORPUS)
    client.close()
    return path


def _port(server: RerankServer) -> int:
    return int(server.endpoint.rsplit(":", 1)[1].split("/")[0])


def test_a_forbidden_endpoint_is_refused_before_the_first_stage(db: str, server: RerankServer) -> None:
    client = MilvusClient(uri=db, rerank_config=_policy(["http://10.0.0.1:8000"]))
    searched: list[Any] = []

    def searches(calls: list[dict[str, Any]]) -> list[Any]:  # the real search, recorded
        searched.append(calls)
        return [pymilvus.MilvusClient.search(client, **call) for call in calls]

    flow = client._search_flow("docs", rerank_function(server.endpoint, [Q]), dict(KW))
    with pytest.raises(RerankParamError) as err:
        drive(flow, client.describe_collection, searches, lambda s: client._http().rerank(s.spec, s.batches, s.stats))
    assert str(err.value).startswith(f"rerank endpoint [http://127.0.0.1:{_port(server)}] of provider vllm is not")
    assert f"vllm_ranker.allowed_endpoints http://127.0.0.1:{_port(server)}" in str(err.value)
    assert searched == [] and rerank_requests(server) == []
    # A chain's rerank_model, the same.
    chain = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=[Q], provider="vllm", endpoint=server.endpoint))
        .limit(2)
    )
    with pytest.raises(RerankParamError, match=r"^rerank endpoint \[http://127\.0\.0\.1:\d+\] of provider vllm"):
        client.search("docs", **KW, function_chains=chain)
    assert rerank_requests(server) == []
    client.close()


def test_an_allowed_prefix_reranks(db: str, server: RerankServer) -> None:
    client = MilvusClient(uri=db, rerank_config=_policy([f"http://127.0.0.1:{_port(server)}"]))
    assert len(client.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q]))[0]) == 4
    assert len(rerank_requests(server)) == 1
    client.close()


def _localhost_denied(server: RerankServer) -> dict[str, Any]:
    # Allowed by name, but the name resolves to a denied network: the address wins.
    return _policy([f"http://localhost:{_port(server)}"], ["127.0.0.0/8", "::1/128"])


class Listener:
    """A bare TCP listener on loopback that counts the connections it accepts (what a forbidden host sees)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_name_resolving_to_a_denied_address_is_refused_sync(db: str) -> None:
    listener = Listener()
    config = _policy([f"http://localhost:{listener.port}"], ["127.0.0.0/8", "::1/128"])
    client = MilvusClient(uri=db, rerank_config=config)
    endpoint = f"http://localhost:{listener.port}"
    with pytest.raises(RerankParamError, match=r"^rerank endpoint host localhost resolves to (127\.0\.0\.1|::1), in"):
        client.search("docs", **KW, ranker=rerank_function(endpoint, [Q]))
    assert listener.accepted == 0  # refused before connecting: the host never saw the gateway
    # By name, the same listener is refused before the first stage (a prefix it does not match).
    other = MilvusClient(uri=db, rerank_config=_policy(["http://10.0.0.1:8000"]))
    with pytest.raises(RerankParamError, match="is not allowed by this server's endpoint policy"):
        other.search("docs", **KW, ranker=rerank_function(f"http://127.0.0.1:{listener.port}", [Q]))
    assert listener.accepted == 0
    client.close()
    other.close()
    listener.close()


def test_a_name_resolving_to_a_denied_address_is_refused_async(db: str, server: RerankServer) -> None:
    async def run() -> None:
        client = AsyncMilvusClient(uri=db, rerank_config=_localhost_denied(server))
        try:
            with pytest.raises(RerankParamError, match=r"^rerank endpoint host localhost resolves to"):
                await client.search("docs", **KW, ranker=rerank_function(f"http://localhost:{_port(server)}", [Q]))
        finally:
            await client.close()

    asyncio.run(run())
    assert rerank_requests(server) == []


def test_allowed_by_address_beats_a_denied_network(db: str, server: RerankServer) -> None:
    config = _policy([f"http://localhost:{_port(server)}", "127.0.0.1"], ["127.0.0.0/8", "::1/128"])
    client = MilvusClient(uri=db, rerank_config=config)
    endpoint = f"http://127.0.0.1:{_port(server)}"  # an address literal in the allowed addresses
    assert len(client.search("docs", **KW, ranker=rerank_function(endpoint, [Q]))[0]) == 4
    client.close()


def test_metadata_addresses_are_refused_even_when_named(db: str, server: RerankServer) -> None:
    client = MilvusClient(uri=db, rerank_config=_policy(["http://169.254.169.254"]))
    with pytest.raises(RerankParamError, match=r"resolves to 169\.254\.169\.254, in 169\.254\.0\.0/16"):
        client.search("docs", **KW, ranker=rerank_function("http://169.254.169.254/latest", [Q], max_retries=0))
    client.close()


def test_the_policy_parses_and_says_what_to_change(tmp_path: Path) -> None:
    policy = EndpointPolicy.parse(["https://API.cohere.com/v2/", "10.0.0.0/8"], ["127.0.0.0/8"])
    assert policy.allows("https://api.cohere.com:443/v2/rerank")
    assert not policy.allows("https://api.cohere.com/v20/rerank")  # a segment boundary, not a string prefix
    assert not policy.allows("http://api.cohere.com/v2/rerank")  # another scheme
    assert policy.allows("http://10.2.3.4:8000/rerank") and not policy.allows("http://11.0.0.1/rerank")
    assert ANY.allows("http://anything:1") and str(ANY) == "any endpoint"
    for bad in ("ftp://x", "vllm:8000", "http://"):
        with pytest.raises(ValueError, match="give"):
            EndpointPolicy.parse([bad])


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_through_a_proxy_the_name_is_checked_before_the_request(
    db: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """With HTTP_PROXY the socket goes to the proxy, which resolves the name: so the name is resolved and checked
    first, and the proxy receives nothing for a refused one."""
    proxy = Listener()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = _policy(["http://169.254.169.254", "127.0.0.1"])  # the target by name, the proxy by address
    ranker = rerank_function("http://169.254.169.254", [Q], max_retries=0)
    match = r"resolves to 169\.254\.169\.254, in 169\.254\.0\.0/16"
    if kind == "sync":
        client = MilvusClient(uri=db, rerank_config=config)
        with pytest.raises(RerankParamError, match=match):
            client.search("docs", **KW, ranker=ranker)
        client.close()
    else:

        async def run() -> None:
            aclient = AsyncMilvusClient(uri=db, rerank_config=config)
            try:
                with pytest.raises(RerankParamError, match=match):
                    await aclient.search("docs", **KW, ranker=ranker)
            finally:
                await aclient.close()

        asyncio.run(run())
    assert proxy.accepted == 0
    proxy.close()


def test_a_deny_list_without_an_allowlist_is_refused(db: str) -> None:
    with pytest.raises(ProviderConfigError, match=r"^vllm_ranker\.denied_addresses needs vllm_ranker\.allowed_endp"):
        MilvusClient(uri=db, rerank_config={"vllm_ranker": {"denied_addresses": ["10.0.0.0/8"]}})
