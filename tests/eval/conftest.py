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


@pytest.fixture
def ingested_tiny(
    tiny_beir: Path, legs_server: RerankServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """The tiny collection ingested into a temp .db by `vllm-ranker ingest`; the flags that reach it (the server's
    request log and the captured output cleared)."""
    from vllm_ranker.cli.main import main

    common = ["--uri", str(tmp_path / "cli.db"), "--endpoint", legs_server.endpoint]
    assert main(["ingest", str(tiny_beir), *common]) == 0
    capsys.readouterr()
    legs_server.requests.clear()
    return common
