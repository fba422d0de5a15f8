"""``milvus-lite server`` on loopback for the benchmarks: Milvus in its own process (as a real deployment has it),
reached over the same gRPC protocol as a cluster, so the client under test does not share its GIL with Milvus."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common import DIM, insert_rows, random_rows

from vllm_ranker import DataType, MilvusClient
from vllm_ranker.testing import milvus_lite_server as start_server
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params


@contextlib.contextmanager
def milvus_lite_server() -> Iterator[str]:
    """``milvus-lite server`` on a free loopback port in a temporary directory; yields its URI."""
    with tempfile.TemporaryDirectory(prefix="vllm-ranker-milvus-") as tmp, start_server(Path(tmp)) as uri:
        yield uri


def populate(uri: str, n_docs: int, collection: str = "bench", words_per_doc: int = 30, seed: int = 7) -> None:
    """A flushed, loaded collection: random dense vectors, texts of random words, and BM25 on the text."""
    client = MilvusClient(uri=uri)
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        add_text_fields(schema, dim=DIM, max_length=8000)
        index = text_index_params(client, dense_index="FLAT")
        client.create_collection(collection, schema=schema, index_params=index)
        insert_rows(client, collection, random_rows(n_docs, words_per_doc, seed))
        client.load_collection(collection)
    finally:
        client.close()
