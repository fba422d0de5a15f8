"""The bytes-level passthrough itself: unknown methods, the backend's own gRPC status codes, metadata (database),
deadlines, TLS, and the Prometheus counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import prometheus_client
import pymilvus
import pytest
import trustme
from pymilvus.grpc_gen import milvus_pb2

from tests.conftest import rerank_function
from tests.gateway.test_faults import search, small_collection
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer

SERVICE = "/milvus.proto.milvus.MilvusService/"


def raw_call(uri: str, method: str, payload: bytes, timeout: float | None = 10) -> grpc.RpcError | bytes:
    with grpc.insecure_channel(uri.removeprefix("http://")) as channel:
        try:
            answer: bytes = channel.unary_unary(method)(payload, timeout=timeout)
            return answer
        except grpc.RpcError as exc:
            return exc


@pytest.mark.parametrize(
    "method",
    [SERVICE + "NoSuchMethodYet", "/some.other.Service/Call", SERVICE + "AllocTimestamp"],
)
def test_unknown_and_unimplemented_methods_keep_the_backends_code(
    gateway: Gateway, gw_backend: str, method: str
) -> None:
    payload = milvus_pb2.AllocTimestampRequest().SerializeToString()
    got, want = raw_call(gateway.uri, method, payload), raw_call(gw_backend, method, payload)
    if isinstance(want, bytes):
        assert got == want
    else:
        assert isinstance(got, grpc.RpcError)
        assert got.code() == want.code()


def test_database_metadata_is_forwarded(plain: pymilvus.MilvusClient, gateway: Gateway, server: RerankServer) -> None:
    plain.create_database("gw_other_db")
    try:
        other = pymilvus.MilvusClient(uri=gateway.uri, db_name="gw_other_db")
        try:
            small_collection(other, "small")
            assert "small" in other.list_collections()
            assert len(search(other, server.endpoint)[0]) == 8  # reranked in the right database
        finally:
            other.drop_collection("small")
            other.close()
    finally:
        plain.drop_database("gw_other_db")


def test_metrics_count_passthrough_and_reranked_rpcs(plain: pymilvus.MilvusClient, server: RerankServer) -> None:
    def count(method: str, route: str) -> float:
        value = prometheus_client.REGISTRY.get_sample_value(
            "vllm_ranker_gateway_rpcs_total", {"method": method, "route": route, "outcome": "ok"}
        )
        return value or 0.0

    before = count("Search", "rerank"), count("ShowCollections", "passthrough")
    plain.search("docs", data=["AI"], anns_field="sparse_vector", limit=3, ranker=rerank_function(server.endpoint))
    plain.list_collections()
    assert (count("Search", "rerank"), count("ShowCollections", "passthrough")) == (before[0] + 1, before[1] + 1)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    cert.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    yield folder / "cert.pem", folder / "key.pem", folder / "ca.pem"


def test_tls(gw_backend: str, tls_files: tuple[Path, Path, Path], server: RerankServer) -> None:
    cert, key, ca = tls_files
    with Gateway(gw_backend, port=0, tls_cert=str(cert), tls_key=str(key)) as gw:
        assert gw.uri.startswith("https://")
        client = pymilvus.MilvusClient(uri=gw.uri, server_pem_path=str(ca), server_name="localhost")
        try:
            if not client.has_collection("small"):
                small_collection(client)
            assert len(search(client, server.endpoint)[0]) == 8
        finally:
            client.close()


def test_streaming_methods_are_relayed_with_the_backends_code(gateway: Gateway, gw_backend: str) -> None:
    """DumpMessages streams answers; CreateReplicateStream streams both ways (Milvus Lite implements neither)."""
    codes = []
    for uri in (gateway.uri, gw_backend):
        with grpc.insecure_channel(uri.removeprefix("http://")) as channel:
            found = []
            calls: list[Callable[[], object]] = [
                lambda: list(channel.unary_stream(SERVICE + "DumpMessages")(b"", timeout=10)),
                lambda: list(channel.stream_stream(SERVICE + "CreateReplicateStream")(iter([b""]), timeout=10)),
            ]
            for call in calls:
                try:
                    call()
                    found.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    found.append(exc.code())
            codes.append(found)
    assert codes[0] == codes[1]
