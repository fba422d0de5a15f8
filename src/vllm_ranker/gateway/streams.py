"""What the splicing front keeps of each stream of a connection, and of the SDK's HPACK table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .local_call import LocalCall


@dataclass
class Call:
    """A call passed to the backend, in flight."""

    method: str
    headers: list[tuple[bytes, bytes]]
    started: float = field(default_factory=time.perf_counter)
    copy: bytearray | None = None  # the request of a schema change, to forget the schema once it succeeded


@dataclass
class Held:
    headers: bytes = b""  # the request's HEADERS frame while withheld (see _request_headers)
    frames: list[bytes] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    flow: int = 0  # flow-controlled bytes (padding included)
    window: int = 0  # the SDK's stream credits, kept while the headers are withheld


@dataclass
class Local:
    """A call the front answers: its request as received, then its answer as it is written."""

    method: str
    context: LocalCall
    window: int  # what the SDK's stream window still takes
    data: list[bytes] = field(default_factory=list)
    credit: int = 0  # request bytes to credit the SDK's connection window with, sent with the answer
    head: bytes = b""
    body: bytes = b""
    tail: bytes | None = None  # set once answered


def table_state(table: Any) -> tuple[int, int, object]:
    """What tells whether a header block changed an HPACK table: its size limit, its length, its newest entry."""
    entries = table.dynamic_entries
    return table.maxsize, len(entries), entries[0] if entries else None


def same_table(before: tuple[int, int, object], after: tuple[int, int, object]) -> bool:
    """No entry added (a new one would be the newest object) and no size update."""
    return before[:2] == after[:2] and before[2] is after[2]
