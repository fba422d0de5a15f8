"""Hugging Face Text Embeddings Inference (TEI) ``POST /rerank``.

Request ``{"query", "texts", "truncate"?, "truncation_direction"?}``; answer a bare JSON array
``[{"index", "score"}]`` sorted by score (best first), mapped back by ``index``.

URL: ``endpoint`` is required (TEI is self-hosted); by the rule of base.py its path is kept when it ends in ``rerank``
(``http://h:8080/rerank``, a gateway route ``https://gw/tei/rerank``); otherwise ``/rerank`` is appended
(``http://h:8080`` -> ``http://h:8080/rerank``, ``https://gw/tei`` -> ``https://gw/tei/rerank``). Milvus instead
replaces any path with ``/rerank``, which breaks gateways with a path prefix.

Auth: ``Authorization: Bearer <key>`` only when a key is configured (TEI's ``--api-key``): the ``credential``
param, else ``MILVUS_TEI_API_KEY``, else ``TEI_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Json, MalformedAnswer, Provider, Target, bool_option, choice_option, scores_by_index


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    body: dict[str, Any] = {"query": query, "texts": list(documents)}
    body.update(target.options)
    return body


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    if not isinstance(answer, list):
        raise MalformedAnswer(f"expected a JSON array of {{index, score}}, got a {type(answer).__name__}")
    return scores_by_index(answer, n_docs, score_key="score", container="answer")


PROVIDER = Provider(
    name="tei",
    default_batch_size=32,
    default_endpoint=None,
    model_required=False,
    key_required=False,
    key_env=("MILVUS_TEI_API_KEY", "TEI_API_KEY"),
    options=(
        bool_option(
            "truncate",
            error="Rerank params error, truncate: {value} is not bool type",
            hint="give true or false (true: TEI cuts inputs longer than the model's maximum)",
        ),
        choice_option(
            "truncation_direction",
            ("Left", "Right"),
            error="[truncation_direction param's value: {value}] is not invalid, only supports [Left/Right]",
            hint="give 'Left' or 'Right' (capitalised, as TEI expects)",
        ),
    ),
    route="/rerank",
    build_body=build_body,
    parse_scores=parse_scores,
    label="TEI",
)
