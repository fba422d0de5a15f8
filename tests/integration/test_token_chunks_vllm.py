"""``chunk.tokens`` against the REAL vLLM server (all-MiniLM-L6-v2: an uncased WordPiece tokenizer): the windows
hold at most N of the model's own tokens (each winning chunk tokenized again by the server's /tokenize), their
offsets land on the original text (case, accents, punctuation kept), and each hit's score is its best window's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import rerank_function
from tests.integration.test_vllm_ranker import direct_scores
from vllm_ranker import DataType, MilvusClient
from vllm_ranker.tools.text_collection import add_text_fields, text_index_params

QUERY = "How do solar panels produce electricity?"
DOCS = [
    "The Museum of Natural History opened in 1869. Its halls hold fossils, minerals and meteorites; visitors also "
    "find a café. Photovoltaic cells in solar panels convert sunlight directly into electricity for the building.",
    "Über-efficient wind turbines généralement spin offshore: their blades, 80 metres long, drive generators that "
    "feed electricity into the grid whenever the wind blows strongly enough.",
    "Sourdough bread rises slowly overnight; bakers feed the starter with flour and water every morning.",
    "Panels.",
]
TOKENS, OVERLAP = 16, 4


@pytest.fixture(scope="module")
def token_docs(minilm_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    endpoint = minilm_server.endpoint
    dim = len(httpx.post(f"{endpoint}/v1/embeddings", json={"input": ["x"]}, timeout=60).json()["data"][0]["embedding"])
    client = MilvusClient(uri=str(tmp_path_factory.mktemp("tokens") / "tokens.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    add_text_fields(schema, embeddings_url=f"{endpoint}/v1", model=minilm_server.model_name, dim=dim, max_length=4000)
    client.create_collection("docs", schema=schema, index_params=text_index_params(client, dense_index="FLAT"))
    client.insert("docs", [{"id": i, "document": d} for i, d in enumerate(DOCS)])
    client.flush("docs")
    yield client
    client.close()


def model_tokens(endpoint: str, text: str) -> list[str]:
    body = {"prompt": text, "add_special_tokens": False, "return_token_strs": True}
    answer = httpx.post(f"{endpoint}/tokenize", json=body, timeout=60)
    answer.raise_for_status()
    strs: list[str] = answer.json()["token_strs"]
    return strs


def test_token_windows_against_real_vllm(token_docs: MilvusClient, minilm_server: Any) -> None:
    endpoint = minilm_server.endpoint
    assert all(len(model_tokens(endpoint, d)) > TOKENS for d in DOCS[:2])  # long enough to be cut
    chunk = {"tokens": TOKENS, "overlap": OVERLAP, "return": True}
    fn = rerank_function(endpoint, [QUERY], chunk=chunk, model_name=minilm_server.model_name)
    res = token_docs.search("docs", data=[QUERY], anns_field="dense_vector", limit=4, ranker=fn)
    stats = res.extra["rerank"]
    assert (stats.chunk_unit, stats.chunk_fallbacks, stats.tokenize_requests) == ("tokens", 0, len(DOCS))
    assert stats.chunks > len(DOCS)
    for hit in res[0]:
        text = DOCS[hit["id"]]
        won = hit["entity"]["$rerank_chunk"]
        piece = text[won["start"] : won["end"]]
        assert 0 < len(model_tokens(endpoint, piece)) <= TOKENS  # the model's own count
        # Offsets into the original text, on word boundaries: the window is whole words of it.
        assert won["start"] == 0 or text[won["start"] - 1].isspace()
        assert won["end"] == len(text) or text[won["end"]].isspace()
        assert np.float32(direct_scores(endpoint, QUERY, [piece])[0]) == pytest.approx(hit["distance"], abs=1e-5)
    best = res[0][0]
    assert best["id"] == 0 and "solar panels" in DOCS[0][best["entity"]["$rerank_chunk"]["start"] :]
