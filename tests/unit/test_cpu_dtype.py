"""`serve` picks the fastest vLLM data type for the CPU at hand (never vLLM's emulated float16 default)."""

from __future__ import annotations

import pytest

from vllm_ranker.local_vllm import venv


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_cpu_dtype(monkeypatch: pytest.MonkeyPatch, native_bf16: bool, expected: str) -> None:
    monkeypatch.setattr(venv, "cpu_has_bf16", lambda: native_bf16)
    assert venv.cpu_dtype() == expected
