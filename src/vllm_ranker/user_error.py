"""``UserError``: the base of every failure a user of the command line can cause or meet, whichever room raises it
(the tools' ``ToolError``, the command line's ``UsageError``, the gateway's ``GatewayError``, the page's
``UiUnavailable``). A leaf of the package root: it imports nothing, so every room may derive from it without
importing another outer room."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A failure a user can cause or meet (bad input, files, ports, services, missing extras), with a message that
    says what to change. The command line prints it as its ``error:`` line (the lines after the first, e.g. install
    commands, kept as written) and never asks for a bug report. The rooms' own errors derive from it, so the command
    line needs no list of them."""
