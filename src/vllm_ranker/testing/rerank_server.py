"""A loopback rerank service speaking real wire formats, for tests and benchmarks (no mocks).

``RerankServer`` runs a threaded HTTP server on 127.0.0.1 that answers like vLLM's ``/rerank`` and ``/tokenize``
(``tokenize_wire``; and, through ``wire_formats``, like other providers), scores deterministically, records every
request, and can simulate a GPU service (per-request and per-document latency, a concurrency cap) or inject
faults.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vllm_ranker.testing.tokenize_wire import tokenize_answer

_WORD = re.compile(r"\w+")


def overlap_score(query: str, document: str) -> float:
    """Deterministic relevance: share of query words in the document, plus a tiny stable tie-breaker."""
    q = {w.lower() for w in _WORD.findall(query)}
    d = {w.lower() for w in _WORD.findall(document)}
    base = len(q & d) / len(q) if q else 0.0
    jitter = (
        int.from_bytes(hashlib.sha256(f"{query}\x00{document}".encode("utf-8", "surrogatepass")).digest()[:4], "big")
        / 2**32
    )
    return round(base + jitter / 1000, 6)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float


@dataclass
class Reply:
    """A scripted answer: status, raw body (bytes/str) or JSON, headers; ``action`` for transport faults:
    'reset' (close without answer), 'hang' (headers then nothing), 'truncate' (half the body)."""

    status: int = 200
    json_body: Any = None
    raw: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    delay: float = 0.0


def hashed_embedding(text: str, dim: int) -> list[float]:
    """A deterministic bag-of-words embedding (unit length): texts sharing words point the same way."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()
        vector[int.from_bytes(digest[:4], "big") % dim] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def vllm_answer(query: str, documents: list[str], scores: list[float], model: str) -> dict[str, Any]:
    order = sorted(range(len(documents)), key=lambda i: -scores[i])  # vLLM answers best first, not in input order
    results = [{"index": i, "document": {"text": documents[i]}, "relevance_score": scores[i]} for i in order]
    tokens = sum(len(_WORD.findall(query)) + len(_WORD.findall(d)) + 3 for d in documents)
    return {
        "id": "rerank-loopback",
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "results": results,
    }


class _BurstTolerantServer(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of new connections (64 concurrent async searches) then
    # overflows the accept queue and clients see resets and 1 s SYN retries, which no real service shows
    # (uvicorn, under vLLM, listens with 2048).
    request_queue_size = 2048


class RerankServer:
    """Start with ``with RerankServer() as srv:``; ``srv.endpoint`` is ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        *,
        score: Callable[[str, str], float] = overlap_score,
        request_latency: float = 0.0,
        per_document_latency: float = 0.0,
        capacity: int | None = None,
        embedding_dim: int = 16,
        model: str = "loopback-reranker",
        host: str = "127.0.0.1",
        wire: str = "vllm",
        port: int = 0,
    ) -> None:
        self.wire = wire
        self.embedding_dim = embedding_dim
        self.score = score
        self.request_latency = request_latency
        self.per_document_latency = per_document_latency
        self.model = model
        self.requests: list[Recorded] = []
        self.script: list[Reply] = []  # consumed first, one per request
        self.fault: Callable[[Recorded], Reply | None] | None = None  # consulted for every request
        self.in_flight = 0
        self.max_in_flight = 0
        self._capacity = threading.Semaphore(capacity) if capacity else None
        self._lock = threading.Lock()
        self._server = _BurstTolerantServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rerank-server", daemon=True)
        self._hanging = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RerankServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._hanging.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RerankServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.script.clear()
            self.fault = None
            self.max_in_flight = 0

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    # -- request handling -------------------------------------------------------------------------------
    def _next_reply(self, recorded: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(recorded)
            scripted = self.script.pop(0) if self.script else None
        if scripted is None and self.fault is not None:
            scripted = self.fault(recorded)
        return scripted

    def answer(self, path: str, body: Any) -> tuple[int, Any]:
        """The normal answer for a request, in the wire format of ``self.wire``."""
        if path.rstrip("/").endswith("/embeddings"):
            return self._embeddings(body)
        if self.wire == "vllm" and path.split("?")[0].rstrip("/").endswith("/tokenize"):
            return tokenize_answer(body)  # vLLM's tokenizer, as chunk.tokens asks it (tokenize_wire.py)
        if self.wire != "vllm":
            from vllm_ranker.testing.wire_formats import answer as wire_answer

            status, answer = wire_answer(self.wire, path, body, self.score, self.model)
            return int(status), answer
        if path.rstrip("/").rsplit("/", 1)[-1] != "rerank":
            return 404, {"error": {"message": f"Not Found: {path}", "type": "NotFoundError", "code": 404}}
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, {"error": {"message": "query: field required", "type": "BadRequestError", "code": 400}}
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents:
            return 400, {
                "error": {
                    "message": "documents must be a non-empty list",
                    "type": "BadRequestError",
                    "code": 400,
                }
            }
        texts = [d if isinstance(d, str) else str(d) for d in documents]
        scores = [self.score(body["query"], d) for d in texts]
        return 200, vllm_answer(body["query"], texts, scores, body.get("model") or self.model)

    def _embeddings(self, body: Any) -> tuple[int, Any]:
        """OpenAI/vLLM ``/v1/embeddings`` (what Milvus's TEXTEMBEDDING function calls)."""
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return 400, {"error": {"message": "input must be a string or a list of strings", "code": 400}}
        dim = int(body.get("dimensions") or self.embedding_dim)
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, dim)} for i, t in enumerate(texts)]
        return 200, {
            "object": "list",
            "data": data,
            "model": body.get("model") or self.model,
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }

    def _simulate_work(self, n_docs: int) -> None:
        delay = self.request_latency + self.per_document_latency * n_docs
        if self._capacity is None:
            if delay:
                time.sleep(delay)
            return
        with self._capacity:
            if delay:
                time.sleep(delay)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffer the whole answer and send it in one write: headers and body in separate small writes
            # meet Nagle + delayed ACK and add ~40 ms per request, which no real service adds.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/health", ""):
                    self._send(200, b"", {})
                elif self.path.rstrip("/") == "/v1/models":
                    self._send_json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send_json(404, {"error": {"message": "Not Found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                recorded = Recorded(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server._next_reply(recorded)
                    if reply is not None:
                        self._scripted(reply)
                        return
                    n_docs = 0
                    if isinstance(body, dict):
                        docs = body.get("documents", body.get("texts", body.get("input", {})))
                        n_docs = len(docs) if isinstance(docs, list) else 0
                    server._simulate_work(n_docs)
                    status, answer = server.answer(self.path, body)
                    self._send_json(status, answer)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _scripted(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.json_body)
                data = payload.encode() if isinstance(payload, str) else payload
                if reply.action == "hang":
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(data) or 1))
                    self.end_headers()
                    self.wfile.flush()  # headers out, then nothing
                    server._hanging.wait(60)
                    self.close_connection = True
                    return
                if reply.action == "truncate":
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                headers = {"Content-Type": "application/json", **reply.headers}
                self._send(reply.status, data, headers)

            def _send_json(self, status: int, answer: Any) -> None:
                self._send(status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
