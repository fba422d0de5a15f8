"""The bytes-level passthrough itself: unknown methods, the backend's own gRPC status codes, metadata (database),
deadlines, TLS, the Prometheus counters, and the schema-changing calls the gateway forgets cached schemas after."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import prometheus_client
import pymilvus
import pytest
import trustme
from pymilvus import DataType, FieldSchema, Function, FunctionType, StructFieldSchema
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from tests.conftest import rerank_function
from tests.gateway.test_faults import search, small_collection
from vllm_ranker._client_base import SCHEMA_CHANGING
from vllm_ranker.gateway import Gateway
from vllm_ranker.gateway.proxy import SCHEMA_CHANGES
from vllm_ranker.gateway.status import answer_with_status
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


@pytest.fixture(scope="module")
def unspliced(gw_backend: str) -> Iterator[Gateway]:
    """The gRPC server alone (no splicing front): proxy.py's handler serves every call, streaming ones included."""
    with Gateway(gw_backend, port=0, grace=1.0, splice=False) as gw:
        yield gw


@pytest.mark.parametrize("path", ["gateway", "unspliced"])
def test_streaming_methods_are_relayed_with_the_backends_code(
    request: pytest.FixtureRequest, gw_backend: str, path: str
) -> None:
    """DumpMessages streams answers; CreateReplicateStream streams both ways (Milvus Lite implements neither). The
    front splices them to the backend; the gRPC server relays them message by message (``_streaming_handler``)."""
    gateway: Gateway = request.getfixturevalue(path)
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


class Recorder(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A Milvus-protocol server that answers every unary call with success and records which method it was."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = details.method

        def unary(payload: bytes, context: grpc.ServicerContext) -> bytes:
            self.seen.append(method)
            return answer_with_status(method, common_pb2.Status()) or b""

        return grpc.unary_unary_rpc_method_handler(unary)


def schema_calls(client: pymilvus.MilvusClient) -> dict[str, Callable[[], object]]:
    """Every pymilvus method that can change what a collection's schema says, called with arguments it takes."""
    bm25 = Function("bm", FunctionType.BM25, input_field_names=["document"], output_field_names=["sparse"])
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    struct = StructFieldSchema()
    struct.add_field("a", DataType.INT64)
    return {
        "create_collection": lambda: client.create_collection("c", dimension=2),
        "drop_collection": lambda: client.drop_collection("c"),
        "rename_collection": lambda: client.rename_collection("c", "d"),
        "alter_collection_properties": lambda: client.alter_collection_properties("c", {"mmap.enabled": True}),
        "drop_collection_properties": lambda: client.drop_collection_properties("c", ["mmap.enabled"]),
        "add_collection_field": lambda: client.add_collection_field("c", "f", DataType.INT64, nullable=True),
        "add_collection_struct_field": lambda: client.add_collection_struct_field("c", "s", struct, 4),
        "alter_collection_field": lambda: client.alter_collection_field("c", "f", {"max_length": 9}),
        "drop_collection_field": lambda: client.drop_collection_field("c", "f"),
        "add_function_field": lambda: client.add_function_field(
            "c", FieldSchema("sparse", DataType.SPARSE_FLOAT_VECTOR), bm25, index
        ),
        "drop_function_field": lambda: client.drop_function_field("c", "bm"),
        "add_collection_function": lambda: client.add_collection_function("c", bm25),
        "alter_collection_function": lambda: client.alter_collection_function("c", "bm", bm25),
        "drop_collection_function": lambda: client.drop_collection_function("c", "bm"),
        "drop_database": lambda: client.drop_database("db"),
    }


@pytest.mark.filterwarnings("ignore:.*unsupported by Milvus 3.0")
def test_the_clients_and_the_gateway_forget_a_schema_after_the_same_calls() -> None:
    """One list (core/schema.py): each pymilvus schema-changing method is overridden by the clients, and the RPC it
    sends (as pymilvus sends it today: add_collection_field is AlterCollectionSchema) is one the gateway forgets
    cached schemas after."""
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[recorder])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = pymilvus.MilvusClient(uri=f"http://127.0.0.1:{port}")
    try:
        calls = schema_calls(client)
        missed = {}
        for name, call in calls.items():
            recorder.seen.clear()
            with contextlib.suppress(Exception):  # the answers are empty: what was sent is all that matters
                call()
            if not set(recorder.seen) & SCHEMA_CHANGES:
                missed[name] = recorder.seen[:]
        assert missed == {}
        assert sorted(SCHEMA_CHANGING) == sorted(calls)
    finally:
        client.close()
        server.stop(0)
