"""Which model does a job: the Hugging Face cache (can a hub id be had offline?) and a model's kind.

A cross-encoder (``...ForSequenceClassification``) scores each (query, document) pair; an embedding model served
with vLLM's pooling runner answers ``/v1/rerank`` with the cosine of its embeddings, so as a "reranker" it only
re-sorts candidates by the same cosine a dense search already used. The kind is read from the model's
``config.json`` (``architectures``): a local directory, the Hugging Face cache (the hub's own layout,
``models--org--name/snapshots/<rev>/``), or, for a running server, the ``root`` that vLLM's ``/v1/models`` lists.
A remote server whose model files are not on this machine is of kind ``unknown``.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from pathlib import Path

from vllm_ranker.local_vllm.network import _get_json

CROSS_ENCODER = "cross-encoder"
BI_ENCODER = "bi-encoder"
UNKNOWN = "unknown"

# The default reranker: Apache-2.0, 91 MB, the model behind BEIR's published BM25+CE 0.688 on SciFact.
DEFAULT_RERANK_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
SAME = "same"  # --rerank-model same: the embedder reranks too (one process)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_snapshot(hub_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot directory of *hub_id* with a config.json in it, or None (what try_to_load_from_cache
    looks at: ``refs/<revision>`` names the snapshot)."""
    repo = hub_cache_dir() / ("models--" + hub_id.replace("/", "--"))
    candidates: list[Path] = []
    try:
        ref = (repo / "refs" / revision).read_text().strip()
        candidates.append(repo / "snapshots" / ref)
    except OSError:
        pass
    snapshots = repo / "snapshots"
    if snapshots.is_dir():
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def looks_like_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).expanduser().exists()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline (HF_HUB_OFFLINE) or the hub does not answer within *timeout* seconds (a name lookup that
    hangs included: the probe runs in a thread that is given up on)."""
    if hub_offline():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answered: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(endpoint + "/api/models?limit=1", timeout=timeout) as response:
                answered.append(200 <= response.status < 500)
        except (OSError, ValueError):
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered and answered[0])


def kind_of_config(config_file: Path) -> str:
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return UNKNOWN
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(architectures, list) or not architectures:
        return UNKNOWN
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return CROSS_ENCODER
    return BI_ENCODER


def model_kind(model: str | os.PathLike[str]) -> str:
    """The kind of a model given as a directory or a hub id found in the cache; ``unknown`` otherwise."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return kind_of_config(path / "config.json")
    name = os.fspath(model)
    snapshot = cached_snapshot(name) if looks_like_hub_id(name) else None
    return kind_of_config(snapshot / "config.json") if snapshot is not None else UNKNOWN


def served_model_kind(endpoint: str, model: str | None = None, timeout: float = 5.0) -> tuple[str, str]:
    """(model name, kind) of what a running OpenAI-compatible server serves (*model*, else its first model).

    vLLM lists each model's ``root`` (the directory or hub id it loaded): its config.json decides. Anything that
    cannot be looked at (no /v1/models, a remote root) is ``unknown``.
    """
    try:
        body = _get_json(endpoint.rstrip("/") + "/v1/models", timeout)
    except (OSError, ValueError):
        return (model or "", UNKNOWN)
    entries = [m for m in body.get("data", []) if isinstance(m, dict)] if isinstance(body, dict) else []
    entry = next((m for m in entries if model is None or m.get("id") == model), None)
    if entry is None:
        return (model or "", UNKNOWN)
    name = str(entry.get("id"))
    root = entry.get("root")
    return (name, model_kind(str(root)) if root else UNKNOWN)
