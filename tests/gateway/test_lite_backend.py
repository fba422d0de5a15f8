"""The gateway on a Milvus Lite file: a file made by another process (``vllm-ranker demo``, the Quickstart) has
every collection released when it is reopened; the gateway loads them, so an SDK searches it as it would a server."""

from __future__ import annotations

from pathlib import Path

import pymilvus

from tests.ui.collections import build_elsewhere
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer


def test_a_reopened_milvus_lite_file_is_queried_through_the_gateway_without_load(
    tmp_path: Path, server: RerankServer
) -> None:
    path = build_elsewhere(tmp_path / "reopened.db", server.endpoint)
    with Gateway(path, port=0, grace=1.0) as gw:
        client = pymilvus.MilvusClient(uri=gw.uri)
        try:
            names = client.list_collections()
            assert "python_docs" in names
            for name in names:  # "call load()" before the gateway loaded what it opened
                assert client.query(name, filter="", limit=1, output_fields=["*"])
        finally:
            client.close()
