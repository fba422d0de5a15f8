"""Two models, two jobs: an embedder on ``port`` and a reranker on ``rerank_port`` (vLLM serves one model per
process, so two processes), started, health-checked and stopped together; each has its PID file.

Which reranker (``plan_reranker``): a directory; a hub id found in the Hugging Face cache (served from its snapshot
directory, offline); a hub id vLLM downloads when the hub answers; else, or with ``same``, the embedder reranks
too. Then ONE vLLM runs and a small loopback forwarder (``_port_forwarder.py``) answers the rerank port, so clients
configured with two endpoints work unchanged without a second copy of the same model (another ~1 GB and another
minute of start-up). A bi-encoder's rerank only re-sorts by the cosine of its embeddings, and the plan says so.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_ranker.local_servers import free_port, port_in_use, signal_group, url_host
from vllm_ranker.local_vllm.model_kind import (
    BI_ENCODER,
    DEFAULT_RERANK_MODEL,
    SAME,
    cached_snapshot,
    hub_offline,
    hub_reachable,
    looks_like_hub_id,
    model_kind,
)
from vllm_ranker.local_vllm.network import is_healthy
from vllm_ranker.local_vllm.pid_files import log_file_path, pid_file_path, read_pid_file
from vllm_ranker.local_vllm.reranker_families import recognise
from vllm_ranker.local_vllm.server import ManagedVLLM
from vllm_ranker.local_vllm.venv import VLLMStartError

_FORWARDER = Path(__file__).with_name("_port_forwarder.py")
FALLBACK_NOTE = (
    "reranking with a bi-encoder only re-sorts by the same cosine; give --rerank-model DIR|HUB_ID for a cross-encoder"
)


@dataclass(frozen=True)
class RerankPlan:
    """What answers the rerank port: ``model`` (a directory or hub id for its own vLLM) or None (the embedder)."""

    model: str | None
    served_name: str | None
    kind: str
    note: str | None = None  # the one line serve prints when the embedder reranks
    family: str | None = None  # its reranker family (reranker_families.py), when it has a vLLM of its own
    model_args: tuple[str, ...] = ()  # the flags that family adds to `vllm serve`
    recognised: str | None = None  # the one line serve prints: family, kind, the flags it adds


def plan_reranker(
    rerank_model: str | None,
    embed_kind: str = BI_ENCODER,
    *,
    family: str | None = None,
    hf_overrides: Mapping[str, Any] | None = None,
    instruction: str | None = None,
) -> RerankPlan:
    """Decide without starting anything (a vLLM start that fails on a missing model costs a minute). The model's
    reranker family decides its flags (*family*, *hf_overrides*, *instruction*: serve's --rerank-family,
    --hf-overrides, --rerank-instruction); a decoder no family knows is refused (UnrecognisedReranker)."""
    wanted = rerank_model or DEFAULT_RERANK_MODEL
    if wanted == SAME:
        return RerankPlan(None, None, embed_kind, f"--rerank-model same: the embedder reranks too; {FALLBACK_NOTE}")
    path = Path(wanted).expanduser()
    if path.is_dir():
        return _own_server(str(path.resolve()), None, wanted, family, hf_overrides, instruction)
    if not looks_like_hub_id(wanted):
        raise VLLMStartError(f"rerank model directory {wanted} does not exist (give a directory or an org/name hub id)")
    snapshot = cached_snapshot(wanted)
    if snapshot is not None:
        return _own_server(str(snapshot), wanted, wanted, family, hf_overrides, instruction)
    if hub_reachable():
        # vLLM downloads it: recognised by its name alone (its config is not here yet).
        return _own_server(wanted, wanted, wanted, family, hf_overrides, instruction)
    where = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
    return RerankPlan(
        None,
        None,
        embed_kind,
        f"{wanted} is not in the Hugging Face cache and {where}: the embedder reranks too; {FALLBACK_NOTE}",
    )


def _own_server(
    served: str,
    served_name: str | None,
    given: str,
    family: str | None,
    hf_overrides: Mapping[str, Any] | None,
    instruction: str | None,
) -> RerankPlan:
    """The plan of a reranker with a vLLM of its own: *served* (a directory or hub id) recognised as *given*."""
    found = recognise(given, family, hf_overrides)
    args = tuple(found.family.vllm_args(served, instruction))
    return RerankPlan(served, served_name, found.family.kind, None, found.family.name, args, found.line(list(args)))


class ServedPair:
    """The embedder (``ManagedVLLM``) and what answers the rerank port: a second ``ManagedVLLM`` or a forwarder."""

    def __init__(self, embedder: ManagedVLLM, plan: RerankPlan, *, rerank_port: int) -> None:
        self.embedder = embedder
        self.plan = plan
        self.rerank_port = rerank_port
        self.reranker: ManagedVLLM | None = None
        if plan.model is not None:
            # The reranker starts as the embedder does (venv, host, vLLM flags, detached or not).
            self.reranker = embedder.launch_settings.server(
                plan.model, port=rerank_port, served_model_name=plan.served_name, model_args=plan.model_args
            )
        self.forwarder: subprocess.Popen[bytes] | None = None

    @property
    def rerank_endpoint(self) -> str:
        return f"http://{url_host(self.embedder.host)}:{self.rerank_port}"

    @property
    def servers(self) -> list[ManagedVLLM]:
        return [self.embedder] + ([self.reranker] if self.reranker is not None else [])

    def launch(self) -> None:
        """Start both (the embedder first); a rerank port in use is refused before anything starts."""
        if self.rerank_port == 0:
            self.rerank_port = free_port(self.embedder.host)
            if self.reranker is not None:
                self.reranker.port = self.rerank_port
        elif port_in_use(self.embedder.host, self.rerank_port):
            raise VLLMStartError(
                f"Port {self.rerank_port} (the reranker's) on {self.embedder.host} is already in use; choose "
                "another --rerank-port or stop what is listening there."
            )
        self.embedder.launch()
        if self.reranker is not None:
            self.reranker.launch()
        else:
            self._start_forwarder()

    def _start_forwarder(self) -> None:
        host = self.embedder.host
        argv = [sys.executable, str(_FORWARDER), "--listen", f"{host}:{self.rerank_port}"]
        argv += ["--target", f"{url_host(host).strip('[]')}:{self.embedder.port}"]
        if self.embedder.pid is not None:
            argv += ["--watch-pid", str(self.embedder.pid)]
        log = log_file_path(self.rerank_port)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.forwarder = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        pid_file_path(self.rerank_port).write_text(f"{self.forwarder.pid}\n")

    def wait_healthy(self, timeout: float = 600.0, progress: Callable[[float], None] | None = None) -> None:
        for server in self.servers:
            server.wait_healthy(timeout=timeout, progress=progress)
        if self.forwarder is not None and not is_healthy(self.rerank_endpoint, timeout=5.0):
            raise VLLMStartError(f"the rerank port {self.rerank_port} does not reach the embedder (forwarder)")

    @property
    def running(self) -> bool:
        forwarding = self.forwarder is None or self.forwarder.poll() is None
        return forwarding and all(server.running for server in self.servers)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        process = self.forwarder
        if process is not None:
            signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(FileNotFoundError):
                if read_pid_file(pid_file_path(self.rerank_port)) == process.pid:
                    pid_file_path(self.rerank_port).unlink()


def ensure_pair(
    embedder: ManagedVLLM,
    rerank_model: str | None = None,
    *,
    rerank_port: int | None = None,
    timeout: float = 600.0,
    progress: Callable[[float], None] | None = None,
) -> tuple[ServedPair, bool, bool]:
    """The tools' local pair: *embedder* (not yet started) and a reranker of *rerank_model*, launched as the
    embedder is; whatever is healthy on the embedder's port / ``rerank_port`` (default: its port + 1) is reused,
    the rest is started. Returns (pair, embedder reused, reranker reused); stop() leaves reused servers alone."""
    rerank_port = embedder.port + 1 if rerank_port is None else rerank_port
    embed_reused = is_healthy(embedder.endpoint)
    if embed_reused:
        embedder._owned = False  # not ours: stop() leaves it running
    rerank_url = f"http://{url_host(embedder.host)}:{rerank_port}"
    rerank_reused = is_healthy(rerank_url)
    if rerank_reused:
        plan = RerankPlan(None, None, "unknown")  # its kind is asked from the server
    else:
        embed_kind = model_kind(embedder.model) if embedder.model is not None else BI_ENCODER
        plan = plan_reranker(rerank_model, embed_kind)
    pair = ServedPair(embedder, plan, rerank_port=rerank_port)
    try:
        if not embed_reused:
            embedder.launch()
        if not rerank_reused:
            if pair.reranker is not None:
                pair.reranker.launch()
            else:
                pair._start_forwarder()
        for server in pair.servers:
            if server.owned:
                server.wait_healthy(timeout=timeout, progress=progress)
    except BaseException:
        pair.stop()
        raise
    return pair, embed_reused, rerank_reused
