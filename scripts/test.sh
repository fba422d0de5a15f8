#!/usr/bin/env bash
# The test command: installs what the tests need into ./.venv (and the vLLM venv for the real-vLLM tier),
# then runs lint, types and both test tiers. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "is ignored" || true

# The real-vLLM tier needs vLLM in its own venv (its pins would fight ours). Installed unless told not to.
if [ "${VLLM_RANKER_SKIP_VLLM:-0}" != "1" ] && [ -f scripts/install-vllm.sh ]; then
  # One vLLM venv per user (the library's default place), shared by every checkout: it is several GB and minutes
# to install, and install-vllm.sh only re-checks one that works.
export VLLM_RANKER_VLLM_VENV=${VLLM_RANKER_VLLM_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/vllm-ranker/vllm-venv}
  bash scripts/install-vllm.sh "$VLLM_RANKER_VLLM_VENV"
fi

# The real-Milvus tier (tests/gateway/test_real_milvus.py) runs milvus==2.3.5's milvus-server: a 58 MB wheel with no
# dependencies (the Milvus binary, an embedded etcd), in its own venv, one per user like vLLM's; only re-checked when
# it works. Without it that tier skips itself loudly, except under CI=true where it fails.
if [ "${VLLM_RANKER_SKIP_MILVUS_SERVER:-0}" != "1" ]; then
  milvus_venv=${XDG_DATA_HOME:-$HOME/.local/share}/vllm-ranker/milvus-2.3.5-venv
  if ! "$milvus_venv/bin/python" -c "import milvus; assert milvus.__version__ == '2.3.5'" 2>/dev/null; then
    "$PY" -m venv "$milvus_venv"
    "$milvus_venv/bin/python" -m pip install -q milvus==2.3.5 2>&1 | grep -v "is ignored" || true
  fi
  export VLLM_RANKER_MILVUS_SERVER=${VLLM_RANKER_MILVUS_SERVER:-$milvus_venv/bin/milvus-server}
fi

# Debian's Chromium + chromedriver for the page's browser test (apt, only when missing). Without them that test
# skips itself loudly, except under CI=true where it fails.
bash scripts/install-browser.sh || echo "test.sh: no browser: the browser test will skip (or fail under CI=true)"

echo "== ruff"; .venv/bin/ruff check src tests benchmarks && .venv/bin/ruff format --check src tests benchmarks
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
