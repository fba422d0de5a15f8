"""The test collections, and a Milvus Lite file of them made by another process (``python -m tests.ui.collections``).

- ``python_docs``: the demo's shape (INT64 ids, title, text with BM25, a dense field Milvus embeds itself through a
  TEXTEMBEDDING function pointed at the loopback ``/v1/embeddings``): dense, BM25 and hybrid.
- ``ingested``: ``vllm-ranker ingest``'s shape (VARCHAR ids, dense vectors inserted by the caller, so the page embeds
  the query itself through the endpoint), plus BM25.
- ``bm25_only``: a text field and a BM25 function, nothing else.

Built with the public API only (``vllm_ranker`` and pymilvus).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vllm_ranker import DataType, Function, FunctionType, MilvusClient
from vllm_ranker.testing import hashed_embedding
from vllm_ranker.tools.text_collection import add_text_fields

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("bm25_only", "ingested", "python_docs")

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
    # The shape every vllm-ranker command builds (tools/text_collection.py), under the names each test collection
    # uses; the loopback service honours "dimensions".
    add_text_fields(
        schema,
        dim=DIM,
        embeddings_url=embeds,
        model="loopback",
        text_field=text,
        max_length=2048,
        dense_field=dense,
        sparse_field=sparse,
        send_dimensions=True,
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


def build_elsewhere(path: Path, endpoint: str | None) -> str:
    """A Milvus Lite file at ``path`` made by another process that has exited, as ``vllm-ranker demo`` and ``ingest``
    leave one: opened here (milvus-lite 3.2.2) every collection of it is released. ``endpoint`` None: no collection.
    A process of its own, because pymilvus keeps a file it opened locked until the process that opened it exits."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    args = [sys.executable, "-m", "tests.ui.collections", str(path), *([endpoint] if endpoint else [])]
    subprocess.run(args, cwd=ROOT, env=env, check=True, timeout=180)
    return str(path)


def main(argv: list[str]) -> None:
    client = MilvusClient(uri=argv[0])
    try:
        if len(argv) > 1:
            build_collections(client, argv[1])
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv[1:])
