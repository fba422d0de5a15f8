"""A client of an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM or any other), used by ingest and eval
to embed documents and queries with the same model and truncation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from vllm_ranker.tools.errors import EmbeddingServiceError


@dataclass
class Embedder:
    """A client of an OpenAI-compatible ``/v1/embeddings`` endpoint.

    ``truncate_prompt_tokens`` is vLLM's request field (``-1``: the model's maximum; it keeps the first tokens),
    so long documents are cut by the server instead of failing with a 400; None leaves it out for services
    that do not know it.
    """

    endpoint: str
    model: str | None = None
    truncate_prompt_tokens: int | None = -1
    timeout: float = 300.0
    max_retries: int = 2
    api_key: str | None = field(default=None, repr=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    def _client(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.Client(timeout=self.timeout, headers=headers)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base(self) -> str:
        base = self.endpoint.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def resolve_model(self) -> str:
        """The model to ask for: the one given, else the first one the server lists."""
        if self.model is None:
            try:
                answer = self._client().get(f"{self.base}/v1/models")
                answer.raise_for_status()
                self.model = str(answer.json()["data"][0]["id"])
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                raise EmbeddingServiceError(
                    f"could not list the models of {self.base}/v1/models ({type(exc).__name__}: {exc}): "
                    "check the endpoint, or name the model with --model"
                ) from None
        return self.model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.resolve_model(), "input": list(texts)}
        if self.truncate_prompt_tokens is not None:
            body["truncate_prompt_tokens"] = self.truncate_prompt_tokens
        url = f"{self.base}/v1/embeddings"
        problem = ""
        status: int | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(2.0, 0.25 * 2**attempt))
            try:
                answer = self._client().post(url, json=body)
            except httpx.TransportError as exc:
                problem, status = f"{type(exc).__name__}: {exc}", None
                continue
            status = answer.status_code
            if status == 429 or status >= 500:
                problem = f"HTTP {status}: {answer.text[:300]}"
                continue
            if status != 200:
                raise EmbeddingServiceError(
                    f"{url} answered HTTP {status}: {answer.text[:300]}: check --model and the endpoint "
                    "(a context-length error means: set --truncate-prompt-tokens)",
                    status=status,
                )
            return _vectors(url, answer, len(texts))
        raise EmbeddingServiceError(
            f"{url} failed after {self.max_retries + 1} attempts ({problem}): is the embeddings server up? "
            "Re-run the same command to resume: documents already flushed are skipped",
            status=status,
        )


def _vectors(url: str, answer: httpx.Response, n: int) -> list[list[float]]:
    try:
        data = answer.json()["data"]
        ordered = sorted(data, key=lambda item: int(item["index"]))
        vectors = [[float(x) for x in item["embedding"]] for item in ordered]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingServiceError(f"{url} answered something that is not an embeddings answer ({exc})") from None
    if len(vectors) != n:
        raise EmbeddingServiceError(f"{url} returned {len(vectors)} embeddings for {n} inputs")
    return vectors
