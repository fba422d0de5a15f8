"""Fixtures of the command-line tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

HTTP_LOGGERS = ("httpx", "httpcore")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The logging levels (and root handlers) as they were: ``vllm-ranker gateway`` run in process sets them for the
    whole process, and a later test must not find httpx silenced."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in HTTP_LOGGERS}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
