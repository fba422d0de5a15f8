"""Where a reranked search's time goes in the gateway: the handler (the same code the Python client runs) against
the front's own steps, measured inside the gateway process, beside ``vllm_ranker.MilvusClient`` doing the same
search in this one.

The gateway runs in its own process, as deployed; its front's steps are wrapped with timers there:
reading and judging a request (``Splice.from_client``), handing it to a worker, the handler itself
(``local_call.serve``), handing the answer back to the event loop, and writing it (``Splice._answered_by_worker``).

    PYTHONPATH=src python benchmarks/gateway_breakdown.py [--docs 2000] [--repeats 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pymilvus
from common import loopback_service, own_process, query_vector
from gateway import ranker
from milvus_server import milvus_lite_server, populate

from vllm_ranker import MilvusClient

STEPS = ("read and judge", "to a worker", "handler", "back to the loop", "write the answer")


def _timed_gateway(conn: Any, backend: str) -> None:
    """The gateway with timers on the front's steps; answers each message with the seconds summed since the last."""
    from vllm_ranker.gateway import Gateway, local_call, splice

    totals = dict.fromkeys(STEPS, 0.0)
    marks: dict[str, float] = {}

    def add(step: str, since: float) -> float:
        now = time.perf_counter()
        totals[step] += now - since
        return now

    serve, dispatch, answer, from_client = (
        local_call.serve,
        splice.Splice._dispatch,
        splice.Splice._answered_by_worker,
        splice.Splice.from_client,
    )

    def timed_serve(*args: Any) -> Any:
        started = add("to a worker", marks.pop("submitted", time.perf_counter()))
        result = serve(*args)
        marks["served"] = add("handler", started)
        return result

    def timed_dispatch(self: Any, *args: Any) -> None:
        marks["submitted"] = time.perf_counter()
        dispatch(self, *args)

    def timed_answer(self: Any, *args: Any) -> None:
        started = add("back to the loop", marks.pop("served", time.perf_counter()))
        answer(self, *args)
        add("write the answer", started)

    def timed_from_client(self: Any, data: bytes) -> None:
        started = time.perf_counter()
        from_client(self, data)
        add("read and judge", started)

    splice.serve = timed_serve  # type: ignore[assignment]
    splice.Splice._dispatch = timed_dispatch  # type: ignore[method-assign]
    splice.Splice._answered_by_worker = timed_answer  # type: ignore[method-assign]
    splice.Splice.from_client = timed_from_client  # type: ignore[method-assign]
    with Gateway(backend, port=0) as gw:
        conn.send(gw.uri)
        while conn.recv() != "stop":
            conn.send(dict(totals))
            totals.update(dict.fromkeys(STEPS, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with (
        milvus_lite_server() as backend,
        loopback_service() as endpoint,
        own_process(_timed_gateway, backend) as (gateway_uri, conn),
    ):
        populate(backend, args.docs)
        via = pymilvus.MilvusClient(uri=gateway_uri)
        ours = MilvusClient(uri=backend)
        kwargs: dict[str, Any] = dict(
            data=[query_vector(1)],
            anns_field="dense_vector",
            limit=10,
            output_fields=["document"],
            ranker=ranker(endpoint, "vector search latency"),
        )
        print(f"{args.repeats} reranked searches per round, ms per search")
        print(f"{'round':<7}{'gateway':>9}{'client':>9}  " + "".join(f"{step:>18}" for step in STEPS))
        for round_ in range(1, args.rounds + 1):
            walls = {}
            for name, client in (("gateway", via), ("client", ours)):
                for _ in range(5):
                    client.search("bench", **kwargs)
                conn.send("reset")
                conn.recv()
                started = time.perf_counter()
                for _ in range(args.repeats):
                    client.search("bench", **kwargs)
                walls[name] = (time.perf_counter() - started) / args.repeats * 1000
                conn.send("read")
                steps = conn.recv()
                if name == "gateway":
                    spent = {step: steps[step] / args.repeats * 1000 for step in STEPS}
            print(
                f"{round_:<7}{walls['gateway']:>9.2f}{walls['client']:>9.2f}  "
                + "".join(f"{spent[step]:>18.2f}" for step in STEPS)
            )
        conn.send("stop")
        via.close()
        ours.close()
    print(
        "gateway: plain pymilvus through the gateway; client: vllm_ranker.MilvusClient in this process. The handler "
        "runs the client's own flow; the other steps are the front's (read and judge includes waiting for the GIL "
        "while the worker runs)."
    )


if __name__ == "__main__":
    main()
