"""Fixtures of the ingest/eval/bench tests: the tiny BEIR collection (see tiny_collection.py) and a loopback
rerank/embeddings server with a scripted model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eval.tiny_collection import rerank_by_legs, write_beir
from vllm_ranker.testing import RerankServer


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


@pytest.fixture
def legs_server() -> Iterator[RerankServer]:
    with RerankServer(score=rerank_by_legs, embedding_dim=16) as srv:
        yield srv
