"""A ``milvus-lite server`` that serves one more rerank provider, ``acme``: a backend that knows a provider the
gateway and the Python client do not (a newer Milvus's, a custom build's).

    python -m tests.acme_milvus_lite server --data-dir DIR --host 127.0.0.1 --port PORT

Milvus Lite's providers are a table in ``milvus_lite.rerank.factory``; ``acme`` is added to it before the
server starts (through the project's launcher, so the keepalive policy is the same). Its score is
deterministic, computed here, so a test can tell the backend's ranking from any other.
"""

from __future__ import annotations

import sys
from typing import Any

from milvus_lite.rerank import factory
from milvus_lite.rerank.protocol import RerankProvider, RerankResult

from vllm_ranker.local_servers import _milvus_lite_launcher

PROVIDER = "acme"


def acme_score(query: str, document: str) -> float:
    """Shared letters over the document's length: no other ranker of the tests orders documents this way."""
    letters = set(query.lower()) - {" "}
    return sum(ch in letters for ch in document.lower()) / (len(document) + 1)


class Acme(RerankProvider):  # type: ignore[misc]  # milvus_lite has no type hints
    def rerank(self, query: str, documents: list[str], top_n: int | None = None) -> list[RerankResult]:
        scored = [RerankResult(i, acme_score(query, d)) for i, d in enumerate(documents)]
        scored.sort(key=lambda r: -r.relevance_score)
        return scored[:top_n] if top_n is not None else scored


def _no_check(params: dict[str, Any]) -> None:
    return None


def main() -> int:
    spec = factory._ProviderSpec(frozenset({"provider"}), _no_check, lambda params: Acme())
    factory._PROVIDER_SPECS[PROVIDER] = spec
    return _milvus_lite_launcher.main()


if __name__ == "__main__":
    sys.exit(main())
