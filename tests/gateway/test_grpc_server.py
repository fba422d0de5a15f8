"""The gateway's gRPC server (proxy.py's ``GatewayHandler``), the path that serves whenever the splicing front
cannot: TLS to the SDK, a ``--token`` lent to callers (both turn the front off), a TLS backend, ``--no-splice``.
Covered as the front is (test_front.py, test_faults.py): plain, reranked and passthrough calls over TLS, the
token, and a backend that goes away and comes back.

The backend is a ``RecordingBackend`` in front of the session's Milvus Lite, which neither authenticates nor logs
its callers: the token tests check the ``authorization`` each call reached the backend with (the backend stays
the authority; one that refuses a token cannot run in this tier, Milvus Lite checks none). Stopped and started on
its port, it is also the backend that goes away.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pymilvus
import pytest

from tests.conftest import rerank_function, rerank_requests
from tests.gateway import certificates
from tests.gateway.certificates import needs_openssl
from tests.gateway.recording_backend import RecordingBackend
from tests.gateway.test_pymilvus import QUERIES, rows
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer

DUMP_MESSAGES = "/milvus.proto.milvus.MilvusService/DumpMessages"  # server-streaming; Milvus Lite: UNIMPLEMENTED
GATEWAY_TOKEN = "gateway:Gw-token-1"
CALLER_TOKEN = "alice:Alice-pw-2"
PLAIN_SEARCH: dict[str, Any] = dict(data=QUERIES, anns_field="sparse_vector", limit=5, output_fields=["document"])


def authorization(token: str) -> str:
    """The header pymilvus (and the gateway, for its --token) sends a token in."""
    return base64.b64encode(token.encode()).decode()


def reranked(client: pymilvus.MilvusClient | MilvusClient, endpoint: str) -> Any:
    return client.search("docs", **PLAIN_SEARCH, ranker=rerank_function(endpoint, QUERIES), timeout=30)


def dump_messages(channel: grpc.Channel) -> grpc.RpcError:
    """A streaming call; the error it ends with (Milvus Lite implements none of the streaming methods)."""
    with pytest.raises(grpc.RpcError) as caught:
        list(channel.unary_stream(DUMP_MESSAGES)(b"", timeout=10))
    return caught.value


# TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key): docs/security.md's self-signed openssl certificate, as test_exposure.py makes it."""
    return certificates.self_signed(tmp_path_factory.mktemp("grpc-server-tls"))


@pytest.fixture(scope="module")
def tls_gateway(recorded: RecordingBackend, self_signed: tuple[Path, Path]) -> Iterator[Gateway]:
    cert, key = self_signed
    with Gateway(recorded.uri, port=0, grace=1.0, tls_cert=str(cert), tls_key=str(key)) as gw:
        yield gw


@pytest.fixture(scope="module")
def tls_client(tls_gateway: Gateway, self_signed: tuple[Path, Path]) -> Iterator[pymilvus.MilvusClient]:
    client = pymilvus.MilvusClient(
        uri=tls_gateway.uri, server_pem_path=str(self_signed[0]), server_name="gateway.internal"
    )
    yield client
    client.close()


@needs_openssl
def test_over_tls_plain_and_reranked_searches_and_passthrough_calls_answer_as_milvus(
    tls_gateway: Gateway,
    tls_client: pymilvus.MilvusClient,
    direct: pymilvus.MilvusClient,
    ours: MilvusClient,
    server: RerankServer,
) -> None:
    assert tls_gateway.uri.startswith("https://")
    # Passthrough: the backend's own answers.
    assert tls_client.list_collections() == direct.list_collections()
    query: dict[str, Any] = dict(filter="id < 4", output_fields=["document", "year"])
    assert tls_client.query("docs", **query) == direct.query("docs", **query)
    assert rows(tls_client.search("docs", **PLAIN_SEARCH)) == rows(direct.search("docs", **PLAIN_SEARCH))
    # Reranked by the gateway (the stand-in scored the hits): the Python client's answer on the backend itself.
    got = reranked(tls_client, server.endpoint)
    assert rerank_requests(server) != []
    assert rows(got) == rows(reranked(ours, server.endpoint))


@needs_openssl
def test_the_tls_port_refuses_clear_text_and_serves_on(tls_gateway: Gateway, tls_client: pymilvus.MilvusClient) -> None:
    with grpc.insecure_channel(tls_gateway.uri.removeprefix("https://")) as channel:
        error = dump_messages(channel)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "docs" in tls_client.list_collections()


@needs_openssl
def test_a_streaming_call_over_tls_gets_the_backends_code(
    tls_gateway: Gateway, self_signed: tuple[Path, Path], gw_backend: str
) -> None:
    credentials = grpc.ssl_channel_credentials(self_signed[0].read_bytes())
    options = [("grpc.ssl_target_name_override", "gateway.internal")]
    with grpc.secure_channel(tls_gateway.uri.removeprefix("https://"), credentials, options) as channel:
        got = dump_messages(channel)
    with grpc.insecure_channel(gw_backend.removeprefix("http://")) as channel:
        want = dump_messages(channel)
    assert got.code() == want.code() == grpc.StatusCode.UNIMPLEMENTED


# --token


@pytest.fixture(scope="module")
def tokened(recorded: RecordingBackend) -> Iterator[Gateway]:
    with Gateway(recorded.uri, port=0, grace=1.0, token=GATEWAY_TOKEN) as gw:
        yield gw


@pytest.mark.parametrize("caller_token", ["", CALLER_TOKEN], ids=["caller-without-token", "caller-with-token"])
def test_the_backend_receives_the_callers_token_else_the_gateways(
    tokened: Gateway, recorded: RecordingBackend, server: RerankServer, caller_token: str
) -> None:
    client = pymilvus.MilvusClient(uri=tokened.uri, token=caller_token)
    try:
        recorded.seen.clear()
        assert "docs" in client.list_collections()  # passthrough
        assert len(client.search("docs", **PLAIN_SEARCH)[0]) == 5  # a search forwarded as it came
        assert len(reranked(client, server.endpoint)[0]) == 5  # the reranker's describe and first stage
        with grpc.insecure_channel(tokened.uri.removeprefix("http://")) as channel:  # streaming, no metadata
            metadata = [("authorization", authorization(caller_token))] if caller_token else []
            with pytest.raises(grpc.RpcError):
                list(channel.unary_stream(DUMP_MESSAGES)(b"", metadata=metadata, timeout=10))
    finally:
        client.close()
    seen = {call.method.rpartition("/")[2]: call.metadata.get("authorization") for call in recorded.seen}
    assert {"ShowCollections", "Search", "DumpMessages"} <= set(seen)  # Describe: only when no schema is cached
    want = authorization(caller_token or GATEWAY_TOKEN)
    assert all(call.metadata.get("authorization") == want for call in recorded.seen), seen
    assert rerank_requests(server) != []  # the reranked search really was the gateway's


# The backend goes away and comes back


@pytest.fixture
def killable(gw_backend: str, plain: pymilvus.MilvusClient) -> Iterator[RecordingBackend]:
    backend = RecordingBackend(gw_backend).start()
    yield backend
    backend.close()


def eventually(call: Callable[[], Any], within: float = 30.0) -> Any:
    """The call's answer once it succeeds: the gateway's channel reconnects after gRPC's reconnect backoff."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except (pymilvus.MilvusException, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("splice", [False, True], ids=["grpc-server", "front"])
def test_a_backend_that_goes_gives_milvus_unavailable_and_is_served_again_when_back(
    killable: RecordingBackend, server: RerankServer, splice: bool
) -> None:
    with Gateway(killable.uri, port=0, grace=1.0, splice=splice) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        channel = grpc.insecure_channel(gw.uri.removeprefix("http://"))
        try:
            assert len(reranked(client, server.endpoint)[0]) == 5
            killable.stop()
            calls: list[Callable[[], Any]] = [
                lambda: reranked(client, server.endpoint),
                lambda: client.search("docs", **PLAIN_SEARCH),
                lambda: client.has_collection("docs"),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(pymilvus.MilvusException) as caught:
                    call()
                assert time.monotonic() - started < 10  # at once: no pymilvus retries for a minute
                message = caught.value.message
                assert message.startswith("service unavailable: the gateway cannot reach the Milvus backend ")
                assert killable.uri in message
            error = dump_messages(channel)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert f"the gateway cannot reach the Milvus backend {killable.uri}" in (error.details() or "")

            killable.start()  # the same port: the gateway's channel finds it again
            assert eventually(lambda: client.has_collection("docs"))
            assert len(reranked(client, server.endpoint)[0]) == 5
            assert dump_messages(channel).code() == grpc.StatusCode.UNIMPLEMENTED  # the backend's own answer
        finally:
            channel.close()
            client.close()
