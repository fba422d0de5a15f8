"""Soak run (issue 8): N minutes of mixed reranked searches against ``milvus-lite server`` and a FLAKY loopback
rerank server. Every answer must equal the ground truth or be a clean ``RerankError``; memory (RSS) and open file
descriptors must stay flat.

- Milvus: ``milvus-lite server`` in its own process (a cluster's gRPC path), a collection of random texts.
- Rerank service: the loopback vLLM server in its own process (so this process's RSS is the clients' alone),
  with fault hooks: random 503s, 429s with Retry-After, connection resets, truncated bodies, slow answers (still
  right, inside the deadline) and answers slower than the call's deadline.
- Load: one shared sync ``MilvusClient`` driven by a few threads and one shared ``AsyncMilvusClient`` driven by
  many tasks on an event loop in another thread, running plain (dense vectors or BM25 texts) and hybrid searches
  with varying nq, limit, offset and maxBatch. At every sample a fresh client of each kind is also opened, used
  and closed (close paths under load).
- Ground truth: each search of the mix is run once first, with faults off, and checked against the service's
  deterministic scores (``overlap_score``) and ordering; during the soak an answer must equal it exactly.

    python benchmarks/soak.py [--minutes 10] [--sample-every 30] [--threads 4] [--tasks 16]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from common import DIM, WORDS, own_process, vllm_ranker_function
from milvus_server import milvus_lite_server, populate

from vllm_ranker import AnnSearchRequest, AsyncMilvusClient, Function, MilvusClient, RerankError

TIMEOUT_S = 2.0  # the ranker's deadline per call; the "too slow" fault answers after 3 s
Normalised = tuple[tuple[tuple[int, float, str], ...], ...]


# -- the flaky rerank service (runs in a child process) ------------------------------------------------------
def quiet_on_resets(srv: Any) -> None:
    """Clients that give up on a slow answer (their deadline) close the connection: socketserver would print
    each ConnectionResetError/BrokenPipeError with its traceback. Those are expected here; others still print."""
    server = srv._server
    report = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            report(request, client_address)

    server.handle_error = handle_error


def _flaky_service(conn: Any, seed: int, latency: float, per_doc: float) -> None:
    from vllm_ranker.testing import Recorded, Reply, RerankServer

    rng = random.Random(seed)
    lock = threading.Lock()
    with RerankServer(request_latency=latency, per_document_latency=per_doc) as srv:

        def fault(rec: Recorded) -> Reply | None:
            with lock:
                roll = rng.random()
                slow = rng.uniform(0.1, 0.6)
            if len(srv.requests) > 1000:  # the server records every request; keep its memory bounded
                srv.requests.clear()
            if roll < 0.04:
                return Reply(503, {"error": {"message": "overloaded", "code": 503}})
            if roll < 0.05:
                return Reply(429, {"error": {"message": "slow down", "code": 429}}, headers={"Retry-After": "0.05"})
            if roll < 0.07:
                return Reply(action="reset")
            if roll < 0.075:
                return Reply(200, srv.answer(rec.path, rec.body)[1], action="truncate")
            if roll < 0.076:
                return Reply(200, srv.answer(rec.path, rec.body)[1], delay=TIMEOUT_S + 1.0)  # past the deadline
            if roll < 0.10:
                status, answer = srv.answer(rec.path, rec.body)
                return Reply(status, answer, delay=slow)  # slow but right
            return None

        quiet_on_resets(srv)
        conn.send(srv.endpoint)
        while (command := conn.recv()) != "stop":  # "on" / "off": faults on or off
            srv.fault = fault if command == "on" else None
            conn.send(command)


# -- the workload -----------------------------------------------------------------------------------------
@dataclass
class Search:
    kind: str  # dense | text | hybrid
    queries: list[str]
    vectors: list[list[float]]
    limit: int
    offset: int
    ranker: Function


def make_searches(endpoint: str, n: int, seed: int) -> list[Search]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        queries = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
        vectors = [[rng.random() for _ in range(DIM)] for _ in queries]
        ranker = vllm_ranker_function(
            endpoint, queries, name=f"vllm_{i}", maxBatch=rng.choice([4, 8, 16, 32]), timeout=TIMEOUT_S, max_retries=2
        )
        out.append(
            Search(("dense", "text", "hybrid")[i % 3], queries, vectors, rng.randint(3, 25), rng.randint(0, 5), ranker)
        )
    return out


def call_of(search: Search) -> tuple[str, dict[str, Any]]:
    if search.kind == "hybrid":
        reqs = [
            AnnSearchRequest(search.vectors, "dense_vector", {}, search.limit + 5),
            AnnSearchRequest(search.queries, "sparse_vector", {}, search.limit + 5),
        ]
        return "hybrid_search", {
            "collection_name": "bench",
            "reqs": reqs,
            "ranker": search.ranker,
            "limit": search.limit,
            "offset": search.offset,
            "output_fields": ["document"],
        }
    dense = search.kind == "dense"
    return "search", {
        "collection_name": "bench",
        "data": search.vectors if dense else search.queries,
        "anns_field": "dense_vector" if dense else "sparse_vector",
        "limit": search.limit,
        "offset": search.offset,
        "output_fields": ["document"],
        "ranker": search.ranker,
    }


def normalise(result: Any) -> Normalised:
    return tuple(
        tuple((int(h["id"]), float(h["distance"]), str(h["entity"]["document"])) for h in hits) for hits in result
    )


def check_truth(search: Search, got: Normalised) -> None:
    from vllm_ranker.testing import overlap_score

    for query, hits in zip(search.queries, got, strict=True):
        for pk, distance, document in hits:
            if abs(distance - overlap_score(query, document)) > 1e-6:
                raise AssertionError(f"ground truth: pk {pk} scored {distance} for {query!r}")
        if [(-d, pk) for pk, d, _ in hits] != sorted((-d, pk) for pk, d, _ in hits):
            raise AssertionError(f"ground truth: hits out of order for {query!r}")


# -- accounting -----------------------------------------------------------------------------------------------
def rss_mb() -> float:
    try:
        import psutil  # type: ignore[import-untyped]

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: collections.Counter[str] = collections.Counter()  # by client/kind
        self.correct = 0
        self.errors: collections.Counter[str] = collections.Counter()  # clean RerankErrors, by kind
        self.wrong: list[str] = []  # answers that differ from the ground truth
        self.unclean: list[str] = []  # anything that is neither a right answer nor a RerankError

    def record(self, who: str, search: Search, truth: Normalised, outcome: Normalised | BaseException) -> None:
        with self.lock:
            self.done[f"{who} {search.kind}"] += 1
            if isinstance(outcome, RerankError):
                status = getattr(outcome, "status", None)
                kind = f"{type(outcome).__name__}/{getattr(outcome, 'kind', '?')}" + (f"/{status}" if status else "")
                self.errors[kind] += 1
                if not str(outcome).startswith("call service failed"):
                    self.unclean.append(f"{kind} with an unexpected message: {outcome}")
            elif isinstance(outcome, BaseException):
                self.unclean.append(f"{type(outcome).__name__}: {outcome}"[:500])
            elif outcome == truth:
                self.correct += 1
            else:
                self.wrong.append(f"{who} {search.kind} {search.queries}: {outcome[:1]} != {truth[:1]}"[:500])

    @property
    def total(self) -> int:
        return sum(self.done.values())


# -- the run --------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between RSS/fd samples")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing the sync client")
    parser.add_argument("--tasks", type=int, default=16, help="tasks sharing the async client")
    parser.add_argument("--searches", type=int, default=300, help="distinct searches in the mix")
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"soak: {args.minutes:g} min, {args.threads} threads (sync client) + {args.tasks} tasks (async client)")
    with milvus_lite_server() as uri, own_process(_flaky_service, args.seed, 0.005, 0.0002) as (endpoint, control):
        populate(uri, args.docs, words_per_doc=20)
        searches = make_searches(endpoint, args.searches, args.seed)
        sync_client = MilvusClient(uri=uri)
        truth = []
        for search in searches:
            method, kwargs = call_of(search)
            got = normalise(getattr(sync_client, method)(**kwargs))
            check_truth(search, got)
            truth.append(got)
        control.send("on")
        control.recv()
        print(f"ground truth: {len(truth)} searches checked against the service's scores; faults on")

        tally = Tally()
        stop = threading.Event()
        rng = random.Random(args.seed + 1)
        picks = [rng.randrange(len(searches)) for _ in range(1 << 16)]

        def sync_worker(t: int) -> None:
            i = t * 997
            while not stop.is_set():
                k = picks[i % len(picks)]
                i += 1
                method, kwargs = call_of(searches[k])
                try:
                    outcome: Any = normalise(getattr(sync_client, method)(**kwargs))
                except Exception as exc:
                    outcome = exc
                tally.record("sync", searches[k], truth[k], outcome)

        loop = asyncio.new_event_loop()
        async_client = AsyncMilvusClient(uri=uri)

        async def async_task(t: int) -> None:
            i = 7919 * (t + 1)
            while not stop.is_set():
                k = picks[i % len(picks)]
                i += 1
                method, kwargs = call_of(searches[k])
                try:
                    outcome: Any = normalise(await getattr(async_client, method)(**kwargs))
                except Exception as exc:
                    outcome = exc
                tally.record("async", searches[k], truth[k], outcome)

        async def async_load() -> None:
            await asyncio.gather(*(async_task(t) for t in range(args.tasks)))

        def churn() -> None:
            """A fresh client of each kind, opened, used once and closed, while the shared ones are busy."""
            k = picks[tally.total % len(picks)]
            method, kwargs = call_of(searches[k])
            fresh = MilvusClient(uri=uri)
            try:
                outcome: Any = normalise(getattr(fresh, method)(**kwargs))
            except Exception as exc:
                outcome = exc
            finally:
                fresh.close()
            tally.record("sync-fresh", searches[k], truth[k], outcome)

            async def fresh_async() -> Any:
                client = AsyncMilvusClient(uri=uri)
                try:
                    return normalise(await getattr(client, method)(**kwargs))
                except Exception as exc:
                    return exc
                finally:
                    await client.close()

            tally.record(
                "async-fresh", searches[k], truth[k], asyncio.run_coroutine_threadsafe(fresh_async(), loop).result()
            )

        gc.collect()
        samples = [(0.0, 0, rss_mb(), open_fds())]
        started = time.monotonic()
        async_thread = threading.Thread(target=lambda: loop.run_until_complete(async_load()), name="soak-async")
        workers = [threading.Thread(target=sync_worker, args=(t,), name=f"soak-sync-{t}") for t in range(args.threads)]
        async_thread.start()
        for worker in workers:
            worker.start()
        end = started + args.minutes * 60
        try:
            while (now := time.monotonic()) < end:
                time.sleep(min(args.sample_every, end - now))
                churn()
                elapsed = time.monotonic() - started
                samples.append((elapsed, tally.total, rss_mb(), open_fds()))
                s = samples[-1]
                print(
                    f"  {s[0]:6.0f} s  {s[1]:7d} searches  RSS {s[2]:7.1f} MB  fds {s[3]:4d}  "
                    f"errors {sum(tally.errors.values())}  wrong {len(tally.wrong)}  unclean {len(tally.unclean)}",
                    flush=True,
                )
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            async_thread.join()
            loop.run_until_complete(async_client.close())
            loop.close()
            sync_client.close()
        elapsed = time.monotonic() - started
        gc.collect()
        after_close = (rss_mb(), open_fds())

    first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
    print(f"\nsearches done: {tally.total} in {elapsed:.0f} s ({tally.total / elapsed:.1f}/s)")
    print("  by client and kind: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.done.items())))
    print(f"  correct answers: {tally.correct}")
    print(f"  clean errors: {sum(tally.errors.values())}")
    for kind, count in tally.errors.most_common():
        print(f"    {kind}: {count}")
    print(f"  wrong answers: {len(tally.wrong)}")
    for line in tally.wrong[:5]:
        print(f"    {line}")
    print(f"  unclean failures: {len(tally.unclean)}")
    for line in tally.unclean[:5]:
        print(f"    {line}")
    print(
        f"RSS: start {samples[0][2]:.1f} MB, first sample {first[2]:.1f} MB, end {last[2]:.1f} MB "
        f"(after closing the clients {after_close[0]:.1f} MB)"
    )
    print(f"fds: start {samples[0][3]}, first sample {first[3]}, end {last[3]} (after closing {after_close[1]})")
    ok = not tally.wrong and not tally.unclean and tally.correct > 0
    print("OK: every answer right or a clean error" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
