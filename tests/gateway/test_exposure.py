"""A gateway reachable from other machines (issue 26), with real components: a Gateway bound to 0.0.0.0 in front of
the session's ``milvus-lite server``, plain pymilvus calling it, the loopback rerank stand-in, and a bare TCP listener
standing for a host documents must not reach.

How "the backend received no search" is observed without a spy: the docs collection's dense field is Milvus Lite's
TEXTEMBEDDING, which calls the stand-in's ``/v1/embeddings`` to embed the query text of every search it runs. So a
search the backend ran leaves an embeddings request in the stand-in's log, and a refusal must leave none; the allowed
search beside it shows the log does fill (the test can fail). Start-up refusals are in tests/cli/test_user_errors.py
(one ``error:`` line each) and tests/unit/test_exposure.py (every rule).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pymilvus
import pytest
from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

from tests.conftest import CORPUS, rerank_function, rerank_requests
from tests.gateway import certificates
from vllm_ranker.core.endpoint_policy import EndpointPolicy
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.audit import AUDIT_LOGGER
from vllm_ranker.testing import RerankServer

Q = "AI research progress"
KW = dict(data=[Q], anns_field="dense_vector", limit=4, output_fields=["document"])
USER, PASSWORD = "auditor", "pw-audit-7f3c9e"


class Listener:
    """A host that must receive nothing: a TCP listener on loopback that records each connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.accepted.append(peer)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(2)


@pytest.fixture(scope="module")
def forbidden() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def exposed(gw_backend: str, server: RerankServer, plain: pymilvus.MilvusClient) -> Iterator[Gateway]:
    """Bound beyond loopback, as a deployment would be: a policy allowing the stand-in only; clear text, said out
    loud (--insecure), since the test has no certificate."""
    policy = EndpointPolicy.parse([server.endpoint])
    with Gateway(gw_backend, host="0.0.0.0", port=0, grace=1.0, insecure=True, endpoint_policy=policy) as gw:
        yield gw


@pytest.fixture(scope="module")
def caller(exposed: Gateway) -> Iterator[pymilvus.MilvusClient]:
    client = pymilvus.MilvusClient(uri=exposed.uri, token=f"{USER}:{PASSWORD}")
    yield client
    client.close()


def embeddings(srv: RerankServer) -> int:
    return sum(1 for r in srv.requests if r.path.endswith("embeddings"))


def test_a_forbidden_endpoint_reaches_neither_its_host_nor_the_backend(
    caller: pymilvus.MilvusClient, server: RerankServer, forbidden: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with pytest.raises(pymilvus.MilvusException) as err:
        caller.search("docs", **KW, ranker=rerank_function(forbidden.url, [Q]))
    message = err.value.message
    assert f"rerank endpoint [http://127.0.0.1:{forbidden.port}] of provider vllm is not allowed" in message
    assert f"--allow-endpoint http://127.0.0.1:{forbidden.port}" in message
    # A chain's rerank_model, the same.
    chain = (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("$score", fn.rerank_model(col("document"), queries=[Q], provider="vllm", endpoint=forbidden.url))
        .limit(2)
    )
    with pytest.raises(pymilvus.MilvusException, match="is not allowed by this server's endpoint policy"):
        caller.search("docs", **KW, function_chains=chain)
    assert forbidden.accepted == []  # no connection to the forbidden host
    assert embeddings(server) == 0 and rerank_requests(server) == []  # no first-stage search ran on the backend
    refused = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    assert len(refused) == 2  # what was known: provider and endpoint as the caller wrote them, no candidates
    for line in refused:
        assert f"provider=vllm endpoints=127.0.0.1:{forbidden.port} candidates=- outcome=error:" in line

    # The control: an allowed endpoint is reranked, and its first stage shows in the stand-in's log.
    hits = caller.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q]))
    assert len(hits[0]) == 4
    assert embeddings(server) >= 1 and len(rerank_requests(server)) == 1


def test_the_audit_line_names_who_reranked_what_and_no_secret(
    caller: pymilvus.MilvusClient, server: RerankServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    caller.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q], credential="sk-audit-key-5d1e"))
    (line,) = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    port = server.endpoint.rsplit(":", 1)[1].split("/")[0]
    assert line.startswith("rerank peer=ipv4:127.0.0.1:")
    assert f" user={USER} auth=caller db=default collection=docs method=Search provider=vllm " in line
    assert f" endpoints=127.0.0.1:{port} candidates=4 outcome=ok ms=" in line
    assert PASSWORD not in line and "sk-audit-key-5d1e" not in line
    assert Q not in line and not any(doc and doc in line for doc in CORPUS)  # no query or document text


def test_a_name_resolving_to_a_denied_address_gets_no_connection(
    gw_backend: str, plain: pymilvus.MilvusClient, forbidden: Listener
) -> None:
    # Allowed by name, denied by address: the gateway's transport resolves the name itself and refuses the address
    # before connecting, so DNS cannot route around the list.
    policy = EndpointPolicy.parse([f"http://localhost:{forbidden.port}"], ["127.0.0.0/8", "::1/128"])
    with Gateway(gw_backend, host="0.0.0.0", port=0, grace=1.0, insecure=True, endpoint_policy=policy) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        try:
            ranker = rerank_function(f"http://localhost:{forbidden.port}", [Q])
            with pytest.raises(pymilvus.MilvusException, match=r"localhost resolves to (127\.0\.0\.1|::1)"):
                client.search("docs", **KW, ranker=ranker)
        finally:
            client.close()
    assert forbidden.accepted == []


@certificates.needs_openssl
def test_the_documented_recipe_tls_policy_no_token(
    gw_backend: str, plain: pymilvus.MilvusClient, server: RerankServer, tmp_path: Path
) -> None:
    # docs/security.md's recipe as written: a self-signed certificate, TLS, a policy, no --token; each caller its own.
    cert, key = certificates.self_signed(tmp_path)
    policy = EndpointPolicy.parse([server.endpoint])
    with Gateway(
        gw_backend, host="0.0.0.0", port=0, grace=1.0, tls_cert=str(cert), tls_key=str(key), endpoint_policy=policy
    ) as gw:
        assert gw.uri.startswith("https://")
        client = pymilvus.MilvusClient(
            uri=gw.uri, token=f"{USER}:{PASSWORD}", server_pem_path=str(cert), server_name="gateway.internal"
        )
        try:
            assert len(client.search("docs", **KW, ranker=rerank_function(server.endpoint, [Q]))[0]) == 4
        finally:
            client.close()
