"""Alibaba Cloud Model Studio (DashScope) text rerank:
``POST https://dashscope.aliyuncs.com/api/v1/services/rerank/text-rerank/text-rerank``.

Request ``{"model", "input": {"query", "documents"}}`` (no ``parameters``: DashScope then returns every
document, without its text); answer ``{"output": {"results": [{"index", "relevance_score"}]}, "usage":
{"total_tokens"}, "request_id"}`` sorted by score, mapped back by ``index``.

URL: the cloud default unless ``endpoint`` is given (another region such as
``https://dashscope-intl.aliyuncs.com``, or a gateway), by the rule of base.py: an endpoint whose path ends in
``rerank`` or ``text-rerank`` is used as it is; one ending in a leading part of the route (``/api/v1``) gets the
rest; any other gets ``/api/v1/services/rerank/text-rerank/text-rerank`` appended.

Auth: ``Authorization: Bearer <key>``, required (Milvus sends ``Bearer `` with no key and gets a 401; we fail
before the search): the ``credential`` param, else ``MILVUS_DASHSCOPE_API_KEY``, ``DASHSCOPE_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Json, MalformedAnswer, Provider, Target, scores_by_index

ROUTE = "/api/v1/services/rerank/text-rerank/text-rerank"
DEFAULT_URL = "https://dashscope.aliyuncs.com" + ROUTE


def build_body(target: Target, query: str, documents: Sequence[str]) -> Json:
    return {"model": target.model, "input": {"query": query, "documents": list(documents)}}


def parse_scores(answer: Json, n_docs: int) -> list[float]:
    output = answer.get("output") if isinstance(answer, dict) else None
    if not isinstance(output, dict) or "results" not in output:
        raise MalformedAnswer("expected a JSON object with `output.results`")
    return scores_by_index(output["results"], n_docs, score_key="relevance_score", container="output.results")


PROVIDER = Provider(
    name="ali",
    default_batch_size=128,
    default_endpoint=DEFAULT_URL,
    model_required=True,
    key_required=True,
    key_env=("MILVUS_DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY"),
    options=(),
    route=ROUTE,
    build_body=build_body,
    parse_scores=parse_scores,
    model_hint="gte-rerank-v2",
    label="DashScope",
)
