#!/usr/bin/env bash
# The main job: install the package (./.venv) and vLLM (~/.local/share/vllm-ranker/vllm-venv), then run the demo on the embedded
# Milvus Lite default. Usage: bash scripts/demo.sh [vllm-ranker demo args]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e . 2>&1 | grep -v "is ignored" || true
# One vLLM venv per user (the library's default place), shared by every checkout: it is several GB and minutes
# to install, and install-vllm.sh only re-checks one that works.
export VLLM_RANKER_VLLM_VENV=${VLLM_RANKER_VLLM_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/vllm-ranker/vllm-venv}
bash scripts/install-vllm.sh "$VLLM_RANKER_VLLM_VENV"
exec .venv/bin/vllm-ranker demo "$@"
