"""Both clients forget their cached view of a collection's schema after a schema change made through them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
import pytest
from pymilvus import DataType, MilvusException

from tests.conftest import CORPUS, create_docs_collection, rerank_function
from vllm_ranker import AsyncMilvusClient, MilvusClient
from vllm_ranker.testing import RerankServer


def test_sync_client_forgets_on_rename_and_added_field(milvus: MilvusClient, server: RerankServer) -> None:
    name, renamed = f"c{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}"
    create_docs_collection(milvus, name, server.endpoint, CORPUS[:4])
    try:
        milvus.search(name, data=["AI"], anns_field="dense_vector", limit=2, ranker=rerank_function(server.endpoint))
        assert milvus._schemas.get(name) is not None
        with contextlib.suppress(MilvusException, grpc.RpcError):  # Milvus Lite: UNIMPLEMENTED
            milvus.add_collection_field(name, field_name="extra", data_type=DataType.INT64, nullable=True)
        assert milvus._schemas.get(name) is None
        milvus.search(name, data=["AI"], anns_field="dense_vector", limit=2, ranker=rerank_function(server.endpoint))
        milvus.rename_collection(name, renamed)
        assert milvus._schemas.get(name) is None
    finally:
        for n in (name, renamed):
            milvus.drop_collection(n)


def test_async_client_forgets_on_rename_and_added_field(milvus: MilvusClient, server: RerankServer) -> None:
    # Collections are made with the sync client (the async one cannot create indexes on a Milvus Lite .db).
    name, renamed = f"c{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}"
    create_docs_collection(milvus, name, server.endpoint, CORPUS[:4])
    fn = rerank_function(server.endpoint)

    async def run() -> list[bool]:
        client = AsyncMilvusClient(uri=milvus._test_uri)
        seen = []
        try:
            await client.search(name, data=["AI"], anns_field="dense_vector", limit=2, ranker=fn)
            seen.append(client._schemas.get(name) is not None)
            with contextlib.suppress(MilvusException, grpc.RpcError):  # Milvus Lite: UNIMPLEMENTED
                await client.add_collection_field(name, field_name="extra", data_type=DataType.INT64, nullable=True)
            seen.append(client._schemas.get(name) is None)
            await client.search(name, data=["AI"], anns_field="dense_vector", limit=2, ranker=fn)
            await client.rename_collection(old_name=name, new_name=renamed)
            seen.append(client._schemas.get(name) is None)
        finally:
            await client.close()
        return seen

    try:
        assert asyncio.run(run()) == [True, True, True]
    finally:
        for n in (name, renamed):
            milvus.drop_collection(n)


@pytest.mark.parametrize("client_type", [MilvusClient, AsyncMilvusClient])
def test_both_clients_drop_a_field_through_the_same_override(client_type: type) -> None:
    assert "drop_collection_field" in client_type.__dict__
