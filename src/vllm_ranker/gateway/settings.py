"""What the gateway's command line needs before anything starts: the defaults it shows in ``--help`` and the errors
a user can cause. Standard library only, so ``vllm-ranker gateway --help`` imports neither grpc nor pymilvus."""

from __future__ import annotations

from vllm_ranker.user_error import UserError

DEFAULT_WORKERS = 64
DEFAULT_GRACE_S = 10.0


class GatewayError(UserError, ValueError):
    """A setting the gateway cannot start with (a port in use, unreadable TLS files...); the message says what to
    change. A UserError: the command line prints it as the user's to fix, not as a bug."""


class BackendError(UserError, ValueError):
    """A --backend/--token the gateway cannot use; the message says what to change."""
