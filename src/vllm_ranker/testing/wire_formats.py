"""What each rerank service answers, for the loopback ``RerankServer(wire=...)``: success bodies, validation
errors, unknown paths, and each service's own error shape. No HTTP here: functions of (path, body) only.

The shapes follow the services' public API references:

- ``tei``: TEI ``POST /rerank`` (text-embeddings-inference router): body ``{"query", "texts", "truncate"?,
  "truncation_direction"? ("Left"/"Right"), "raw_scores"?, "return_text"?}``; answer a bare array
  ``[{"index", "score"}]`` sorted by score, best first. Errors ``{"error", "error_type"}``: empty ``texts``
  400 ``empty``, batch too large 413 ``validation``, tokenizer 422, model overloaded 429 ``overloaded``,
  inference 424 ``backend``, unhealthy 503; a body that does not deserialize is 422 with axum's plain-text
  rejection; with ``--api-key`` a bad or missing key is a 401 with an empty body.
- ``cohere``: Cohere ``POST /v2/rerank``: ``{"model", "query", "documents", "top_n"?, "max_tokens_per_doc"?}``
  -> ``{"id", "results": [{"index", "relevance_score"}], "meta"}`` best first; errors ``{"id", "message"}``.
- ``voyageai``: Voyage ``POST /v1/rerank``: ``{"model", "query", "documents", "top_k"?, "truncation"?,
  "return_documents"?}`` -> ``{"object": "list", "data": [{"index", "relevance_score"}], "model", "usage":
  {"total_tokens"}}`` best first; errors ``{"detail"}`` (FastAPI).
- ``siliconflow``: SiliconFlow ``POST /v1/rerank``: Cohere's body plus ``"max_chunks_per_doc"``,
  ``"overlap_tokens"`` -> ``{"id", "results": [{"index", "relevance_score"}], "meta"}`` best first; errors
  ``{"code": int, "message", "data": null}`` (unknown model: code 20012), a bad key a plain-text 401.
- ``ali``: DashScope ``POST /api/v1/services/rerank/text-rerank/text-rerank``: ``{"model", "input": {"query",
  "documents"}, "parameters"?}`` -> ``{"output": {"results": [{"index", "relevance_score"}]}, "usage":
  {"total_tokens"}, "request_id"}`` best first; errors ``{"code": str, "message", "request_id"}``.
- ``huggingface``: HF router ``POST /hf-inference/models/<model>/pipeline/sentence-similarity``:
  ``{"inputs": {"source_sentence", "sentences"}}`` -> a bare array of floats in INPUT order; errors
  ``{"error"}``.
- ``sglang``: SGLang ``POST /v1/rerank`` (its ``V1RerankReqInput``): ``{"query", "documents", "model"?,
  "top_n"?, "return_documents"?}`` -> a bare array ``[{"score", "document", "index", "meta_info"}]`` best
  first; errors ``{"object": "error", "message", "type", "param", "code"}``, an unknown path FastAPI's 404
  ``{"detail"}``, and with ``--api-key`` a bad or missing key a 401 ``{"error": "Unauthorized"}``.
- ``vllm``: vLLM ``POST /rerank`` (also ``/v1/rerank``, ``/v2/rerank``); errors ``{"error": {"message", "type",
  "code"}}``. ``RerankServer`` answers it itself; it is here for ``render`` and ``error_answer``.

Paths are matched by suffix, so an endpoint with a gateway prefix (``http://127.0.0.1:p/gw/v2/rerank``) still
reaches the service; any other path gets the service's 404.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

Score = Callable[[str, str], float]
Answer = tuple[int, Any]

WIRES = ("vllm", "tei", "cohere", "voyageai", "siliconflow", "ali", "huggingface", "sglang")

DASHSCOPE_PATH = "/api/v1/services/rerank/text-rerank/text-rerank"


def answer(wire: str, path: str, body: Any, score: Score, model: str) -> Answer:
    """The normal answer of service ``wire`` to ``POST path`` with JSON ``body`` (None if not JSON)."""
    handler = _HANDLERS.get(wire)
    if handler is None:
        raise ValueError(f"unknown wire format {wire!r}; known: {', '.join(WIRES)}")
    return handler(_path_only(path), body, score, model)


def render(
    wire: str,
    query: str,
    documents: Sequence[str],
    scores: Sequence[float],
    *,
    model: str = "loopback-reranker",
    order: Sequence[int] | None = None,
) -> Any:
    """A successful answer body of ``wire`` for these scores. ``order`` lists the document indexes in the
    order the results appear (default: the service's own order — best first, or input order for Hugging
    Face); leaving indexes out or repeating them makes a deliberately broken answer."""
    if order is None:
        order = _input_order(len(scores)) if wire == "huggingface" else _best_first(scores)
    items = [(i, float(scores[i])) for i in order]
    tokens = _tokens(query, documents)
    if wire == "vllm":
        return {
            "id": "rerank-loopback",
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": [{"index": i, "document": {"text": documents[i]}, "relevance_score": s} for i, s in items],
        }
    if wire == "tei":
        return [{"index": i, "score": s} for i, s in items]
    if wire == "cohere":
        return {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, "relevance_score": s} for i, s in items],
            "meta": {"api_version": {"version": "2", "is_experimental": False}, "billed_units": {"search_units": 1}},
        }
    if wire == "voyageai":
        return {
            "object": "list",
            "data": [{"relevance_score": s, "index": i} for i, s in items],
            "model": model,
            "usage": {"total_tokens": tokens},
        }
    if wire == "siliconflow":
        return {
            "id": uuid.uuid4().hex,
            "results": [{"index": i, "relevance_score": s} for i, s in items],
            "meta": {
                "billed_units": {"input_tokens": tokens, "output_tokens": 0, "search_units": 0, "classifications": 0},
                "tokens": {"input_tokens": tokens, "output_tokens": 0},
            },
        }
    if wire == "ali":
        return {
            "output": {"results": [{"index": i, "relevance_score": s} for i, s in items]},
            "usage": {"total_tokens": tokens},
            "request_id": str(uuid.uuid4()),
        }
    if wire == "huggingface":
        return [s for _, s in items]
    if wire == "sglang":
        meta = [{"prompt_tokens": _tokens(query, [d])} for d in documents]
        return [{"score": s, "document": documents[i], "index": i, "meta_info": meta[i]} for i, s in items]
    raise ValueError(f"unknown wire format {wire!r}; known: {', '.join(WIRES)}")


def error_answer(wire: str, status: int, message: str) -> tuple[bytes, str]:
    """The raw body service ``wire`` sends with HTTP ``status``, carrying ``message`` where it carries one,
    and the text a client's error must show for it (the message, or ``(empty body)``)."""
    if wire == "tei" and status == 401:
        return b"", "(empty body)"  # TEI's --api-key check answers a bare 401
    if wire == "siliconflow" and status == 401:
        return message.encode(), message  # a plain-text body, not JSON
    if wire == "sglang" and status == 401:
        return json.dumps({"error": message}).encode(), message  # the --api-key middleware's own shape
    body: Any
    if wire == "vllm":
        kind = {400: "BadRequestError", 401: "Unauthorized", 404: "NotFoundError", 429: "RateLimitError"}
        body = {
            "error": {
                "message": message,
                "type": kind.get(status, "InternalServerError"),
                "param": None,
                "code": status,
            }
        }
    elif wire == "tei":
        kind = {400: "empty", 413: "validation", 422: "tokenizer", 424: "backend", 429: "overloaded", 503: "unhealthy"}
        body = {"error": message, "error_type": kind.get(status, "backend")}
    elif wire == "cohere":
        body = {"id": str(uuid.uuid4()), "message": message}
    elif wire == "voyageai":
        body = {"detail": message}
    elif wire == "siliconflow":
        body = {"code": {400: 20015, 403: 30001, 429: 50603}.get(status, 50500), "message": message, "data": None}
    elif wire == "ali":
        code = {
            400: "InvalidParameter",
            401: "InvalidApiKey",
            403: "AccessDenied",
            404: "NotFound",
            429: "Throttling.RateQuota",
        }.get(status, "InternalError")
        body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
        return json.dumps(body).encode(), f"{code}: {message}"
    elif wire == "huggingface":
        body = {"error": message}
    elif wire == "sglang":
        kind = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}
        body = {
            "object": "error",
            "message": message,
            "type": kind.get(status, "InternalServerError"),
            "param": None,
            "code": status,
        }
    else:
        raise ValueError(f"unknown wire format {wire!r}; known: {', '.join(WIRES)}")
    return json.dumps(body).encode(), message


# -- the services ---------------------------------------------------------------------------------------
def _tei(path: str, body: Any, score: Score, model: str) -> Answer:
    if _last(path) != "rerank":
        return 404, None  # axum's bare 404 (the loopback always sends JSON: `null`)
    if not isinstance(body, dict):
        return 422, "Failed to deserialize the JSON body into the target type: expected a JSON object"
    for key, kind in (("query", str), ("texts", list)):
        if key not in body:
            return 422, f"Failed to deserialize the JSON body into the target type: missing field `{key}`"
        if not isinstance(body[key], kind):
            return 422, f"Failed to deserialize the JSON body into the target type: {key}: invalid type"
    if not all(isinstance(t, str) for t in body["texts"]):
        return 422, "Failed to deserialize the JSON body into the target type: texts: invalid type"
    for key in ("truncate", "raw_scores", "return_text"):
        if key in body and body[key] is not None and not isinstance(body[key], bool):
            return 422, f"Failed to deserialize the JSON body into the target type: {key}: invalid type"
    direction = body.get("truncation_direction")
    if direction is not None and direction not in ("Left", "Right"):
        return 422, (
            f"Failed to deserialize the JSON body into the target type: truncation_direction: "
            f"unknown variant `{direction}`, expected `Left` or `Right`"
        )
    if not body["texts"]:
        return 400, {"error": "`texts` cannot be empty", "error_type": "empty"}
    texts: list[str] = body["texts"]
    scores = [score(body["query"], t) for t in texts]
    ranks = render("tei", body["query"], texts, scores)
    if body.get("return_text"):
        for rank in ranks:
            rank["text"] = texts[rank["index"]]
    return 200, ranks


def _cohere(path: str, body: Any, score: Score, model: str) -> Answer:
    if not path.rstrip("/").endswith("/v2/rerank"):
        return 404, {"id": str(uuid.uuid4()), "message": f"404 page not found: {path}"}

    def bad(message: str) -> Answer:
        return 400, {"id": str(uuid.uuid4()), "message": f"invalid request: {message}"}

    if not isinstance(body, dict):
        return bad("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return bad("model is required")
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return bad("query must not be empty or be only whitespace")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        return bad("list of documents must not be empty")
    if not all(isinstance(d, str) for d in documents):
        return bad("documents must be a list of strings")
    limit = body.get("max_tokens_per_doc")
    if limit is not None and (not _is_int(limit) or limit < 1):
        return bad("max_tokens_per_doc must be a positive integer")
    scores = [score(body["query"], d) for d in documents]
    return 200, render("cohere", body["query"], documents, scores, model=body["model"])


def _voyageai(path: str, body: Any, score: Score, model: str) -> Answer:
    if not path.rstrip("/").endswith("/v1/rerank"):
        return 404, {"detail": "Not Found"}
    if not isinstance(body, dict):
        return 400, {"detail": "Request body is not a valid JSON object."}
    for key in ("query", "documents", "model"):
        if key not in body:
            return 400, {"detail": f"Field '{key}' is required."}
    if not isinstance(body["query"], str):
        return 400, {"detail": "Value for 'query' must be a string."}
    documents = body["documents"]
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return 400, {"detail": "Value for 'documents' must be a non-empty list of strings."}
    if not isinstance(body["model"], str) or not body["model"]:
        return 400, {"detail": "Value for 'model' must be a model name."}
    if "truncation" in body and not isinstance(body["truncation"], bool):
        return 400, {"detail": "Value for 'truncation' must be a boolean."}
    scores = [score(body["query"], d) for d in documents]
    return 200, render("voyageai", body["query"], documents, scores, model=body["model"])


def _siliconflow(path: str, body: Any, score: Score, model: str) -> Answer:
    if not path.rstrip("/").endswith("/v1/rerank"):
        return 404, {"code": 404, "message": "404 page not found", "data": None}

    def bad(message: str, code: int = 20015) -> Answer:
        return 400, {"code": code, "message": message, "data": None}

    if not isinstance(body, dict):
        return bad("The parameter is invalid. Please check again.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return bad("Model does not exist. Please check it carefully.", code=20012)
    if not isinstance(body.get("query"), str):
        return bad("The parameter is invalid. Please check again. (query)")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return bad("The parameter is invalid. Please check again. (documents)")
    for key, minimum in (("max_chunks_per_doc", 1), ("overlap_tokens", 0)):
        value = body.get(key)
        if value is not None and (not _is_int(value) or value < minimum):
            return bad(f"The parameter is invalid. Please check again. ({key})")
    scores = [score(body["query"], d) for d in documents]
    return 200, render("siliconflow", body["query"], documents, scores, model=body["model"])


def _ali(path: str, body: Any, score: Score, model: str) -> Answer:
    if not path.rstrip("/").endswith(DASHSCOPE_PATH):
        return 404, {"code": "NotFound", "message": f"Not Found: {path}", "request_id": str(uuid.uuid4())}

    def bad(message: str) -> Answer:
        return 400, {"code": "InvalidParameter", "message": message, "request_id": str(uuid.uuid4())}

    if not isinstance(body, dict):
        return bad("The request body is not a valid JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return bad("Model not exist.")
    given = body.get("input")
    if not isinstance(given, dict):
        return bad("Field required: input")
    if not isinstance(given.get("query"), str):
        return bad("Field required: input.query")
    documents = given.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return bad("Field required: input.documents")
    scores = [score(given["query"], d) for d in documents]
    return 200, render("ali", given["query"], documents, scores, model=body["model"])


def _huggingface(path: str, body: Any, score: Score, model: str) -> Answer:
    parts = [p for p in path.split("/") if p]
    try:
        at = parts.index("models")
        end = len(parts) - 2
    except ValueError:
        at, end = -1, -1
    if at < 1 or end <= at + 1 or parts[end:] != ["pipeline", "sentence-similarity"]:
        return 404, {"error": "Not Found"}
    if parts[at - 1] != "hf-inference":
        return 404, {"error": f"Inference provider {parts[at - 1]} is not supported"}
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, dict):
        return 400, {"error": "Input should be a valid dictionary: inputs"}
    source, sentences = inputs.get("source_sentence"), inputs.get("sentences")
    if not isinstance(source, str):
        return 400, {"error": "Field required: inputs.source_sentence"}
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        return 400, {"error": "Input should be a valid list of strings: inputs.sentences"}
    return 200, render("huggingface", source, sentences, [score(source, s) for s in sentences])


def _vllm(path: str, body: Any, score: Score, model: str) -> Answer:
    if _last(path) != "rerank":
        return 404, {"error": {"message": f"Not Found: {path}", "type": "NotFoundError", "code": 404}}
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return 400, {"error": {"message": "query: field required", "type": "BadRequestError", "code": 400}}
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return 400, {
            "error": {
                "message": "documents must be a non-empty list of strings",
                "type": "BadRequestError",
                "code": 400,
            }
        }
    scores = [score(body["query"], d) for d in documents]
    return 200, render("vllm", body["query"], documents, scores, model=body.get("model") or model)


def _sglang(path: str, body: Any, score: Score, model: str) -> Answer:
    if not path.rstrip("/").endswith("/v1/rerank"):
        return 404, {"detail": "Not Found"}

    def bad(message: str) -> Answer:
        return 400, {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}

    if not isinstance(body, dict):
        return bad("1 validation error for V1RerankReqInput: Input should be a valid dictionary")
    if not isinstance(body.get("query"), str):
        return bad("1 validation error for V1RerankReqInput\nquery\n  Field required")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return bad("documents must be a non-empty list of strings")
    scores = [score(body["query"], d) for d in documents]
    return 200, render("sglang", body["query"], documents, scores, model=model)


_HANDLERS: dict[str, Callable[[str, Any, Score, str], Answer]] = {
    "vllm": _vllm,
    "tei": _tei,
    "cohere": _cohere,
    "voyageai": _voyageai,
    "siliconflow": _siliconflow,
    "ali": _ali,
    "huggingface": _huggingface,
    "sglang": _sglang,
}


def _path_only(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0]


def _last(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _best_first(scores: Sequence[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def _input_order(n: int) -> list[int]:
    return list(range(n))


def _tokens(query: str, documents: Sequence[str]) -> int:
    return sum(len(query.split()) + len(d.split()) + 3 for d in documents)
