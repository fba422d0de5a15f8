"""Which model does a job: the Hugging Face cache (can a hub id be had offline?) and a model's kind.

A cross-encoder (``...ForSequenceClassification``) scores each (query, document) pair; an embedding model served
with vLLM's pooling runner answers ``/v1/rerank`` with the cosine of its embeddings, so as a "reranker" it only
re-sorts candidates by the same cosine a dense search already used. The kind is read from the model's
``config.json`` (``architectures``): a local directory, the Hugging Face cache (the hub's own layout,
``models--org--name/snapshots/<rev>/``), or, for a running server, the ``root`` that vLLM's ``/v1/models`` lists.
A remote server whose model files are not on this machine is of kind ``unknown``. The kinds and families
themselves (LLM rerankers, late interaction, ...) are reranker_families.py's table.
"""

from __future__ import annotations

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


def model_kind(model: str | os.PathLike[str]) -> str:
    """The kind of a model given as a directory or a hub id (its config.json: the directory's or the cache's),
    as the reranker families recognise it; ``unknown`` when it cannot be read or no family knows the decoder."""
    return _recognised(model)[1]


def model_family(model: str | os.PathLike[str]) -> str:
    """The reranker family of a model (reranker_families.py's rows), ``unknown`` as for ``model_kind``."""
    return _recognised(model)[0]


def _recognised(model: str | os.PathLike[str]) -> tuple[str, str]:
    # reranker_families imports this module's cache helpers, so it is imported here, when first asked.
    from vllm_ranker.local_vllm.reranker_families import UnrecognisedReranker, recognise_reranker

    try:
        family = recognise_reranker(model)
    except UnrecognisedReranker:
        return (UNKNOWN, UNKNOWN)
    return (family.name, family.kind)


def served_model_kind(endpoint: str, model: str | None = None, timeout: float = 5.0) -> tuple[str, str]:
    """(model name, kind) of what a running OpenAI-compatible server serves (*model*, else its first model)."""
    name, _, kind = served_reranker(endpoint, model, timeout)
    return (name, kind)


def served_reranker(endpoint: str, model: str | None = None, timeout: float = 5.0) -> tuple[str, str, str]:
    """(model name, family, kind) of what a running OpenAI-compatible server serves (*model*, else its first).

    vLLM lists each model's ``root`` (the directory or hub id it loaded): its config.json and name decide. Anything
    that cannot be looked at (no /v1/models, a remote root) is ``unknown``.
    """
    try:
        body = _get_json(endpoint.rstrip("/") + "/v1/models", timeout)
    except (OSError, ValueError):
        return (model or "", UNKNOWN, UNKNOWN)
    entries = [m for m in body.get("data", []) if isinstance(m, dict)] if isinstance(body, dict) else []
    entry = next((m for m in entries if model is None or m.get("id") == model), None)
    if entry is None:
        return (model or "", UNKNOWN, UNKNOWN)
    name = str(entry.get("id"))
    root = entry.get("root")
    family, kind = _recognised(str(root)) if root else (UNKNOWN, UNKNOWN)
    return (name, family, kind)
