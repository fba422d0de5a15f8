"""``vllm-ranker ui``: a local web page to see what the reranker did (issue 17).

``create_app(uri, endpoint)`` builds the Starlette application; ``command.add_parser``/``command.run`` are the
command line. Needs the ``ui`` extra (starlette, jinja2, uvicorn); the library never imports this package.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Lazy: importing vllm_ranker.ui.command (for --help) must not need the ui extra.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
