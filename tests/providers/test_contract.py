"""One contract, eight providers: the same table of cases and the same assertions for vllm, tei, cohere,
voyageai, siliconflow, ali, huggingface and sglang, driven through ``vllm_ranker.MilvusClient`` on Milvus Lite against
a loopback server speaking each provider's real wire format.

Ground truth: the first-stage candidates (a plain Milvus search) scored by the loopback server's own score
function, ordered by (float32 score desc, primary key asc).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
import pymilvus
import pytest

from tests.providers.cases import CASES, Case, query_and_documents
from tests.providers.conftest import COLLECTION, CORPUS, SearchSpy, vector
from vllm_ranker import Function, FunctionType, MilvusClient, RerankParamError, RerankServiceError, RerankTimeout
from vllm_ranker.core.schema import CollectionInfo, FieldInfo
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.providers import PROVIDERS
from vllm_ranker.testing import Recorded, Reply, RerankServer
from vllm_ranker.testing import wire_formats as wf

QUERIES = ["AI research progress", "renewable energy"]
LIMIT = 6
BATCH = 4  # 6 candidates per query -> two requests per query

ALL = [pytest.param(case, id=case.provider) for case in CASES]
OPTIONS = [pytest.param(case, opt, id=f"{case.provider}-{opt.id}") for case in CASES for opt in case.options]
BAD = [pytest.param(case, bad, id=f"{case.provider}-{bad.id}") for case in CASES for bad in case.bad]
ENDPOINTS = [
    pytest.param(case, endpoint, url, id=f"{case.provider}-{n}")
    for case in CASES
    for n, (endpoint, url) in enumerate(case.endpoints)
]


# -- helpers ----------------------------------------------------------------------------------------------
def ranker(
    case: Case,
    srv: RerankServer | None,
    *,
    key: bool = True,
    endpoint: str | None = None,
    drop: tuple[str, ...] = (),
    **params: Any,
) -> Function:
    merged: dict[str, Any] = {"reranker": "model", "provider": case.provider, "queries": QUERIES}
    if endpoint is not None:
        merged["endpoint"] = endpoint
    elif srv is not None:
        merged["endpoint"] = srv.endpoint
    if case.model is not None:
        merged["model_name"] = case.model
    if key:
        merged["credential"] = case.key
    merged.update(params)
    for name in drop:
        merged.pop(name, None)
    return Function(
        name=f"{case.provider}_ranker", input_field_names=["document"], function_type=FunctionType.RERANK, params=merged
    )


def dense_search(client: MilvusClient, function: Function | None, **kwargs: Any) -> Any:
    call: dict[str, Any] = dict(
        data=[vector(q) for q in QUERIES], anns_field="vec", limit=LIMIT, output_fields=["document"]
    )
    call.update(kwargs)
    if function is None:
        return pymilvus.MilvusClient.search(client, COLLECTION, **call)
    return client.search(COLLECTION, ranker=function, **call)


def truth(srv: RerankServer, query: str, pks: Sequence[int]) -> list[tuple[int, float]]:
    scored = [(pk, float(np.float32(srv.score(query, CORPUS[pk])))) for pk in pks]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def assert_reranked(result: Any, first: Any, srv: RerankServer, queries: Sequence[str]) -> None:
    assert len(result) == len(queries)
    for q, query in enumerate(queries):
        expected = truth(srv, query, list(first[q].ids))
        assert [(hit["id"], hit["distance"]) for hit in result[q]] == expected
        assert all(hit["entity"]["document"] == CORPUS[hit["id"]] for hit in result[q])


def expected_bodies(
    case: Case, first: Any, queries: Sequence[str], batch: int, extra: dict[str, Any] | None = None
) -> list[Any]:
    bodies = []
    for q, query in enumerate(queries):
        docs = [CORPUS[pk] for pk in first[q].ids]
        for start in range(0, len(docs), batch):
            body = case.body(query, docs[start : start + batch])
            body.update(extra or {})
            bodies.append(body)
    return bodies


def canonical(bodies: Sequence[Any]) -> list[str]:
    return sorted(json.dumps(b, sort_keys=True) for b in bodies)


def rendering(case: Case, srv: RerankServer, order: str) -> Any:
    """A fault hook answering every request in the provider's format, results laid out as ``order`` says."""

    def reply(recorded: Recorded) -> Reply:
        query, docs = query_and_documents(case.provider, recorded.body)
        scores = [srv.score(query, d) for d in docs]
        n = len(docs)
        layout = {
            "worst-first": sorted(range(n), key=lambda i: scores[i]),
            "rotated": [(i + 1) % n for i in range(n)],
            "missing": list(range(n))[:-1],
            "duplicate": [0, *range(n - 1)],
        }[order]
        if not case.by_index and order in ("worst-first", "rotated"):
            layout = list(range(n))  # a bare list of scores can only be in input order
        return Reply(json_body=wf.render(case.provider, query, docs, scores, order=layout))

    return reply


def collection_info() -> CollectionInfo:
    return CollectionInfo(
        COLLECTION,
        "id",
        {"id": FieldInfo("id", pymilvus.DataType.INT64), "document": FieldInfo("document", pymilvus.DataType.VARCHAR)},
    )


# -- requests and results ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ALL)
def test_dense_search_reranks_and_sends_the_documented_request(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    result = dense_search(lite, ranker(case, srv, maxBatch=BATCH))
    first = dense_search(lite, None)
    assert_reranked(result, first, srv, QUERIES)

    assert len(srv.requests) == 4
    for recorded in srv.requests:
        assert recorded.method == "POST"
        assert recorded.path == case.path
        assert recorded.headers["content-type"] == "application/json"
        assert recorded.headers["authorization"] == f"Bearer {case.key}"
    assert canonical(srv.bodies()) == canonical(expected_bodies(case, first, QUERIES, BATCH))


@pytest.mark.parametrize("case", ALL)
def test_bm25_text_search_uses_the_search_texts_as_queries(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    function = ranker(case, srv, drop=("queries",))
    texts = ["energy progress"]
    result = lite.search(
        COLLECTION, data=texts, anns_field="sparse", limit=5, output_fields=["document"], ranker=function
    )
    first = pymilvus.MilvusClient.search(lite, COLLECTION, data=texts, anns_field="sparse", limit=5)
    assert len(first[0]) > 0
    assert_reranked(result, first, srv, texts)
    assert canonical(srv.bodies()) == canonical(expected_bodies(case, first, texts, case.default_batch))


@pytest.mark.parametrize(("case", "option"), OPTIONS)
def test_every_documented_option_is_sent_exactly(
    case: Case, option: Any, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    result = dense_search(lite, ranker(case, srv, **option.params))
    first = dense_search(lite, None)
    assert_reranked(result, first, srv, QUERIES)
    assert len(srv.requests) == 2  # the default batch size holds all 6 candidates
    assert {r.path for r in srv.requests} == {case.path}
    assert canonical(srv.bodies()) == canonical(expected_bodies(case, first, QUERIES, case.default_batch, option.sent))


@pytest.mark.parametrize("order", ["worst-first", "rotated"])
@pytest.mark.parametrize("case", ALL)
def test_scores_map_by_index_when_the_answer_is_out_of_order(
    case: Case, order: str, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    srv.fault = rendering(case, srv, order)
    result = dense_search(lite, ranker(case, srv))
    assert_reranked(result, dense_search(lite, None), srv, QUERIES)


@pytest.mark.parametrize("case", ALL)
def test_a_gateway_prefix_in_the_endpoint_is_kept(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    result = dense_search(lite, ranker(case, srv, endpoint=srv.endpoint + "/gateway/team-a"))
    assert_reranked(result, dense_search(lite, None), srv, QUERIES)
    assert {r.path for r in srv.requests} == {"/gateway/team-a" + case.path}


# -- authentication -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ALL)
def test_a_missing_key_fails_before_the_search_or_sends_no_header(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer], search_spy: SearchSpy
) -> None:
    srv = servers[case.provider]
    if case.key_required:
        with pytest.raises(RerankParamError) as caught:
            dense_search(lite, ranker(case, srv, key=False))
        message = str(caught.value)
        assert "credential" in message
        for name in case.key_env:
            assert name in message
        assert search_spy.calls == 0 and srv.requests == []
    else:
        assert_reranked(dense_search(lite, ranker(case, srv, key=False)), dense_search(lite, None), srv, QUERIES)
        assert srv.requests and all("authorization" not in r.headers for r in srv.requests)


@pytest.mark.parametrize("case", ALL)
def test_keys_are_looked_up_credential_first_then_env_in_order(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = servers[case.provider]
    values = {name: f"env-{n}-{case.key}" for n, name in enumerate(case.key_env)}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    dense_search(lite, ranker(case, srv))
    assert {r.headers["authorization"] for r in srv.requests} == {f"Bearer {case.key}"}
    for name in case.key_env:
        srv.reset()
        dense_search(lite, ranker(case, srv, key=False))
        assert {r.headers["authorization"] for r in srv.requests} == {f"Bearer {values[name]}"}
        monkeypatch.delenv(name)


# -- validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "bad"), BAD)
def test_an_invalid_option_gets_the_milvus_message_and_the_fix(
    case: Case, bad: Any, lite: MilvusClient, servers: dict[str, RerankServer], search_spy: SearchSpy
) -> None:
    srv = servers[case.provider]
    with pytest.raises(RerankParamError) as caught:
        dense_search(lite, ranker(case, srv, **bad.params))
    assert bad.milvus in str(caught.value)
    assert bad.fix in str(caught.value)
    assert search_spy.calls == 0 and srv.requests == []


@pytest.mark.parametrize("case", ALL)
def test_model_name_is_required_where_the_service_needs_it(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer], search_spy: SearchSpy
) -> None:
    srv = servers[case.provider]
    function = ranker(case, srv, drop=("model_name",))
    if case.model_required:
        with pytest.raises(RerankParamError) as caught:
            dense_search(lite, function)
        assert f"{case.provider} rerank model name is required" in str(caught.value)
        assert "params['model_name']" in str(caught.value)
        assert search_spy.calls == 0 and srv.requests == []
    else:
        dense_search(lite, function)
        assert srv.requests and all("model" not in r.body for r in srv.requests)


@pytest.mark.parametrize(("case", "endpoint", "url"), ENDPOINTS)
def test_endpoint_maps_to_the_request_url(case: Case, endpoint: str, url: str) -> None:
    spec = parse_ranker(ranker(case, None, endpoint=endpoint), collection_info(), env={})
    assert [t.url for t in spec.targets] == [url]


@pytest.mark.parametrize("case", ALL)
def test_defaults_batch_size_and_url(case: Case) -> None:
    function = ranker(case, None)
    if case.default_url is None:
        with pytest.raises(RerankParamError, match="rerank function lost params endpoint"):
            parse_ranker(function, collection_info(), env={})
        function = ranker(case, None, endpoint="http://h:1")
    spec = parse_ranker(function, collection_info(), env={})
    assert spec.batch_size == case.default_batch
    if case.default_url is not None:
        assert [t.url for t in spec.targets] == [case.default_url]


# -- failures -----------------------------------------------------------------------------------------------
ERRORS = [
    # status, max_retries, requests made: 4xx other than 429 are never retried
    (400, 2, 1),
    (401, 2, 1),
    (403, 2, 1),
    (429, 0, 1),
    (500, 0, 1),
    (503, 0, 1),
]


@pytest.mark.parametrize(("status", "retries", "tries"), ERRORS, ids=[str(e[0]) for e in ERRORS])
@pytest.mark.parametrize("case", ALL)
def test_an_http_error_gives_the_status_and_the_services_own_message(
    case: Case, status: int, retries: int, tries: int, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    message = f"loopback says no ({case.provider} {status})"
    raw, shown = wf.error_answer(case.provider, status, message)
    srv.fault = lambda _recorded: Reply(status=status, raw=raw)
    with pytest.raises(RerankServiceError) as caught:
        dense_search(lite, ranker(case, srv, max_retries=retries, max_concurrency=1))
    text = str(caught.value)
    assert "call service failed" in text
    assert f"HTTP {status}: {shown}" in text  # the service's own message, read out of its error shape
    assert caught.value.status == status
    assert len(srv.requests) == tries


@pytest.mark.parametrize("case", ALL)
def test_429_and_5xx_are_retried_then_succeed(case: Case, lite: MilvusClient, servers: dict[str, RerankServer]) -> None:
    srv = servers[case.provider]
    busy, _ = wf.error_answer(case.provider, 429, "slow down")
    down, _ = wf.error_answer(case.provider, 503, "warming up")
    srv.script = [Reply(status=429, raw=busy, headers={"Retry-After": "0"}), Reply(status=503, raw=down)]
    result = dense_search(lite, ranker(case, srv, max_retries=2, max_concurrency=1))
    assert_reranked(result, dense_search(lite, None), srv, QUERIES)
    assert len(srv.requests) == 4  # two failures, then one request per query


# A bare list of scores (Hugging Face) cannot repeat an index, so "duplicate" applies to indexed answers only.
MALFORMED = [
    pytest.param(case, kind, id=f"{case.provider}-{kind}")
    for case in CASES
    for kind in ("not-json", "wrong-shape", "missing", "duplicate")
    if case.by_index or kind != "duplicate"
]


@pytest.mark.parametrize(("case", "kind"), MALFORMED)
def test_a_malformed_answer_is_an_error_naming_what_is_wrong(
    case: Case, kind: str, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    if kind == "not-json":
        srv.fault = lambda _recorded: Reply(raw=b"<html>upstream gateway page</html>")
        detail = "not JSON: <html>upstream gateway page</html>"
    elif kind == "wrong-shape":
        srv.fault = lambda _recorded: Reply(json_body={"unexpected": True})
        detail = f"malformed {case.provider} rerank response"
    else:
        srv.fault = rendering(case, srv, kind)
        detail = {"missing": "missing index [5]", "duplicate": "duplicate index [0]"}[kind]
        if not case.by_index:
            detail = "sent 6 documents, got 5 scores"
    with pytest.raises(RerankServiceError) as caught:
        dense_search(lite, ranker(case, srv, max_retries=0))
    assert "call service failed" in str(caught.value)
    assert caught.value.kind == "malformed"
    assert detail in str(caught.value)


@pytest.mark.parametrize("case", ALL)
def test_the_whole_rerank_has_one_deadline(case: Case, lite: MilvusClient, servers: dict[str, RerankServer]) -> None:
    srv = servers[case.provider]
    srv.fault = lambda _recorded: Reply(delay=1.0, json_body=[])
    with pytest.raises(RerankTimeout) as caught:
        dense_search(lite, ranker(case, srv, timeout=0.3))
    assert "call service failed" in str(caught.value)
    assert "params['timeout']" in str(caught.value)


@pytest.mark.parametrize("case", ALL)
def test_an_unreachable_service_is_a_call_service_failure(case: Case, lite: MilvusClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RerankServiceError) as caught:
        dense_search(lite, ranker(case, None, endpoint=f"http://127.0.0.1:{port}", max_retries=0))
    assert "call service failed" in str(caught.value)
    assert caught.value.kind == "connect"


# -- the loopback itself keeps the services' rules (so the tests above can fail) ---------------------------
@pytest.mark.parametrize("case", ALL)
def test_the_loopback_refuses_a_wrong_path_and_an_empty_body(case: Case) -> None:
    status, _ = wf.answer(case.provider, "/nowhere", case.body("q", ["d"]), lambda q, d: 0.5, "m")
    assert status == 404
    status, _ = wf.answer(case.provider, case.path, {}, lambda q, d: 0.5, "m")
    assert status in (400, 422)
    status, answer = wf.answer(
        case.provider,
        case.path,
        case.body("a b", ["a", "c", "b c", "a b"]),
        lambda q, d: len(set(q.split()) & set(d.split())) / 2,
        "m",
    )
    assert status == 200
    assert PROVIDERS[case.provider].parse_scores(answer, 4) == [0.5, 0.0, 0.5, 1.0]
    if isinstance(answer, list):  # tei, huggingface
        results = answer
    else:
        results = {"voyageai": answer.get("data"), "ali": answer.get("output", {}).get("results")}.get(
            case.provider, answer.get("results")
        )
    if case.by_index:  # the real services answer best first, not in input order
        assert [r["index"] for r in results] == [3, 0, 2, 1]
    else:
        assert results == [0.5, 0.0, 0.5, 1.0]
