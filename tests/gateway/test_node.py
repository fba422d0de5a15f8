"""A client no one here wrote: the official Node.js SDK, pinned, searches with a vLLM model ranker through the
gateway; the order equals the Python client's. Installed by npm into a cache folder on first use; skipped (loudly)
when node/npm or the registry is missing, but FAILS when CI=true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DIM
from vllm_ranker import AnnSearchRequest, Function, FunctionType, MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer, hashed_embedding

SDK = "@zilliz/milvus2-sdk-node@3.0.6"
CACHE = Path(os.environ.get("VLLM_RANKER_NODE_CACHE", Path.home() / ".cache/vllm-ranker/milvus2-sdk-node-3.0.6"))
SCRIPT = Path(__file__).with_name("node_search.js")
DOCS = [
    "Renewable energy developments in solar and wind",
    "Energy storage with batteries for renewable power",
    "Cats and dogs are popular pets",
    "Solar panels and renewable energy progress",
    "Wind turbines convert kinetic energy into electricity",
    "The history of the Python programming language",
    "Training large AI models requires energy",
    "Dogs need daily walks and exercise",
]


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the Node.js SDK test cannot run: {why}")
    pytest.skip(f"SKIPPED LOUDLY: the Node.js SDK test cannot run: {why}")


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node/npm not installed")
    if not (CACHE / "node_modules/@zilliz/milvus2-sdk-node/package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", SDK],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            _unavailable(f"npm install {SDK} failed: {done.stderr.strip()[-500:]}")
    return CACHE / "node_modules"


def test_node_sdk_search_with_a_vllm_ranker(
    node_sdk: Path, gateway: Gateway, ours: MilvusClient, server: RerankServer, tmp_path: Path
) -> None:
    query = "renewable energy developments"
    rows = [{"id": i, "document": d, "dense": hashed_embedding(d, DIM)} for i, d in enumerate(DOCS)]
    spec = {
        "collection": "node_docs",
        "rows": rows,
        "dim": DIM,
        "query": query,
        "query_vector": hashed_embedding("energy", DIM),
        "other_vector": hashed_embedding("dogs pets", DIM),
        "endpoint": server.endpoint,
    }
    (tmp_path / "input.json").write_text(json.dumps(spec))
    address = gateway.uri.removeprefix("http://")
    done = subprocess.run(
        ["node", str(SCRIPT), address, str(tmp_path / "input.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(node_sdk)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    fn = Function(
        name="r",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "queries": [query], "endpoint": server.endpoint},
    )
    want = ours.search(
        "node_docs",
        data=[hashed_embedding("energy", DIM)],
        anns_field="dense",
        limit=5,
        output_fields=["document"],
        ranker=fn,
    )
    assert [int(h["id"]) for h in answer["hits"]] == [h["id"] for h in want[0]]
    assert [h["document"] for h in answer["hits"]] == [h["entity"]["document"] for h in want[0]]
    assert [round(h["score"], 5) for h in answer["hits"]] == [round(h["distance"], 5) for h in want[0]]
    reqs = [
        AnnSearchRequest([hashed_embedding("energy", DIM)], "dense", {}, 4),
        AnnSearchRequest([hashed_embedding("dogs pets", DIM)], "dense", {}, 4),
    ]
    hybrid = ours.hybrid_search("node_docs", reqs, ranker=fn, limit=3, output_fields=["document"])
    assert [int(h["id"]) for h in answer["hybrid"]] == [h["id"] for h in hybrid[0]]
    assert answer["bad"]["error_code"] != "Success"
    assert answer["bad"]["reason"].startswith("nq must equal to queries size, but got nq [1], queries size [2]")
