"""The gateway's cost, side by side in one run (issue 16's targets):

1. passthrough search p50 through the gateway vs straight to the backend (target ratio <= 1.15);
2. a reranked search (plain pymilvus through the gateway) vs the same search with ``vllm_ranker.MilvusClient``
   (target ratio <= 1.10);
3. 64-way throughput: 64 threads searching through the gateway vs 64 threads sharing ``vllm_ranker.MilvusClient``.

Item 2 runs twice. Once against the loopback rerank service, which scores by word overlap in microseconds, so the
ratio is the gateway's own cost against a search with almost nothing to rerank (the hardest case). Once against a
real vLLM (all-MiniLM-L6-v2, the one model with weights on this machine, served on CPU; the project's vLLM venv, see
README), started after everything else is measured, on a core of its own: a reranked search as deployed, where a
model on its own hardware scores the hits.
The target is judged on the real model; without the vLLM venv that row is skipped and says how to install it.

A bare relay (a dozen lines of grpcio forwarding bytes, nothing else) runs beside the gateway as the floor of any
Python gRPC hop on this machine: the gateway is compared with it too, so a miss says whether our code or the hop
itself costs the time. A byte splice (asyncio copying TCP bytes both ways, no HTTP/2 parsed) runs too: what the
extra socket hop alone costs, so the rest of the relay's cost is terminating gRPC in Python (docs/gateway.md).
The gateway's own port is a splicing front (src/vllm_ranker/gateway/front.py) unless TLS or --token turn it off;
its measuring prototype (splice_front.py, the passthrough path only) runs beside it as a further floor.

Milvus (``milvus-lite server``), the rerank service and the gateway each run in their own process, as deployed.

    PYTHONPATH=src python benchmarks/gateway.py [--docs 2000] [--repeats 60] [--per-thread 5] [--no-vllm]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pymilvus
from common import DIM, interleaved_medians, loopback_service, own_process, query_vector, serve_tcp_hop
from milvus_server import milvus_lite_server, populate
from splice_front import serve as serve_splice_front

from vllm_ranker import Function, FunctionType, MilvusClient
from vllm_ranker.gateway.backend import MESSAGE_OPTIONS
from vllm_ranker.gateway.server import SERVER_KEEPALIVE


def _gateway(conn: Any, backend: str) -> None:
    from vllm_ranker.gateway import Gateway

    with Gateway(backend, port=0) as gw:
        conn.send(gw.uri)
        conn.recv()  # until the parent says stop


def _bare_relay(conn: Any, backend: str) -> None:
    """The cheapest gRPC hop grpcio allows: every unary call forwarded as bytes with its metadata."""
    channel = grpc.insecure_channel(backend.removeprefix("http://"), options=MESSAGE_OPTIONS)

    class Relay(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            forward = channel.unary_unary(details.method)

            def unary(payload: bytes, context: grpc.ServicerContext) -> bytes:
                metadata = [(k, v) for k, v in context.invocation_metadata() if not k.startswith("grpc-")]
                answer: bytes = forward(payload, metadata=metadata)
                return answer

            return grpc.unary_unary_rpc_method_handler(unary)

    server = grpc.server(ThreadPoolExecutor(64), options=MESSAGE_OPTIONS + SERVER_KEEPALIVE)
    server.add_generic_rpc_handlers((Relay(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send(f"http://127.0.0.1:{port}")
    conn.recv()  # until the parent says stop
    server.stop(0)


def _byte_splice(conn: Any, backend: str) -> None:
    """An extra TCP hop and nothing else: bytes copied both ways, HTTP/2 not parsed (no route could be chosen)."""
    serve_tcp_hop(conn, backend)


@contextlib.contextmanager
def real_vllm() -> Iterator[str | None]:
    """A real vLLM serving all-MiniLM-L6-v2 on a free loopback port (its endpoint), or None (said why) without
    the project's vLLM venv."""
    from vllm_ranker.local_vllm import ManagedVLLM, VLLMUnavailable, probe_vllm

    try:
        install = probe_vllm()
    except VLLMUnavailable as exc:
        print(f"(the real-vLLM row is skipped: {exc})")
        yield None
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        # Deployed, the model runs on hardware of its own. Here it gets one core of its own: its OpenMP threads
        # spin on the cores they are bound to, which would otherwise be taken from the gateway, Milvus and the
        # client (the other cores), and that is the machine's contention, not a cost of the gateway.
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(cpus[-1])
        print(f"(the real vLLM runs on CPU {cpus[-1]} alone; set VLLM_CPU_OMP_THREADS_BIND to choose)")
    with tempfile.TemporaryDirectory(prefix="vllm-ranker-bench-") as tmp:
        server = ManagedVLLM(None, port=0, venv=install.venv, log_file=Path(tmp) / "vllm.log")
        server.start(timeout=600)
        try:
            yield server.endpoint
        finally:
            server.stop()


def ranker(endpoint: str, query: str) -> Function:
    return Function(
        name="vllm",
        input_field_names=["document"],
        function_type=FunctionType.RERANK,
        params={"reranker": "model", "provider": "vllm", "endpoint": endpoint, "queries": [query]},
    )


def throughput(search: Callable[[int], object], threads: int, per_thread: int) -> float:
    """Searches per second with ``threads`` callers doing ``per_thread`` searches each."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(search, range(threads)))  # warm-up: connections, pools
        started = time.perf_counter()
        list(pool.map(lambda i: [search(i) for _ in range(per_thread)], range(threads)))
    return threads * per_thread / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--per-thread", type=int, default=5)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--no-vllm", action="store_true", help="skip the reranked search with a real vLLM")
    args = parser.parse_args()

    with (
        milvus_lite_server() as backend,
        loopback_service() as endpoint,
        own_process(_gateway, backend) as (gw, _),
        own_process(_bare_relay, backend) as (relay_uri, _),
        own_process(_byte_splice, backend) as (splice_uri, _),
        own_process(serve_splice_front, backend) as (front_uri, front_conn),
    ):
        contenders = {"splicing front": pymilvus.MilvusClient(uri=front_uri)}
        populate(backend, args.docs)
        direct = pymilvus.MilvusClient(uri=backend)
        via = pymilvus.MilvusClient(uri=gw)
        contenders |= {"bare relay": pymilvus.MilvusClient(uri=relay_uri)}
        contenders |= {"byte splice": pymilvus.MilvusClient(uri=splice_uri)}
        ours = MilvusClient(uri=backend)
        vector = query_vector(1)
        fn = ranker(endpoint, "vector search latency")
        plain_kwargs: dict[str, Any] = dict(data=[vector], anns_field="dense_vector", limit=10)
        rerank_kwargs: dict[str, Any] = dict(plain_kwargs, output_fields=["document"], ranker=fn)
        assert [h["id"] for h in via.search("bench", **rerank_kwargs)[0]] == [
            h["id"] for h in ours.search("bench", **rerank_kwargs)[0]
        ], "the gateway and the client disagree"

        medians = interleaved_medians(
            {
                "direct": lambda: direct.search("bench", **plain_kwargs),
                "gateway": lambda: via.search("bench", **plain_kwargs),
                **{name: functools.partial(c.search, "bench", **plain_kwargs) for name, c in contenders.items()},
                "client rerank": lambda: ours.search("bench", **rerank_kwargs),
                "gateway rerank": lambda: via.search("bench", **rerank_kwargs),
            },
            args.repeats,
        )
        clients = [pymilvus.MilvusClient(uri=gw) for _ in range(4)]
        through_gw = throughput(
            lambda i: clients[i % 4].search("bench", **rerank_kwargs), args.threads, args.per_thread
        )
        through_client = throughput(lambda i: ours.search("bench", **rerank_kwargs), args.threads, args.per_thread)
        with contextlib.nullcontext(None) if args.no_vllm else real_vllm() as vllm_endpoint:
            if vllm_endpoint is not None:  # measured last, so that vLLM's threads cannot disturb the rows above
                model_kwargs = dict(rerank_kwargs, ranker=ranker(vllm_endpoint, "vector search latency"))
                # bfloat16 on CPU may swap near-ties between two calls: compare the hits, not their order
                assert {h["id"] for h in via.search("bench", **model_kwargs)[0]} == {
                    h["id"] for h in ours.search("bench", **model_kwargs)[0]
                }, "the gateway and the client disagree (real vLLM)"
                medians |= interleaved_medians(
                    {
                        "client vllm": lambda: ours.search("bench", **model_kwargs),
                        "gateway vllm": lambda: via.search("bench", **model_kwargs),
                    },
                    args.repeats,
                )
        for client in (direct, via, ours, *clients, *contenders.values()):
            client.close()
        front_conn.send("tally")
        tally = front_conn.recv()
        assert tally["searches parsed"] >= args.repeats, f"the splicing front did not route the searches: {tally}"

    ms = {name: value * 1000 for name, value in medians.items()}
    print(f"collection: {args.docs} docs, dim {DIM}, limit 10, {args.repeats} interleaved repeats (p50)")
    print(f"{'measure':<38}{'gateway':>12}{'reference':>12}{'ratio':>8}{'target':>9}")
    rows = [
        ("passthrough search p50 (ms)", ms["gateway"], ms["direct"], "<= 1.15"),
        ("reranked, loopback scorer p50 (ms)", ms["gateway rerank"], ms["client rerank"], "-"),
        (f"{args.threads}-way reranked throughput (/s)", through_gw, through_client, "-"),
    ]
    if "gateway vllm" in ms:
        rows.append(("reranked, real vLLM p50 (ms)", ms["gateway vllm"], ms["client vllm"], "<= 1.10"))
    for name, mine, ref, target in rows:
        print(f"{name:<38}{mine:>12.2f}{ref:>12.2f}{mine / ref:>8.2f}{target:>9}")
    print("reference: straight to the backend (passthrough), vllm_ranker.MilvusClient (reranked, throughput)")
    print(
        f"the gateway adds {ms['gateway rerank'] - ms['client rerank']:.2f} ms to a reranked search (loopback "
        "scorer: the SDK's own gRPC call, one more hop and the front; the model's time is not in it)"
        + (
            f", {ms['gateway vllm'] - ms['client vllm']:.2f} ms with the real vLLM (all-MiniLM-L6-v2 on CPU)"
            if "gateway vllm" in ms
            else ""
        )
    )
    hop = ms["bare relay"] - ms["direct"]
    print(
        f"floor: a bare grpcio relay costs {hop:.2f} ms per call here (passthrough ratio "
        f"{ms['bare relay'] / ms['direct']:.2f}); the gateway vs that relay: passthrough "
        f"{ms['gateway'] / ms['bare relay']:.2f}, reranked {ms['gateway rerank'] / (ms['client rerank'] + hop):.2f} "
        "(vs the client plus one bare hop)"
    )
    spliced = ms["byte splice"] - ms["direct"]
    print(
        f"a byte splice (TCP copied, HTTP/2 not parsed) costs {spliced:.2f} ms per call (passthrough ratio "
        f"{ms['byte splice'] / ms['direct']:.2f}): the rest of the relay's {hop:.2f} ms is terminating gRPC in Python"
    )
    print(
        f"the splicing front's prototype (benchmarks/splice_front.py: frames cut, request headers decoded, "
        f"searches held and parsed) costs {ms['splicing front'] - ms['direct']:.2f} ms per call (passthrough "
        f"ratio {ms['splicing front'] / ms['direct']:.2f}); it saw {tally['calls']} calls, held and parsed "
        f"{tally['searches parsed']} searches, saw {tally['calls ended']} ended by the backend"
    )


if __name__ == "__main__":
    main()
