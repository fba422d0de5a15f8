"""Values below every other room: standard library only, importing nothing of the package, so the providers, the
core and the transport can all use them without an arrow running back up.

- ``coercion.py``: a Function's param values read alike from strings (what pymilvus sends) or native values.
- ``redaction.py``: ``Secret`` (an API key that never shows its value) and scrubbing of secrets out of text.
- ``lazy.py``: ``lazy_face``, the ``__getattr__`` of a package face that loads its names on first use.
"""

from vllm_ranker.values import coercion
from vllm_ranker.values.lazy import lazy_face
from vllm_ranker.values.redaction import Secret, redact

__all__ = ["Secret", "coercion", "lazy_face", "redact"]
