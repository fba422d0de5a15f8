"""``VLLMLaunch``: how one command starts its vLLM servers, as one frozen value instead of keywords repeated
through every function between the command line and ``ManagedVLLM``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vllm_ranker.local_vllm.network import DEFAULT_HOST

if TYPE_CHECKING:
    from vllm_ranker.local_vllm.server import ManagedVLLM


@dataclass(frozen=True)
class VLLMLaunch:
    """How one command starts its vLLM servers, the same for the embedder and the reranker of a pair (frozen: a
    pair's reranker is built from its embedder's, and neither can change the other's). ``detach``: the servers
    outlive this process (no parent-death signal, not stopped at exit; ``vllm-ranker serve --stop`` finds them)."""

    venv: str | os.PathLike[str] | None = None
    host: str = DEFAULT_HOST
    max_model_len: int | None = None
    extra_args: tuple[str, ...] = ()
    detach: bool = False

    def server(
        self,
        model: str | os.PathLike[str] | None,
        *,
        port: int,
        served_model_name: str | None = None,
        model_args: tuple[str, ...] = (),
    ) -> ManagedVLLM:
        """A (not yet started) server of *model* on *port*, launched this way; *model_args*: what the model needs
        (a reranker family's flags)."""
        from vllm_ranker.local_vllm.server import ManagedVLLM  # server.py imports this module

        return ManagedVLLM(
            model,
            host=self.host,
            port=port,
            venv=self.venv,
            served_model_name=served_model_name,
            max_model_len=self.max_model_len,
            extra_args=self.extra_args,
            model_args=model_args,
            detach=self.detach,
        )
