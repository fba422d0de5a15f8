"""The Milvus behind the gateway: where it is, how to reach it, and (for a Milvus Lite file) its own server.

``--backend`` takes what pymilvus's ``uri`` takes. A ``.db`` path is opened by ``milvus-lite server`` in a child
process on a private loopback port (``local_servers.MilvusLite``): the file's lock allows one process, and a child
keeps Milvus Lite's threads out of the gateway's gRPC server.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from vllm_ranker.local_servers import LAUNCHER, MilvusLite, MilvusLiteError

from .settings import BackendError

log = logging.getLogger(__name__)

# Milvus sends and accepts messages up to 2 GiB - 1 (pymilvus sets the same on its channels); gRPC's 4 MiB default
# would break inserts and searches that work without the gateway.
MAX_MESSAGE = 2**31 - 1
MESSAGE_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
# A deadline this far away means "no deadline": grpc reports ~9.2e18 s left when the caller set none, and passing
# that on as a timeout fails at once with DEADLINE_EXCEEDED.
NO_DEADLINE_ABOVE_S = 10 * 365 * 86400.0
# Caller metadata not forwarded: the backend must see the gateway's own user agent and transport headers.
_NOT_FORWARDED = ("user-agent", "grpc-", ":")


def deadline_of(time_remaining: float | None) -> float | None:
    """The timeout to pass on for a caller's remaining time, or None when the caller set no deadline."""
    if time_remaining is None or time_remaining > NO_DEADLINE_ABOVE_S:
        return None
    return max(time_remaining, 0.0)


def forwarded_metadata(
    metadata: Sequence[tuple[str, str | bytes]] | None, token_header: str | None
) -> list[tuple[str, str | bytes]]:
    """The caller's metadata (authorization, dbname, ...) minus transport headers; the gateway's --token is added
    only when the caller sent no authorization of its own (the backend stays the authority either way)."""
    out = [(k, v) for k, v in metadata or () if not k.lower().startswith(_NOT_FORWARDED)]
    if token_header is not None and not any(k.lower() == "authorization" for k, _ in out):
        out.append(("authorization", token_header))
    return out


def token_header(token: str) -> str | None:
    """pymilvus's encoding of a token (``user:password`` or an API key) in the ``authorization`` header."""
    if not token:
        return None
    return base64.b64encode(token.encode()).decode()


def is_lite_file(uri: str) -> bool:
    return uri.endswith(".db") and "://" not in uri


def grpc_target(uri: str) -> tuple[str, bool]:
    """(host:port, tls) of a Milvus server URI, the forms pymilvus accepts (http, https, tcp, grpc, host:port)."""
    if "://" not in uri:
        uri = "http://" + uri
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https", "tcp", "grpc", "grpcs") or not parts.hostname:
        raise BackendError(
            f"--backend {uri!r} is not a Milvus URI: give http://host:19530 (https://... for TLS) or a Milvus Lite "
            "file ending in .db"
        )
    tls = parts.scheme in ("https", "grpcs")
    port = parts.port or (443 if tls else 19530)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{host}:{port}", tls


def open_channel(uri: str) -> grpc.Channel:
    target, tls = grpc_target(uri)
    options = [
        *MESSAGE_OPTIONS,
        # The same keepalive pymilvus uses, so that a backend tuned for pymilvus clients accepts the gateway.
        ("grpc.keepalive_time_ms", 55000),
        ("grpc.keepalive_timeout_ms", 20000),
        ("grpc.enable_retries", 1),
    ]
    if tls:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    return grpc.insecure_channel(target, options=options)


class LiteServer:
    """``milvus-lite server`` for one ``.db`` path on a private loopback port (``local_servers.MilvusLite``, with the
    gateway's messages); ``uri`` once started, every collection of the file loaded."""

    def __init__(self, path: str, start_timeout: float = 60.0, launcher: str = LAUNCHER) -> None:
        self.path = Path(path).expanduser().resolve()
        self.start_timeout = start_timeout
        self.log_path = self.path.parent / (self.path.name + ".gateway-server.log")
        # launcher: the module run as ``python -m``; the tests start a Milvus Lite of their own.
        self._server = MilvusLite(self.path, self.log_path, start_timeout=start_timeout, launcher=launcher)
        self.uri = self._server.uri

    def start(self) -> LiteServer:
        if not self.path.parent.is_dir():
            raise BackendError(f"--backend {self.path}: the folder {self.path.parent} does not exist; create it first")
        try:
            self._server.start()
        except MilvusLiteError as exc:
            if exc.exited:
                last = exc.log_tail.strip().splitlines()[-1:] or ["(no output)"]
                raise BackendError(
                    f"Milvus Lite could not open {self.path}: {last[0]} (is another process using this file? "
                    "stop it, or give another --backend)"
                ) from None
            raise BackendError(
                f"Milvus Lite did not start for {self.path} within {self.start_timeout:g} s; see {self.log_path}"
            ) from None
        self._load_collections()
        return self

    def _load_collections(self) -> None:
        """Load every collection of the file: Milvus Lite leaves them all released when a new process opens a file
        (``vllm-ranker demo``'s, the Quickstart's), where a Milvus server keeps what was loaded across restarts, and
        an SDK (Node.js through the README's example) would otherwise get "call load()" on its first search."""
        import pymilvus  # the gateway's own dependency; imported here so the command's --help stays light

        started = time.monotonic()
        client = pymilvus.MilvusClient(uri=self.uri)
        try:
            released = [
                name
                for name in client.list_collections()
                if client.get_load_state(name).get("state") != pymilvus.client.types.LoadState.Loaded
            ]
            for name in released:
                client.load_collection(name)
        except pymilvus.MilvusException as exc:  # a search will say what is wrong; the gateway still starts
            log.warning("could not load the collections of %s: %s", self.path, exc)
            return
        finally:
            client.close()
        if released:
            log.info("loaded %d collection(s) of %s in %.1f s", len(released), self.path, time.monotonic() - started)

    def stop(self) -> None:
        self._server.stop()


class Backend:
    """One gRPC channel to the backend Milvus, carrying every call of every caller as raw bytes."""

    def __init__(self, uri: str, token: str = "") -> None:
        self.uri = uri  # for messages: never holds the token (pymilvus's token is a separate setting)
        self.token_header = token_header(token)
        self.channel = open_channel(uri)
        self._calls: dict[str, grpc.UnaryUnaryMultiCallable] = {}

    def unary(self, method: str) -> grpc.UnaryUnaryMultiCallable:
        # One multicallable per method, made once: building it costs more than the rest of a small passthrough.
        found = self._calls.get(method)
        if found is None:
            found = self.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            self._calls[method] = found
        return found

    def call(
        self,
        method: str,
        payload: bytes,
        metadata: Sequence[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> bytes:
        answer: bytes = self.unary(method)(payload, metadata=metadata, timeout=timeout)
        return answer

    def close(self) -> None:
        self.channel.close()
