"""The splicing front's differential fuzz property (tests/gateway/test_front_fuzz.py) over many more cases, by hand:

    python benchmarks/front_fuzz.py --cases 2000 [--seed 1] [--shrink]

It starts its own milvus-lite server, loopback rerank service, gateway (with its front) and reference gateway
(``splice=False``), runs ``--cases`` connection plans, and prints the cases run, the failures and the time. Failures
are grouped by what went wrong (the problem with its numbers blanked), each group with its shortest plan; ``--shrink``
then asks hypothesis for the smallest plan that fails the same way, group by group.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pymilvus
from hypothesis import HealthCheck, Phase, find, given, seed, settings

# The property and its plans live with the test; this script runs from anywhere, so the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import CORPUS, DIM, create_docs_collection
from tests.gateway import h2_client as h2c
from tests.gateway.test_front_fuzz import KNOBS, References, address, catalogue, judge, plans
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer, milvus_lite_server


def kind(problem: str) -> str:
    """A problem without what varies between cases that fail the same way (numbers, long answers)."""
    problem = re.sub(r"want .*", "", problem)
    problem = re.sub(r"^call \d+ ", "", problem)
    return re.sub(r"\d{2,}", "N", problem)[:160]  # one digit: a status or RST_STREAM code, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shrink", action="store_true", help="find the smallest plan of each kind of failure")
    parser.add_argument("--leave-out", nargs="*", default=[], choices=KNOBS, help="knobs whose failures are known")
    # Shorter than the test's: a case that passes takes well under a second, and each stuck one costs this much.
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds a connection may take")
    args = parser.parse_args()
    # Stopped by a signal (or Ctrl-C), the cases run so far are reported and the servers started below stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(milvus_lite_server(Path(stack.enter_context(tempfile.TemporaryDirectory()))))
        service = stack.enter_context(RerankServer(embedding_dim=DIM))
        front = stack.enter_context(Gateway(backend, port=0, grace=2.0))
        reference = stack.enter_context(Gateway(backend, port=0, splice=False))
        client = pymilvus.MilvusClient(uri=front.uri)
        create_docs_collection(client, "docs", service.endpoint, CORPUS)
        client.load_collection("docs")
        client.close()
        calls = catalogue(service.endpoint)
        leave_out = frozenset(args.leave_out)
        references = References(calls, backend, reference.uri)

        def problems(plan: h2c.Plan) -> list[str]:
            return judge(h2c.run(address(front.uri), plan, args.timeout), plan, references)

        def smallest(found: str) -> h2c.Plan:
            def fails(plan: h2c.Plan) -> bool:
                return found in {kind(p) for p in problems(plan)}

            # A plan hypothesis shrank until no smaller one failed the same way.
            shrinking = settings(max_examples=2000, deadline=None, database=None)
            return find(plans(calls, leave_out), fails, settings=shrinking)

        failures: Counter[str] = Counter()
        shortest: dict[str, h2c.Plan] = {}
        ran = 0

        @seed(args.seed)
        @settings(
            max_examples=args.cases,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(plan=plans(calls, leave_out))
        def case(plan: h2c.Plan) -> None:  # records rather than raises: hypothesis would stop at the first
            nonlocal ran
            ran += 1
            for found in {kind(p) for p in problems(plan)}:
                failures[found] += 1
                if found not in shortest or len(repr(plan)) < len(repr(shortest[found])):
                    shortest[found] = plan

        started = time.perf_counter()
        try:
            case()
        except KeyboardInterrupt:
            print("interrupted")
        elapsed = time.perf_counter() - started
        failed = sum(failures.values())
        print(f"{ran} cases in {elapsed:.1f} s ({elapsed / max(ran, 1) * 1000:.0f} ms a case), {failed} failures")
        for found, count in failures.most_common():
            print(f"\n{count} x {found}\n  shortest plan: {shortest[found]!r}")
            if args.shrink:
                try:
                    print(f"  smallest plan: {smallest(found)!r}")
                except Exception as exc:  # NoSuchExample, or a flaky one: the failure depends on timing
                    print(f"  smallest plan: none found ({type(exc).__name__}: the failure may depend on timing)")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
