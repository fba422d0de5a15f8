"""The gateway in front of a real Milvus 2.3.5 standalone server (issue 23): grpc-go's 64 KiB HTTP/2 windows, where
milvus-lite's server has 4 MiB ones, so the splicing front's flow control is tested for real. One server per run
(``milvus_standalone_server``); skipped loudly without it (failed under CI=true). Milvus 2.3 has no Function or
BM25: the collection is a plain dense one, its vectors computed here (``hashed_embedding``)."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pymilvus
import pytest
from pymilvus import DataType

from tests.conftest import CORPUS, rerank_function
from tests.gateway.test_pymilvus import rows
from tests.integration.vllm_server import in_ci
from vllm_ranker import MilvusClient
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer, hashed_embedding, milvus_standalone_server
from vllm_ranker.testing.milvus_standalone import find_milvus_server, install_hint

NAME = "real_docs"
DIM = 128  # 48 query vectors of 128 floats: a ~25 KB search request, more than a few HTTP/2 frames
TOPICS = ["AI research", "renewable energy", "dogs and cats", "Python language", "solar wind", "deep learning"]
DOCS = [f"{CORPUS[i % 15]}; {TOPICS[i % len(TOPICS)]} note {i}" for i in range(300)]
CALL_S = 5.0  # each call after the storm: a hung connection fails the test in seconds, not pymilvus's minutes


def vectors(queries: list[str]) -> list[list[float]]:
    return [hashed_embedding(q, DIM) for q in queries]


def search(client: Any, queries: list[str], endpoint: str | None = None, timeout: float = CALL_S) -> Any:
    """A dense search, reranked by the model ranker at ``endpoint`` when one is given; its rows, comparable."""
    ranker = {"ranker": rerank_function(endpoint, queries)} if endpoint else {}
    found = client.search(
        NAME, data=vectors(queries), anns_field="vector", limit=5, output_fields=["document"], timeout=timeout, **ranker
    )
    return rows(found)


@pytest.fixture(scope="module")
def real_milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus 2.3.5 standalone with the ``real_docs`` collection created, filled and loaded; yields its URI."""
    executable = find_milvus_server()
    if executable is None:
        why = f"no Milvus 2.3.5 standalone server: {install_hint()}"
        if in_ci():
            pytest.fail(f"the real-Milvus tier must run in CI: {why}", pytrace=False)
        warnings.warn(f"SKIPPING the real-Milvus tier: {why}", UserWarning, stacklevel=1)
        pytest.skip(why)
    data_dir: Path = tmp_path_factory.mktemp("milvus-2.3.5")
    with milvus_standalone_server(data_dir, executable) as uri:
        client = pymilvus.MilvusClient(uri=uri)
        try:
            assert client.get_server_version().startswith("v2.3.5")
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("document", DataType.VARCHAR, max_length=256)
            schema.add_field("year", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="IP")
            client.create_collection(NAME, schema=schema, index_params=index)
            data = [
                {"id": i, "document": doc, "year": 2000 + i % 30, "vector": hashed_embedding(doc, DIM)}
                for i, doc in enumerate(DOCS)
            ]
            client.insert(NAME, data)
            client.flush(NAME)
            client.load_collection(NAME)
        finally:
            client.close()
        yield uri
    # ~270 MB of preallocated etcd WAL and rocksmq logs, in each of the three runs pytest keeps: only logs stay.
    shutil.rmtree(data_dir / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def reference(real_milvus: str) -> Iterator[MilvusClient]:
    """The Python client on the backend itself: every answer through the gateway must equal its answer."""
    client = MilvusClient(uri=real_milvus)
    yield client
    client.close()


@pytest.fixture(scope="module")
def real_gateway(real_milvus: str) -> Iterator[Gateway]:
    with Gateway(real_milvus, port=0, grace=2.0) as gw:
        yield gw


def passthrough_calls() -> list[tuple[str, Callable[[Any], Any]]]:
    return [
        ("query", lambda c: c.query(NAME, filter="year < 2003", output_fields=["document"], timeout=CALL_S)),
        ("get", lambda c: c.get(NAME, ids=[1, 2, 3, 250], output_fields=["document", "year"], timeout=CALL_S)),
        ("describe_collection", lambda c: c.describe_collection(NAME, timeout=CALL_S)),
    ]


def test_large_searches_beside_passthrough_calls_on_one_connection(
    real_gateway: Gateway, reference: MilvusClient
) -> None:
    """Several threads share one SDK connection: reranked and plain searches of 48 queries (~25 KB requests),
    with queries, gets and describes between them. No call stalls, and every answer equals the reference's."""
    server = RerankServer(request_latency=0.02).start()  # a little service time, so that the searches overlap
    queries = [f"{TOPICS[j % len(TOPICS)]} progress {j}" for j in range(48)]
    jobs: list[tuple[str, Callable[[Any], Any]]] = [
        ("reranked nq=48", lambda c: search(c, queries, server.endpoint, timeout=30)),
        *passthrough_calls()[:1],
        ("plain nq=48", lambda c: search(c, queries, timeout=30)),
        *passthrough_calls()[1:],
    ]
    want = {name: job(reference) for name, job in jobs}
    plain = pymilvus.MilvusClient(uri=real_gateway.uri)
    try:

        def worker(_: int) -> list[tuple[str, bool]]:
            return [(name, job(plain) == want[name]) for _ in range(2) for name, job in jobs]

        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            results = [outcome for outcomes in pool.map(worker, range(6)) for outcome in outcomes]
        elapsed = time.monotonic() - started
    finally:
        plain.close()
        server.stop()
    assert [name for name, equal in results if not equal] == []
    assert len(results) == 6 * 2 * len(jobs)
    assert server.max_in_flight > 1  # the reranked searches really overlapped
    assert elapsed < 60


@pytest.mark.parametrize("splice", [True, False], ids=["splicing-front", "grpc-server"])
def test_a_connection_serves_on_after_a_storm_of_expired_reranked_searches(
    real_milvus: str, reference: MilvusClient, server: RerankServer, splice: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """One pymilvus client (one HTTP/2 connection), 16 threads, 120 reranked searches whose deadlines (50-250 ms)
    all expire before the rerank service answers (400 ms): each ends in DEADLINE_EXCEEDED. Then ten ordinary
    calls on the SAME connection must each answer within seconds, as the reference does."""
    started = time.monotonic()
    with Gateway(real_milvus, port=0, grace=2.0, splice=splice) as gw, RerankServer(request_latency=0.4) as slow:
        plain = pymilvus.MilvusClient(uri=gw.uri)
        try:

            def expiring(i: int) -> Any:
                try:
                    search(plain, [TOPICS[i % len(TOPICS)]], slow.endpoint, timeout=0.05 + 0.2 * i / 119)
                except grpc.RpcError as error:  # pymilvus lets DEADLINE_EXCEEDED out as it is
                    return error.code()
                except pymilvus.MilvusException as error:  # the gateway answers DEADLINE_EXCEEDED itself too
                    return f"MilvusException({error.code}, {error.message!r})"
                return "answered"

            # pymilvus logs each expired call with its traceback: 120 expected ones would bury a real failure.
            with caplog.at_level(logging.CRITICAL, logger="pymilvus"), ThreadPoolExecutor(16) as pool:
                outcomes = list(pool.map(expiring, range(120)))
            assert outcomes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 120
            assert len(slow.requests) > 0  # the searches did reach the rerank stage before they expired
            for name, call in after_the_storm(server.endpoint):
                try:
                    got = call(plain)
                except (grpc.RpcError, pymilvus.MilvusException) as error:
                    pytest.fail(f"{name} on the connection that carried the storm: {error!r}", pytrace=False)
                assert got == call(reference), name
        finally:
            plain.close()
    assert time.monotonic() - started < 60


def after_the_storm(endpoint: str) -> list[tuple[str, Callable[[Any], Any]]]:
    return [
        ("has_collection", lambda c: c.has_collection(NAME, timeout=CALL_S)),
        ("plain search", lambda c: search(c, ["AI research"])),
        ("reranked search", lambda c: search(c, ["AI research"], endpoint)),
        *passthrough_calls(),
        ("count", lambda c: c.query(NAME, filter="", output_fields=["count(*)"], timeout=CALL_S)),
        ("reranked search nq=2", lambda c: search(c, ["energy storage", "dogs"], endpoint)),
        ("list_collections", lambda c: NAME in c.list_collections(timeout=CALL_S)),
        ("plain search nq=3", lambda c: search(c, TOPICS[:3])),
    ]


# A filter of ~170 KB: each search request is larger than grpc-go's 64 KiB stream window (and the front's hold
# limit), so the front must take it over or pass it on while the backend grants credit frame by frame. It admits
# ids 0-29 only (the rest do not exist): documents i and i + 30 have the same text but for their note number, so the
# same score, and a limit cutting through such a tie let Milvus 2.3.5 answer either one, differently from call to
# call under load (seen: 3 runs in 20). Among ids 0-29 texts can still tie, but not at the 8th hit of the queries
# below (each hit list is compared with ties in id order).
BIG_FILTER = "id in [" + ", ".join(str(i) for i in [*range(30), *range(len(DOCS), 30000)]) + "]"


def big_chain(endpoint: str, query: str) -> Any:
    """A Milvus 3.0 function chain (new this session): Milvus 2.3.5 knows none, so the gateway must run it and
    send the backend a plain first stage."""
    from pymilvus.function_chain import FunctionChain, FunctionChainStage, col, fn

    return (
        FunctionChain(FunctionChainStage.L2_RERANK)
        .map("fresh", fn.decay(col("year"), function="gauss", origin=2015, scale=6))
        .map("$score", fn.rerank_model(col("document"), queries=[query], provider="vllm", endpoint=endpoint))
        .map("$score", fn.num_combine(col("$score"), col("fresh"), mode="weighted", weights=[0.8, 0.2]))
        .sort(col("$score"), desc=True, tie_break_col=col("$id"))
        .limit(4)
    )


def _by_score(hit: tuple[int, float, Any]) -> tuple[float, int]:
    return -hit[1], hit[0]


def big_jobs(endpoint: str) -> list[tuple[str, Callable[[Any], Any]]]:
    def searched(c: Any, query: str, timeout: float, **extra: Any) -> Any:
        found = c.search(
            NAME, data=vectors([query]), anns_field="vector", limit=8, filter=BIG_FILTER, output_fields=["document"],
            timeout=timeout, **extra,
        )  # fmt: skip
        # Hits of equal score in either order: Milvus does not order ties, and under load it varies from call to call.
        rows = [[(h["id"], round(h["distance"], 4), h["entity"]) for h in hits] for hits in found]
        return [sorted(hits, key=_by_score) for hits in rows]

    return [
        ("big reranked", lambda c: searched(c, "AI research", 30, ranker=rerank_function(endpoint, ["AI research"]))),
        ("big chain", lambda c: searched(c, "solar wind", 30, function_chains=big_chain(endpoint, "solar wind"))),
        ("big plain", lambda c: searched(c, "dogs and cats", 30)),  # no tie at its 8th hit (see BIG_FILTER)
        *passthrough_calls()[:1],
    ]


@pytest.mark.parametrize("splice", [True, False], ids=["splicing-front", "grpc-server"])
def test_requests_larger_than_the_backend_window_with_cancellations_on_one_connection(
    real_milvus: str, reference: MilvusClient, splice: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """One connection, 8 threads: ~170 KB reranked, chain and plain searches beside queries, with reranked ones
    whose deadline expires mid-rerank cancelled between them. Every answered call equals the reference; every
    cancelled one ends DEADLINE_EXCEEDED; afterwards the connection still answers at once."""
    with Gateway(real_milvus, port=0, grace=2.0, splice=splice) as gw, RerankServer(request_latency=0.05) as srv:
        jobs = big_jobs(srv.endpoint)
        want = {name: job(reference) for name, job in jobs}
        plain = pymilvus.MilvusClient(uri=gw.uri)
        try:

            def one(i: int) -> tuple[str, Any]:
                if i % 3 == 2:  # expires while the rerank service (50 ms a request) is still answering
                    try:
                        search(plain, [TOPICS[i % len(TOPICS)]], srv.endpoint, timeout=0.03)
                    except grpc.RpcError as error:
                        return "cancelled", error.code()
                    except pymilvus.MilvusException as error:
                        return "cancelled", f"MilvusException({error.code}, {error.message!r})"
                    return "cancelled", "answered"
                name, job = jobs[i % len(jobs)]
                got = job(plain)
                return name, True if got == want[name] else (got, want[name])  # a mismatch shows both answers

            with caplog.at_level(logging.CRITICAL, logger="pymilvus"), ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(one, range(48)))
            answered = [ok for name, ok in outcomes if name != "cancelled"]
            cancelled = [code for name, code in outcomes if name == "cancelled"]
            wrong = [(name, ok) for name, ok in outcomes if name != "cancelled" and ok is not True]
            assert not wrong and len(answered) == 32, wrong or outcomes
            # 30 ms is short enough for Milvus 2.3.5 itself to give up first now and then (its proxy's timestamp
            # allocation: "[search] Retry timeout: 0.03s"), an error the gateway passes on as Milvus answered it.
            expired = [c for c in cancelled if c == grpc.StatusCode.DEADLINE_EXCEEDED or "Retry timeout" in str(c)]
            assert len(expired) == len(cancelled) == 16, cancelled
            for name, call in after_the_storm(srv.endpoint):
                assert call(plain) == call(reference), name
        finally:
            plain.close()
