"""The failures the page shows in words as they are, each with the ``kind`` and HTTP status the API answers."""

from __future__ import annotations


class PageError(Exception):
    """A failure whose message is meant for the page's reader (no traceback, no secret in it)."""

    kind = "input"
    status = 400


class InputError(PageError, ValueError):
    """What the page sent is missing or out of range."""


class NotLoaded(PageError):
    """The collection is released: Milvus searches only loaded collections (``POST /api/load`` loads one)."""

    kind = "not_loaded"
    status = 409


class NoDatabase(PageError):
    """``--uri`` names a Milvus Lite file that is not there: the page only reads, so it creates none."""

    kind = "no_database"
    status = 404


class LiteUnavailable(PageError):
    """The Milvus Lite file is there but cannot be opened (another process holds it, or it is no Milvus Lite 3
    database)."""

    kind = "milvus"
    status = 502
