"""The UI's fixtures: a Milvus Lite file holding three collections of the shapes the page must handle, the loopback
rerank/embeddings server, and the app under test.

Built with the public API only (``vllm_ranker`` and pymilvus), plus ``vllm_ranker.testing``'s real HTTP servers.

- ``python_docs``: the demo's shape (INT64 ids, title, text with BM25, a dense field Milvus embeds itself through a
  TEXTEMBEDDING function pointed at the loopback ``/v1/embeddings``): dense, BM25 and hybrid.
- ``ingested``: ``vllm-ranker ingest``'s shape (VARCHAR ids, dense vectors inserted by the caller, so the page embeds
  the query itself through the endpoint), plus BM25.
- ``bm25_only``: a text field and a BM25 function, nothing else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vllm_ranker import DataType, Function, FunctionType, MilvusClient
from vllm_ranker.testing import RerankServer, hashed_embedding

DIM = 16

# (title, text): short technical documents with overlapping vocabularies, so that BM25, the dense field and the
# loopback model (share of query words in the text) disagree and the reranker visibly moves hits.
DOCS = [
    ("argparse", "argparse: parser for command line options, arguments and sub-commands; parse_args reads sys.argv"),
    ("optparse", "optparse: deprecated parser for command line options; use argparse for new command line programs"),
    ("getopt", "getopt: C-style parser for command line options, for users familiar with the C getopt function"),
    ("sys.argv", "sys.argv is the list of command line arguments passed to a Python script; argv[0] is the script"),
    ("shlex", "shlex: simple lexical analysis; split a shell-like command line string into a list of tokens"),
    ("gzip", "gzip: support for gzip files; open, read and write gzip compressed files like ordinary files"),
    ("zlib", "zlib: compression compatible with gzip; compress and decompress data streams in memory"),
    ("bz2", "bz2: support for bzip2 compression; open and read bzip2 compressed files"),
    ("lzma", "lzma: compression using the LZMA algorithm; read and write xz compressed files"),
    ("tarfile", "tarfile: read and write tar archive files, including those using gzip, bz2 and lzma compression"),
    ("zipfile", "zipfile: work with ZIP archives; read, write, append and list a zip file"),
    ("shutil", "shutil: high-level file operations; copy files and directory trees, make and unpack archives"),
    ("pathlib", "pathlib: object-oriented filesystem paths; read_text and write_text read and write a file"),
    ("io", "io: core tools for working with streams; open a file and read text or binary data"),
    ("csv", "csv: read and write comma separated values files; the reader parses each line of a file"),
    ("json", "json: encode and decode JSON; json.load reads a document from a file, json.loads parses a string"),
    ("configparser", "configparser: parse configuration files in the INI format; read options of sections"),
    ("logging", "logging: a flexible event logging system; handlers write log records to files and streams"),
    ("subprocess", "subprocess: spawn new processes, connect to their pipes and read their return codes"),
    ("os", "os: miscellaneous operating system interfaces; environment variables, files and processes"),
    ("re", "re: regular expression operations; search, match and split strings with patterns"),
    ("string", "string: common string operations; templates and formatting of strings"),
    ("textwrap", "textwrap: wrap and fill text; format paragraphs of text to a given line width"),
    ("datetime", "datetime: basic date and time types; parse and format dates with strptime and strftime"),
    ("time", "time: time access and conversions; sleep, monotonic clocks and the current time"),
    ("socket", "socket: low-level networking interface; create a socket, connect and read bytes"),
    ("http.client", "http.client: HTTP protocol client; send requests and read responses from a server"),
    ("urllib.request", "urllib.request: open URLs; read a web page or download a file over HTTP"),
    ("sqlite3", "sqlite3: a DB-API interface for SQLite databases; execute SQL and read rows"),
    ("pickle", "pickle: Python object serialization; dump objects to a file and load them back"),
    ("unittest", "unittest: the unit testing framework; test cases, suites and a command line test runner"),
    ("pdb", "pdb: the Python debugger; set breakpoints and step through a program from the command line"),
]


def rerank_function_fields(schema: Any, text: str, dense: str, sparse: str, *, embeds: str | None) -> None:
    schema.add_field(text, DataType.VARCHAR, max_length=2048, enable_analyzer=True)
    schema.add_field(dense, DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field(sparse, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(name="bm25", function_type=FunctionType.BM25, input_field_names=[text], output_field_names=[sparse])
    )
    if embeds is not None:
        schema.add_function(
            Function(
                name="embed",
                function_type=FunctionType.TEXTEMBEDDING,
                input_field_names=[text],
                output_field_names=[dense],
                # Milvus's openai provider requires a key; the loopback server ignores it.
                params={
                    "provider": "openai",
                    "model_name": "loopback",
                    "api_key": "unused",
                    "base_url": embeds,
                    "dimensions": DIM,
                },
            )
        )


def build_collections(client: MilvusClient, endpoint: str) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=256)
    rerank_function_fields(schema, "document", "dense_vector", "sparse_vector", embeds=endpoint + "/v1")
    index = client.prepare_index_params()
    index.add_index("dense_vector", index_type="FLAT", metric_type="COSINE")
    index.add_index("sparse_vector", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("python_docs", schema=schema, index_params=index)
    client.insert("python_docs", [{"id": i, "title": t, "document": d} for i, (t, d) in enumerate(DOCS)])

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("title", DataType.VARCHAR, max_length=256)
    rerank_function_fields(schema, "text", "dense", "sparse", embeds=None)
    index = client.prepare_index_params()
    index.add_index("dense", index_type="FLAT", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("ingested", schema=schema, index_params=index)
    client.insert(
        "ingested",
        [{"id": f"doc-{i}", "title": t, "text": d, "dense": hashed_embedding(d, DIM)} for i, (t, d) in enumerate(DOCS)],
    )

    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("body", DataType.VARCHAR, max_length=2048, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["body"], output_field_names=["sparse"]
        )
    )
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("bm25_only", schema=schema, index_params=index)
    client.insert("bm25_only", [{"body": d} for _, d in DOCS])
    for name in ("python_docs", "ingested", "bm25_only"):
        client.flush(name)


@pytest.fixture(scope="session")
def rerank() -> Iterator[RerankServer]:
    with RerankServer(embedding_dim=DIM) as srv:
        yield srv


@pytest.fixture(scope="session")
def ui_db(tmp_path_factory: pytest.TempPathFactory, rerank: RerankServer) -> str:
    path: Path = tmp_path_factory.mktemp("ui-milvus") / "ui.db"
    client = MilvusClient(uri=str(path))
    try:
        build_collections(client, rerank.endpoint)
    finally:
        client.close()
    return str(path)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port (a real HTTP server, as ``vllm-ranker ui`` runs it); yields
    its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="session")
def ui_url(ui_db: str, rerank: RerankServer) -> Iterator[str]:
    """The page over the test collections, shared by the HTTP and the browser tests."""
    from vllm_ranker.ui.app import create_app

    with serve(create_app(ui_db, rerank.endpoint)) as url:
        yield url


@pytest.fixture(scope="session")
def http(ui_url: str) -> Iterator[httpx.Client]:
    # POSTs carry JSON's content type, as the page's own fetch() does (the server refuses others: guard.py).
    with httpx.Client(base_url=ui_url, timeout=60, headers={"Content-Type": "application/json"}) as client:
        yield client


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "rerank" in request.fixturenames:
        request.getfixturevalue("rerank").reset()
