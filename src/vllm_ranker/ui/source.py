"""The page's Milvus: opened on the first request that needs it, never created.

A Milvus Lite ``--uri`` (a path ending in ``.db``, pymilvus's own rule) that is not there is not opened: opening it
would create an empty database, which would hide a mistyped ``--uri`` behind an empty page and stay behind in the
user's folder. The page says how to get data in instead, and which Milvus Lite files sit beside the missing one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymilvus import MilvusException

from vllm_ranker import MilvusClient

from .compare import QueryEmbedder, without_userinfo
from .errors import LiteUnavailable, NoDatabase

MAX_NEIGHBOURS = 10  # a hint, not a file browser


def lite_path(uri: str) -> Path | None:
    """The Milvus Lite database ``uri`` names, or None for a server URI."""
    return Path(uri) if uri.endswith(".db") else None


class UiState:
    """The page's Milvus client, opened on first use: the page itself (and its error message) must load even when
    Milvus is unreachable or the file is not there."""

    def __init__(self, uri: str, endpoint: str, client_factory: Callable[[str], Any] = MilvusClient) -> None:
        self.uri = uri
        self.shown_uri = without_userinfo(uri)
        self.lite = lite_path(uri)
        self.endpoint = endpoint
        self.embedder = QueryEmbedder(endpoint)
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    def missing(self) -> bool:
        """A Milvus Lite file that is not there (yet: ``vllm-ranker demo`` may make it while the page runs)."""
        return self.lite is not None and self._client is None and not self.lite.exists()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> Any:
        if self.lite is None:
            return self._factory(self.uri)
        if not self.lite.exists():
            raise NoDatabase(
                f"there is no Milvus Lite file at {self.uri}, and the page creates none: make it with "
                f"`vllm-ranker demo --uri {self.uri}` or `vllm-ranker ingest DIR --uri {self.uri}`, "
                "or start vllm-ranker ui with --uri of an existing one"
            )
        if not self.lite.is_dir():
            raise LiteUnavailable(f"{self.uri} is a file, not a Milvus Lite database (Milvus Lite keeps a folder)")
        try:
            return self._factory(self.uri)
        except MilvusException as failed:
            # pymilvus says only "Open local milvus failed"; the usual cause is milvus-lite's file lock.
            raise LiteUnavailable(
                f"Milvus Lite could not open {self.uri} ({getattr(failed, 'message', failed)}): Milvus Lite lets one "
                "process at a time open a file; stop the one using it (vllm-ranker ingest, demo or gateway, a "
                "script), then reload this page"
            ) from None

    def neighbours(self) -> list[str]:
        """Other Milvus Lite databases (``*.db`` folders) in the folder of ours, as paths to give ``--uri``."""
        if self.lite is None or not self.lite.parent.is_dir():
            return []
        found = sorted(p.name for p in self.lite.parent.iterdir() if p.suffix == ".db" and p.is_dir())
        folder = os.path.dirname(self.uri)
        return [os.path.join(folder, name) for name in found if name != self.lite.name][:MAX_NEIGHBOURS]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self.embedder.close()
