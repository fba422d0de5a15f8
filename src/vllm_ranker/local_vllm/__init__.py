"""A managed local vLLM (the ``vllm-ranker serve`` behind the tools): standard library only.

vLLM and torch live in their own virtual environment (``vllm-ranker install-vllm``); this package finds it
(``venv.py``), launches and health-checks the server (``server.py``, launched as ``launch.py``'s ``VLLMLaunch``
says), keeps PID and log files for detached servers (``pid_files.py``), runs an embedder and a reranker together
(``pair.py``: two vLLM processes, or one and a port forwarder), tells a cross-encoder from an embedding model
(``model_kind.py``), knows the reranker families and the vLLM flags each needs (``reranker_families.py``: LLM
rerankers such as Qwen3-Reranker, with their prompt templates in ``templates/``) and probes a server
(``network.py``: ``/health``, ``/v1/models``). Loopback checks, free ports and process groups are
``vllm_ranker.local_servers``'.
"""

import importlib
from typing import Any

from vllm_ranker.local_vllm.launch import VLLMLaunch
from vllm_ranker.local_vllm.model_kind import (
    BI_ENCODER,
    CROSS_ENCODER,
    DEFAULT_RERANK_MODEL,
    UNKNOWN,
    model_family,
    model_kind,
    served_model_kind,
    served_reranker,
)
from vllm_ranker.local_vllm.network import DEFAULT_HOST, DEFAULT_PORT, is_healthy, served_models
from vllm_ranker.local_vllm.pair import FALLBACK_NOTE, RerankPlan, ServedPair, ensure_pair, plan_reranker
from vllm_ranker.local_vllm.pid_files import (
    list_pid_files,
    log_file_path,
    pid_file_path,
    read_pid_file,
    server_process_alive,
    stop_pid,
)
from vllm_ranker.local_vllm.reranker_families import (
    FAMILIES as RERANKER_FAMILIES,
)
from vllm_ranker.local_vllm.reranker_families import (
    LATE_INTERACTION,
    LLM_RERANKER,
    Recognition,
    RerankerFamily,
    UnrecognisedReranker,
    recognise_reranker,
)
from vllm_ranker.local_vllm.server import ManagedVLLM, ensure_server
from vllm_ranker.local_vllm.venv import (
    CPU_START_UP,
    DEFAULT_MODEL_NAME,
    ENV_STATE_DIR,
    ENV_VLLM_VENV,
    VLLMInstall,
    VLLMStartError,
    VLLMUnavailable,
    default_venv_path,
    find_vllm_python,
    install_instructions,
    probe_vllm,
    resolve_venv,
    state_dir,
)

__all__ = [
    "BI_ENCODER",
    "CPU_START_UP",
    "CROSS_ENCODER",
    "DEFAULT_HOST",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PORT",
    "DEFAULT_RERANK_MODEL",
    "ENV_STATE_DIR",
    "ENV_VLLM_VENV",
    "FALLBACK_NOTE",
    "LATE_INTERACTION",
    "LLM_RERANKER",
    "RERANKER_FAMILIES",
    "UNKNOWN",
    "ManagedVLLM",
    "Recognition",
    "RerankPlan",
    "RerankerFamily",
    "ServedPair",
    "UnrecognisedReranker",
    "VLLMInstall",
    "VLLMLaunch",
    "VLLMStartError",
    "VLLMUnavailable",
    "default_venv_path",
    "ensure_pair",
    "ensure_server",
    "find_vllm_python",
    "install",
    "install_instructions",
    "is_healthy",
    "list_pid_files",
    "log_file_path",
    "model_family",
    "model_kind",
    "pid_file_path",
    "plan_reranker",
    "probe_vllm",
    "read_pid_file",
    "recognise_reranker",
    "resolve_venv",
    "served_model_kind",
    "served_models",
    "served_reranker",
    "server_process_alive",
    "state_dir",
    "stop_pid",
]


def __getattr__(name: str) -> Any:
    # `install` is also run as `python -m vllm_ranker.local_vllm.install` (scripts/install-vllm.sh): imported here
    # up front, runpy would warn that it ran a module already imported. So it is loaded on first use.
    if name == "install":
        return importlib.import_module(f"{__name__}.install")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
