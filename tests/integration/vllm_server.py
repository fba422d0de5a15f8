"""Real vLLM servers for integration tests, started once per test session.

The session fixtures built on these helpers live in tests/integration/conftest.py, so every module of the
tier shares ONE server of each kind (importing fixtures into modules would start one per module):

* ``vllm_install``: the checked vLLM venv.  When it is missing or broken the
  test is *skipped* with the install command as the reason, unless the CI
  environment variable is set: in CI a missing vLLM is a *failure*, so a broken
  runner cannot silently skip the real-server tier.
* ``minilm_server``: all-MiniLM-L6-v2 (bundled in the vLLM venv) served with the
  pooling runner on a free port: /v1/rerank (cosine) and /v1/embeddings (384-d).
* ``tiny_cross_encoder_dir`` / ``cross_encoder_server``: a tiny deterministic
  BertForSequenceClassification built once per session and served the same way.

Servers are stopped at session end (and, on Linux, die with the test process if
it is killed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vllm_ranker.local_vllm import ManagedVLLM, VLLMInstall, VLLMUnavailable, probe_vllm

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CROSS_ENCODER_NAME = "tiny-cross-encoder"
# CPU start-up is 25-80 s; leave room for a busy machine.
START_TIMEOUT_S = float(os.environ.get("VLLM_RANKER_TEST_START_TIMEOUT", "600"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_vllm() -> VLLMInstall:
    """The vLLM venv, or skip (locally) / fail (in CI) saying how to install it."""
    try:
        return probe_vllm()
    except VLLMUnavailable as exc:
        reason = f"real vLLM not available: {exc}"
        if in_ci():
            pytest.fail(f"{reason}\n(CI is set, so a missing vLLM is an error, not a skip)", pytrace=False)
        pytest.skip(reason)


def start_server(
    model: str | os.PathLike[str] | None,
    log_dir: Path,
    *,
    served_model_name: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> ManagedVLLM:
    """Start a real vLLM on a free loopback port and wait until it is healthy."""
    install = require_vllm()
    name = served_model_name or "minilm"
    server = ManagedVLLM(
        model,
        port=0,
        venv=install.venv,
        served_model_name=served_model_name,
        extra_args=extra_args,
        log_file=log_dir / f"vllm-{name.replace('/', '_')}.log",
    )
    return server.start(timeout=START_TIMEOUT_S)
