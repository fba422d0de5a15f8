"""The Starlette application: one page, a small JSON API behind it, and the page's own static files.

    GET  /                 the page (collections, query form, the two lists, timing, evaluation view)
    GET  /api/collections  collections with their text fields, allowed first stages and load state
    POST /api/load         load one collection (Milvus searches only loaded ones)
    POST /api/compare      one query, first stage vs reranked (JSON in, JSON out)
    GET  /api/document     one document in full (?collection=&key=, optional &text_field=&query= to mark, and
                           &chunk_start=&chunk_end= to mark the model's winning chunk)
    POST /api/eval         an uploaded ``vllm-ranker eval`` report, reduced to what the page draws
    GET  /static/...       the scripts (app.js and the modules it imports) and style.css (served from the package:
                           the page works offline)

Milvus is opened by the first request that needs it, and a Milvus Lite file that is not there is never created
(source.py). Only the loopback names may reach it by default, and only the page itself may POST (guard.py).
Every failure answers ``{"error": "<plain words>", "kind": ...}``: the library's own message for bad params and
service failures (already free of API keys), Milvus's message for Milvus errors, and for anything unexpected only
its type; the traceback goes to the server's log, never to the page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pymilvus import MilvusException
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from vllm_ranker import RerankParamError, RerankServiceError

from .catalog import describe, list_views, load, loaded_needed
from .compare import PROVIDERS, CompareRequest, compare, without_userinfo
from .errors import InputError, PageError
from .evalreport import ReportError, summarize
from .guard import LOOPBACK_NAMES, LocalOnly
from .highlight import query_terms, segments, with_chunk
from .source import UiState

HERE = Path(__file__).parent
MAX_REPORT_BYTES = 64 << 20  # per-query values of a large BEIR split are a few MB; refuse a wrong file early
log = logging.getLogger(__name__)


def _error(message: str, kind: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind}, status_code=status)


def _milvus_message(exc: Any) -> str:
    # pymilvus's str() is "<MilvusException: (code=..., message=...)>"; the message alone reads as words.
    return str(getattr(exc, "message", "") or exc)


Handler = Callable[[Request], Awaitable[Response]]


def _plain_errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except PageError as exc:
            return _error(str(exc), exc.kind, exc.status)
        except ReportError as exc:
            return _error(str(exc), "input", 400)
        except RerankParamError as exc:
            return _error(str(exc), "params", 400)
        except RerankServiceError as exc:
            return _error(str(exc), "service", 502)
        except MilvusException as exc:
            return _error(f"Milvus: {_milvus_message(exc)}", "milvus", 502)
        except Exception as exc:  # the page gets the type only; details (maybe data) stay in the server log
            log.exception("vllm-ranker ui: unexpected error")
            return _error(f"internal error ({type(exc).__name__}); the server's log has the details", "internal", 500)

    return wrapped


def _chunk_offsets(start: str | None, end: str | None) -> tuple[int, int] | None:
    """The winning chunk's offsets the page passes back from a reranked hit, checked; None when not given."""
    if start is None and end is None:
        return None
    try:
        low, high = int(start or ""), int(end or "")
    except ValueError:
        raise InputError(f"chunk_start and chunk_end must be whole numbers, got {start!r} and {end!r}") from None
    if not 0 <= low <= high:
        raise InputError(f"chunk_start ({low}) must be at least 0 and at most chunk_end ({high})")
    return low, high


async def _json_body(request: Request, limit: int = 1 << 20) -> Any:
    raw = await request.body()
    if len(raw) > limit:
        raise InputError(f"the request is too large ({len(raw)} bytes, at most {limit})")
    try:
        return json.loads(raw)
    except ValueError:
        raise InputError("the request is not JSON") from None


def create_app(
    uri: str = "./milvus.db",
    endpoint: str = "http://127.0.0.1:8000",
    *,
    rerank_endpoint: str | None = None,
    allowed_hosts: Sequence[str] | None = LOOPBACK_NAMES,
    **state_kwargs: Any,
) -> Starlette:
    """The page for Milvus at ``uri``; ``endpoint`` is the embeddings service, ``rerank_endpoint`` the default
    rerank endpoint (``endpoint`` when None: one service doing both, as the stand-in does).
    ``allowed_hosts``: the names the page may be reached by (None: any; see guard.py)."""
    state = UiState(uri, endpoint, **state_kwargs)
    reranker = rerank_endpoint or endpoint
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()  # the Milvus client (a Milvus Lite file stays locked while open) and the HTTP pools

    async def page(request: Request) -> Response:
        config = {
            "uri": state.shown_uri,
            "uri_arg": shlex.quote(state.shown_uri),  # as the page's commands write it
            "lite": state.lite is not None,
            "endpoint": without_userinfo(reranker),
            "providers": list(PROVIDERS),
        }
        return templates.TemplateResponse(request, "index.html", {"config": config})

    @_plain_errors
    async def collections(request: Request) -> Response:
        def work() -> dict[str, Any]:
            missing = state.missing()  # then nothing is opened: opening would create the file
            views = [] if missing else list_views(state.client())
            answer = {"uri": state.shown_uri, "exists": not missing, "collections": [v.as_dict() for v in views]}
            if not views:  # the page says how to get data in, and which Milvus Lite files are beside this one
                answer["neighbours"] = state.neighbours()
            return answer

        return JSONResponse(await run_in_threadpool(work))

    @_plain_errors
    async def load_endpoint(request: Request) -> Response:
        body = await _json_body(request)
        name = str(body.get("collection") or "") if isinstance(body, dict) else ""
        if not name:
            raise InputError("give the collection to load")
        view = await run_in_threadpool(lambda: load(state.client(), name))
        return JSONResponse(view.as_dict())

    @_plain_errors
    async def compare_endpoint(request: Request) -> Response:
        req = CompareRequest.parse(await _json_body(request), reranker)

        def work() -> dict[str, Any]:
            client = state.client()
            view = describe(client, req.collection)
            with loaded_needed(client, req.collection):
                return compare(client, view, req, state.embedder)

        return JSONResponse(await run_in_threadpool(work))

    @_plain_errors
    async def document(request: Request) -> Response:
        name = request.query_params.get("collection", "")
        key = request.query_params.get("key", "")
        if not name or not key:
            raise InputError("give collection and key")
        span = _chunk_offsets(request.query_params.get("chunk_start"), request.query_params.get("chunk_end"))

        def work() -> dict[str, Any]:
            client = state.client()
            view = describe(client, name)
            try:
                pk: Any = int(key) if view.pk_int else key
            except ValueError:
                raise InputError(f"key {key!r} is not a whole number, as {view.pk!r} is") from None
            with loaded_needed(client, name):
                rows = client.get(name, ids=[pk], output_fields=view.scalar_fields)
            if not rows:
                raise InputError(f"no document with {view.pk} = {key!r} in {name!r} (deleted since the search?)")
            row = {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in rows[0].items()}
            text_field = request.query_params.get("text_field") or view.default_text
            text = str(row.pop(text_field, "") or "") if text_field else ""
            terms = query_terms(request.query_params.get("query", ""))
            answer: dict[str, Any] = {
                "collection": name,
                "pk": view.pk,
                "key": key,
                "text_field": text_field,
                "text": segments(text, terms),
                "fields": {k: v for k, v in row.items() if k != view.pk},
            }
            if span is not None:
                answer["text"], marked = with_chunk(text, *span, terms, width=None)
                answer["chunk"] = {"start": span[0], "end": span[1], "span": list(marked)}
            return answer

        return JSONResponse(await run_in_threadpool(work))

    @_plain_errors
    async def evaluation(request: Request) -> Response:
        return JSONResponse(summarize(await _json_body(request, MAX_REPORT_BYTES)))

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/collections", collections),
            Route("/api/load", load_endpoint, methods=["POST"]),
            Route("/api/compare", compare_endpoint, methods=["POST"]),
            Route("/api/document", document),
            Route("/api/eval", evaluation, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(LocalOnly, allowed_hosts=allowed_hosts)],
    )
    app.state.ui = state
    return app
