"""Where documents and keys may go (src/vllm_ranker/endpoint_security.py, README "Security").

- only http/https endpoints: anything else is a RerankParamError naming ``endpoint`` before any search;
- TLS is verified by default: a self-signed loopback HTTPS service (certificates made in the test with trustme)
  fails with a clear, non-retried TLS error; its CA in SSL_CERT_FILE makes it work, and so does the unsafe
  opt-out ``tls_verify: false``;
- redirects are not followed: a 307 to another host (127.0.0.2, or another host name) never receives the
  API key or the documents; the error says to use the final URL.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import rerank_requests
from tests.hostile.helpers import no_hang
from vllm_ranker import Function, FunctionType, MilvusClient, RerankParamError, RerankServiceError
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.testing import Recorded, Reply, RerankServer, hashed_embedding
from vllm_ranker.transport.exchange import REDIRECT_HINT, TLS_HINT

QUERY = "AI research progress"
KEY = "sk-redirect-test-key-0123456789"


def ranker(endpoint: str, **params: Any) -> Function:
    return Function(
        name="r",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "queries": [QUERY], "endpoint": endpoint, **params},
    )


def search(client: Any, endpoint: str, **params: Any) -> Any:
    return client.search(
        "docs",
        data=[hashed_embedding(QUERY, 16)],
        anns_field="dense_vector",
        limit=3,
        output_fields=["document"],
        ranker=ranker(endpoint, **params),
    )


@pytest.fixture(scope="module")
def docs_info(milvus: MilvusClient) -> CollectionInfo:
    return CollectionInfo.from_describe(milvus.describe_collection("docs"))


# -- schemes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://files.example.com/rerank", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("data:text/plain,hello", "scheme 'data'"),
        ("ws://127.0.0.1:8000/rerank", "scheme 'ws'"),
        ("gopher://127.0.0.1:70/", "scheme 'gopher'"),
        ("localhost:8000", "scheme 'localhost'"),
        ("127.0.0.1:8000/rerank", "no scheme"),
        ("//127.0.0.1:8000", "no scheme"),
        ("/v1/rerank", "no scheme"),
        ("http:///rerank", "no host"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:0/rerank", "port 0"),
        ("http://[::1/rerank", "Invalid IPv6 URL"),
        ("http://host/re\r\nrank", "non-printable"),
        ("http://ho st:8000", "Invalid"),
    ],
)
def test_only_http_and_https_endpoints(docs_info: CollectionInfo, endpoint: str, reason: str) -> None:
    with pytest.raises(RerankParamError) as caught:
        parse_ranker(ranker(endpoint), docs_info, env={})
    message = str(caught.value)
    assert message.startswith("endpoint: [") and "is not a valid http/https link" in message, message
    assert reason.lower() in message.lower(), message
    assert "\r" not in message and "\n" not in message  # control characters are shown escaped


def test_a_bad_endpoint_fails_before_any_search_or_request(client: Any, server: RerankServer) -> None:
    with pytest.raises(RerankParamError, match="endpoint: \\[file:///etc/passwd\\]"):
        search(client, "file:///etc/passwd")
    assert server.requests == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8000",
        "https://rerank.example.com/v1/rerank",
        "HTTP://LOCALHOST:8000",
        "http://[::1]:8000",
        "  http://h:1  ",
    ],
)
def test_http_and_https_endpoints_are_accepted(docs_info: CollectionInfo, endpoint: str) -> None:
    assert parse_ranker(ranker(endpoint), docs_info, env={}).targets[0].url.lower().startswith(("http", "https"))


# -- TLS -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_server(ca: trustme.CA) -> Iterator[RerankServer]:
    """The loopback rerank server behind TLS with a certificate of a CA nobody trusts (made for this test)."""
    srv = RerankServer(embedding_dim=16)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    srv._server.socket = context.wrap_socket(srv._server.socket, server_side=True)
    with srv:
        yield srv


def https(srv: RerankServer) -> str:
    return srv.endpoint.replace("http://", "https://")


def test_tls_is_verified_by_default(client: Any, https_server: RerankServer) -> None:
    with no_hang(60), pytest.raises(RerankServiceError) as caught:
        search(client, https(https_server))
    error = caught.value
    assert error.kind == "tls" and "CERTIFICATE_VERIFY_FAILED" in str(error), str(error)
    assert TLS_HINT in str(error) and "after" not in str(error).split("tls error")[1][:10]  # not retried
    assert https_server.requests == []  # nothing was sent: no document, no key


def test_tls_opt_out_is_explicit_and_works(client: Any, https_server: RerankServer) -> None:
    result = search(client, https(https_server), tls_verify="false")
    assert len(result[0]) == 3 and len(rerank_requests(https_server)) == 1
    with pytest.raises(RerankParamError, match="tls_verify: 'maybe' is not a valid bool"):
        search(client, https(https_server), tls_verify="maybe")


def test_a_trusted_ca_from_ssl_cert_file_verifies(
    https_server: RerankServer, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, milvus: MilvusClient
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    fresh = MilvusClient(uri=milvus._test_uri)  # its HTTP client reads the env
    try:
        result = search(fresh, https(https_server))
    finally:
        fresh.close()
    assert len(result[0]) == 3 and len(rerank_requests(https_server)) == 1


# -- redirects -------------------------------------------------------------------------------------------
@pytest.fixture
def elsewhere() -> Iterator[RerankServer]:
    """Another host: 127.0.0.2 is loopback on Linux but a different host to an HTTP client."""
    with RerankServer(host="127.0.0.2") as srv:
        yield srv


def redirect_to(location: str, status: int = 307) -> Any:
    def fault(recorded: Recorded) -> Reply | None:
        if not recorded.path.endswith("rerank"):
            return None
        return Reply(status=status, raw=b"", headers={"Location": location})

    return fault


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_not_followed(
    client: Any, server: RerankServer, elsewhere: RerankServer, status: int
) -> None:
    other = f"http://127.0.0.2:{elsewhere.port}/rerank"
    server.fault = redirect_to(other, status)
    with pytest.raises(RerankServiceError) as caught:
        search(client, server.endpoint, credential=KEY)
    assert f"HTTP {status}" in str(caught.value) and REDIRECT_HINT in str(caught.value)
    assert elsewhere.requests == []  # neither the key nor the documents went there
    assert [r.headers.get("authorization") for r in rerank_requests(server)] == [f"Bearer {KEY}"]  # no retry


def test_redirect_to_another_host_name_is_not_followed(client: Any, server: RerankServer) -> None:
    server.fault = redirect_to(f"http://localhost:{server.port}/v1/rerank")  # same machine, other host name
    with pytest.raises(RerankServiceError, match="HTTP 307"):
        search(client, server.endpoint, credential=KEY)
    assert len(rerank_requests(server)) == 1
