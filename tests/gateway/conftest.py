"""The gateway tier: a Gateway in front of its own ``milvus-lite server``, plain pymilvus talking to it, and
``vllm_ranker.MilvusClient`` talking to the backend directly (the reference every answer is compared with)."""

from __future__ import annotations

from collections.abc import Iterator

import pymilvus
import pytest

from tests.conftest import CORPUS, create_docs_collection
from tests.gateway.recording_backend import RecordingBackend
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer, milvus_lite_server


@pytest.fixture(scope="session")
def gw_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with milvus_lite_server(tmp_path_factory.mktemp("gw-backend")) as uri:
        yield uri


@pytest.fixture(scope="session")
def gateway(gw_backend: str) -> Iterator[Gateway]:
    with Gateway(gw_backend, port=0, grace=2.0) as gw:
        yield gw


@pytest.fixture(scope="session")
def plain(gateway: Gateway, server: RerankServer) -> Iterator[pymilvus.MilvusClient]:
    """Unmodified pymilvus on the gateway; the docs collection is created through the gateway too."""
    client = pymilvus.MilvusClient(uri=gateway.uri)
    create_docs_collection(client, "docs", server.endpoint, CORPUS)
    client.load_collection("docs")
    yield client
    client.close()


@pytest.fixture(scope="session")
def ours(gw_backend: str, plain: pymilvus.MilvusClient) -> Iterator[MilvusClient]:
    """The Python client on the same backend and data: the reference."""
    client = MilvusClient(uri=gw_backend)
    yield client
    client.close()


@pytest.fixture(scope="session")
def direct(gw_backend: str, plain: pymilvus.MilvusClient) -> Iterator[pymilvus.MilvusClient]:
    """Plain pymilvus on the backend itself (for passthrough comparisons)."""
    client = pymilvus.MilvusClient(uri=gw_backend)
    yield client
    client.close()


@pytest.fixture(scope="module")
def recorded(gw_backend: str, plain: pymilvus.MilvusClient) -> Iterator[RecordingBackend]:
    """A backend recording the calls it passes on to the session's Milvus Lite (recording_backend.py)."""
    backend = RecordingBackend(gw_backend).start()
    yield backend
    backend.close()
