"""The tools' own errors (ingest, eval, bench, demo), a branch apart from the ranker's ``RerankError``, under the
base of every failure a user of the command line can cause or meet.

UserError                       a failure the user can act on (``vllm_ranker.user_error``), never printed as a bug
├── (the command line's UsageError, the gateway's GatewayError, the page's UiUnavailable)
└── ToolError                   every failure of a tool
    ├── ToolInputError          a file, flag value or argument given to a tool cannot work; says what to change
    │   └── CorpusFileError     a corpus, queries or qrels file is missing or malformed
    ├── ExtraMissing            an optional extra (e.g. ``eval``) is not installed; names the install command
    ├── EmbeddingServiceError   the embeddings endpoint failed or answered something else
    └── IngestCountError        after ingest, the collection does not hold exactly the corpus's documents
"""

from __future__ import annotations

from vllm_ranker.user_error import UserError


class ToolError(UserError):
    """Base class of the tools' errors. The message is one line a user can act on."""


class ToolInputError(ToolError):
    """A file, flag value or argument given to a tool cannot work."""


class CorpusFileError(ToolInputError):
    """A corpus, queries or qrels file is missing or malformed."""


class ExtraMissing(ToolError):
    """An optional extra is not installed."""


class EmbeddingServiceError(ToolError):
    """The embeddings endpoint failed or answered something that is not an embeddings answer; ``status`` is
    the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IngestCountError(ToolError):
    """After ingest, the collection does not hold exactly the corpus's documents."""
