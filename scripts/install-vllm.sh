#!/usr/bin/env bash
# Create the separate virtual environment that runs vLLM for `vllm-ranker serve`, from this checkout:
#
#   bash scripts/install-vllm.sh [VENV_DIR] [--dry-run]
#
# The installer ships in the package (`vllm-ranker install-vllm`, src/vllm_ranker/local_vllm/install.py); this
# runs that same installer from the checkout's source, so it works before the package is installed (it needs only
# the standard library). `bash scripts/install-vllm.sh --help` says what it does, its defaults and its environment
# variables (PYTHON, VLLM_RANKER_VLLM_SPEC, VLLM_RANKER_TORCH_INDEX).
set -euo pipefail

src="$(cd "$(dirname "$0")/../src" && pwd)"
# PYTHON runs the installer, and so creates the venv (as it always did here).
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || { echo "error: $python not found (set PYTHON=/path/to/python3.11+)" >&2; exit 1; }
PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m vllm_ranker.local_vllm.install "$@"
