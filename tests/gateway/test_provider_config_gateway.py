"""``vllm-ranker gateway --config FILE``: plain pymilvus searches with a Function that carries no key or endpoint,
and the gateway reranks with the configured ones; a provider the file disables is refused as Milvus refuses it;
a bad file is one ``error:`` line naming the file and the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymilvus
import pytest
from pymilvus import Function, FunctionType

from tests.conftest import rerank_requests
from vllm_ranker.cli.main import main
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer

KEY = "sk-gateway-config-0123456789"
QUERIES = ["AI research progress", "renewable energy"]


def ranker(provider: str) -> Function:
    params = {"reranker": "model", "provider": provider, "queries": QUERIES}
    return Function(name="r", input_field_names=["document"], function_type=FunctionType.RERANK, params=params)


@pytest.fixture(scope="module")
def configured(
    gw_backend: str, plain: pymilvus.MilvusClient, server: RerankServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pymilvus.MilvusClient]:
    """Plain pymilvus on a gateway started with a milvus.yaml: vllm's key and URL configured, tei disabled."""
    path = tmp_path_factory.mktemp("gw-config") / "milvus.yaml"
    path.write_text(
        f"credential:\n  apikey1:\n    apikey: {KEY}\n"
        "function:\n  rerank:\n    model:\n      providers:\n"
        f"        vllm:\n          credential: apikey1\n          url: {server.endpoint}\n"
        "        tei:\n          enable: false\n"
    )
    with Gateway(gw_backend, port=0, grace=2.0, config=str(path)) as gateway:
        client = pymilvus.MilvusClient(uri=gateway.uri)
        yield client
        client.close()


def test_the_gateway_reranks_with_the_configured_key_and_url(
    configured: pymilvus.MilvusClient, server: RerankServer
) -> None:
    results = configured.search("docs", data=QUERIES, anns_field="dense_vector", limit=3, ranker=ranker("vllm"))
    assert len(results) == 2 and all(len(hits) == 3 for hits in results)
    sent = rerank_requests(server)
    assert sent and {r.headers.get("authorization") for r in sent} == {f"Bearer {KEY}"}


def test_a_disabled_provider_is_refused(configured: pymilvus.MilvusClient, server: RerankServer) -> None:
    with pytest.raises(pymilvus.MilvusException, match=r"rerank provider: \[tei\] is disabled"):
        configured.search("docs", data=QUERIES, anns_field="dense_vector", limit=3, ranker=ranker("tei"))
    assert not rerank_requests(server)


def test_a_bad_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "milvus.yaml"
    bad.write_text(
        f"credential:\n  apikey1:\n    apikey: {KEY}\nfunction:\n  rerank:\n    model:\n      providers:\n"
        "        cohere:\n          credential: apikey2\n"
    )
    assert main(["gateway", "--config", str(bad), "--port", "0", "--backend", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --config {bad}: function.rerank.model.providers.cohere.")
    assert "apikey2 is not a apikey crediential" in err and KEY not in err and "Traceback" not in err
    assert main(["gateway", "--config", str(tmp_path / "none.yaml"), "--port", "0"]) == 1
    assert (
        capsys.readouterr().err
        == f"error: --config {tmp_path / 'none.yaml'}: no such file; give the path of a milvus.yaml-style file\n"
    )
