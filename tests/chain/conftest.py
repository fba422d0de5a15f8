"""One Milvus Lite collection for the function-chain tests (tests/chain): every kind of column a chain reads.

The rows are built from fixed seeds, so every run (and CI) searches the same data. Two choices keep the
differential test exact rather than approximate (test_differential.py compares Milvus Lite with our evaluator):

* Milvus Lite runs a chain on its *internal* first-stage scores and sends only float32 over the proto; we run it
  on what the proto carries. For COSINE and BM25 the internal score is already a float32 value (Lite's cosine
  is ``1.0 - d`` with ``d`` a float32 distance, exact by Sterbenz; BM25 comes out of float32 arrays), so both
  sides start from the same numbers. For L2 Lite squares a float32 norm in float64 (``d * d``), which is
  generally NOT a float32 value: every later op, ``round_decimal`` above all, would then see slightly different
  inputs on the two sides (a rounding boundary or a near tie could flip). A real Milvus server computes the
  chain on float32 scores, so we do not copy that; instead the L2 vectors form an *integral point set*: every
  distance from each L2 query of ``L2_QUERIES`` to every row is a whole number of quarters, whose square is
  exact in float32. Equal distances (ties) are many; both sides keep them in the first stage's order.
* FLOAT values are stored by Lite as float32 (what both sides read), so they need no such care.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pymilvus
import pytest
from pymilvus import DataType, Function, FunctionType

from vllm_ranker import MilvusClient

COLLECTION = "chains"
ROWS = 60
PK = "id"
TEXT = "text"
SPARSE = "sparse"
DENSE_L2 = "v_l2"
DENSE_COS = "v_cos"
# Numeric fields with the largest absolute value each holds (the differential test keeps products finite).
NUMERIC_FIELDS = {"i8": 100.0, "i32": 5000.0, "i64": 1_000_000.0, "f32": 20.0, "d64": 1000.0, "opt": 50.0}
NULLABLE = "opt"  # a nullable DOUBLE, None in about a quarter of the rows
BOOL = "flag"
TAG = "tag"  # a plain VARCHAR with few values: sort ties on text
JSON_FIELD = "meta"  # a type no chain may read (the validation tests)
WORDS = ("milvus", "vector", "search", "rerank", "chain", "score", "model", "query", "index", "field", "lite")
TAGS = ("alpha", "beta", "gamma", "delta")

# L2 queries (each /4 below): every row's L2 vector lies at a whole distance from all three.
_L2_QUERY_POINTS = ((0, 0, 0, 0), (4, 0, 0, 0), (0, 4, 0, 0))
L2_QUERIES = [[c / 4 for c in q] for q in _L2_QUERY_POINTS]
COS_QUERIES = [[0.3, -0.2, 0.9, 0.1], [-0.5, 0.5, 0.25, -0.75], [0.1, 0.1, 0.1, 0.9], [0.8, 0.6, -0.1, 0.0]]
TEXT_QUERIES = ["milvus vector", "rerank chain score", "search", "model query index", "lite field vector"]


def _integral_points() -> list[tuple[int, ...]]:
    """Integer points of [-12, 12]^4 at a whole distance from every point of _L2_QUERY_POINTS (349 of them)."""
    axis = np.arange(-12, 13)
    grid = np.stack(np.meshgrid(axis, axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 4)
    whole = np.ones(len(grid), dtype=bool)
    for query in _L2_QUERY_POINTS:
        squares = ((grid - np.array(query)) ** 2).sum(axis=1)
        whole &= np.rint(np.sqrt(squares)).astype(np.int64) ** 2 == squares
    return [tuple(int(c) for c in point) for point in grid[whole]]


def rows() -> list[dict[str, Any]]:
    rng = random.Random(20250607)
    points = rng.sample(_integral_points(), ROWS)
    out = []
    for i in range(ROWS):
        out.append(
            {
                PK: 1000 + 7 * i,  # not the row's position: a chain reading $id sees real keys
                TEXT: " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))),
                DENSE_L2: [c / 4 for c in points[i]],
                DENSE_COS: [round(rng.uniform(-1, 1), 3) for _ in range(4)],
                # Few distinct values per field: sort and num_combine meet ties.
                "i8": rng.choice([-100, -7, 0, 3, 3, 42, 100]),
                "i32": rng.randint(-5000, 5000),
                "i64": rng.choice([-1_000_000, -12, 0, 5, 77, 77, 123_456, 1_000_000]),
                "f32": rng.choice([-20.0, -1.5, 0.0, 0.1, 2.25, 2.25, 3.3, 19.875]),
                "d64": round(rng.uniform(-1000, 1000), 6),
                NULLABLE: None if rng.random() < 0.25 else round(rng.uniform(-50, 50), 2),
                BOOL: rng.random() < 0.5,
                TAG: rng.choice(TAGS),
                JSON_FIELD: {"n": i},
            }
        )
    return out


@dataclass(frozen=True)
class ChainCollection:
    client: MilvusClient  # vllm_ranker's; pymilvus.MilvusClient.search(client, ...) is Milvus Lite itself
    name: str


def create(client: pymilvus.MilvusClient, name: str) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field(PK, DataType.INT64, is_primary=True)
    schema.add_field(TEXT, DataType.VARCHAR, max_length=400, enable_analyzer=True)
    schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field(DENSE_L2, DataType.FLOAT_VECTOR, dim=4)
    schema.add_field(DENSE_COS, DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("i64", DataType.INT64)
    schema.add_field("f32", DataType.FLOAT)
    schema.add_field("d64", DataType.DOUBLE)
    schema.add_field(NULLABLE, DataType.DOUBLE, nullable=True)
    schema.add_field(BOOL, DataType.BOOL)
    schema.add_field(TAG, DataType.VARCHAR, max_length=16)
    schema.add_field(JSON_FIELD, DataType.JSON)
    schema.add_function(
        Function(name="bm25", function_type=FunctionType.BM25, input_field_names=[TEXT], output_field_names=[SPARSE])
    )
    index = client.prepare_index_params()
    index.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index(DENSE_L2, index_type="FLAT", metric_type="L2")
    index.add_index(DENSE_COS, index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, rows())
    client.flush(name)


@pytest.fixture(scope="session")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainCollection]:
    path: Path = tmp_path_factory.mktemp("chains") / "chains.db"
    client = MilvusClient(uri=str(path))
    create(client, COLLECTION)
    yield ChainCollection(client, COLLECTION)
    client.close()
