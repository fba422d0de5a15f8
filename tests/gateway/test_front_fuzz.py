"""A differential fuzz test of the gateway's splicing front (front.py, splice.py): connections of every legal HTTP/2
shape (tests/gateway/h2_client.py) carry Milvus calls through the front, and each answer must equal the reference's,
while the connection never sees a GOAWAY or a protocol error.

The reference of a passthrough call is the backend itself; of a call the front answers (a model-ranker search) the
gateway without its front (``splice=False``: grpc's own HTTP/2 server before the same handler). A reference answer
depends on the call alone, not on how its frames were cut, so each is asked once, by grpc's own client.
benchmarks/front_fuzz.py runs the same property over many more cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory, text_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import milvus_pb2

from tests.conftest import DIM, rerank_function
from tests.gateway import h2_client as h2c
from tests.gateway.test_protocol import SERVICE, raw_call
from vllm_ranker.gateway import Gateway
from vllm_ranker.testing import RerankServer, hashed_embedding

# A filter of many ids: a request over the front's 16 KiB hold limit, yet under it once gzipped.
BIG_FILTER = "id in [" + ", ".join(str(i) for i in range(4000)) + "]"
# Ids that gzip cannot shrink much: a request over the hold limit even when compressed.
_NOISE = random.Random(23)
NOISY_FILTER = "id in [" + ", ".join(str(i) for i in [*range(16), *_NOISE.sample(range(10**9), 5000)]) + "]"
# A plan runs in well under a second; a connection still waiting after this long is stuck (and the case failed).
TIMEOUT_S = 8.0
_METHODS = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"].methods_by_name


@dataclass(frozen=True)
class Call:
    method: str
    message: bytes = field(repr=False)  # up to 50 KB: printed by hypothesis with the strategies that hold it
    # Answered by the gateway itself (a model-ranker search): the reference is then the gateway without its front.
    local: bool = False


def catalogue(endpoint: str) -> dict[str, Call]:
    """The calls a plan draws from, on the tests' ``docs`` collection, by label."""
    text = {"anns_field": "sparse_vector", "param": {}, "limit": 5, "data": ["AI research"]}
    fields = {"output_fields": ["document"]}
    ranker = {"ranker": rerank_function(endpoint, ["AI research"])}

    def search(collection: str = "docs", **kwargs: Any) -> bytes:
        request: Message = Prepare.search_requests_with_expr(collection, **{**text, **fields, **kwargs})
        return bytes(request.SerializeToString())

    def hybrid() -> bytes:
        subs = [
            Prepare.search_requests_with_expr("docs", **{**text, "anns_field": field})
            for field in ("sparse_vector", "dense_vector")
        ]
        ranked = Prepare.hybrid_search_request_with_ranker("docs", subs, ranker["ranker"], 5, **fields)
        return bytes(ranked.SerializeToString())

    def plain(name: str, request: Message) -> Call:
        return Call(SERVICE + name, request.SerializeToString(), False)

    return {
        "show": plain("ShowCollections", milvus_pb2.ShowCollectionsRequest()),
        "has": plain("HasCollection", milvus_pb2.HasCollectionRequest(collection_name="docs")),
        "describe": plain("DescribeCollection", milvus_pb2.DescribeCollectionRequest(collection_name="docs")),
        "describe-none": plain("DescribeCollection", milvus_pb2.DescribeCollectionRequest(collection_name="nope")),
        "query": plain("Query", Prepare.query_request("docs", "id < 6", ["document", "year"], [])),
        "search": Call(SERVICE + "Search", search(), False),
        "search-dense": Call(
            SERVICE + "Search", search(anns_field="dense_vector", data=[hashed_embedding("AI", DIM)]), False
        ),
        "search-big": Call(SERVICE + "Search", search(expr=BIG_FILTER), False),
        "search-rr": Call(SERVICE + "Search", search(**ranker), True),
        "search-rr-big": Call(SERVICE + "Search", search(expr=BIG_FILTER, **ranker), True),
        "search-rr-noisy": Call(SERVICE + "Search", search(expr=NOISY_FILTER, **ranker), True),
        "search-rr-none": Call(SERVICE + "Search", search("nope", **ranker), True),
        # An answer over 16 KiB: the reason Milvus gives echoes the filter.
        "search-rr-long-error": Call(SERVICE + "Search", search(expr="nonsense " + "y" * 6000, **ranker), True),
        "describe-long": plain("DescribeCollection", milvus_pb2.DescribeCollectionRequest(collection_name="x" * 20000)),
        "hybrid-rr": Call(SERVICE + "HybridSearch", hybrid(), True),
    }


Verdict = tuple[object, ...]


def verdict(method: str, code: int | None, details: str, messages: list[bytes]) -> Verdict:
    """What an answer is compared on: its gRPC status, and its message parsed (text format, for readable diffs)."""
    if code != 0 or len(messages) != 1:
        return code, details, len(messages)
    answer_type = message_factory.GetMessageClass(_METHODS[method.rpartition("/")[2]].output_type)
    answer = answer_type.FromString(messages[0])
    return code, details, text_format.MessageToString(answer, as_one_line=True)


class References:
    """Each call's reference answer, asked once by grpc's own client."""

    def __init__(self, calls: dict[str, Call], backend_uri: str, gateway_uri: str) -> None:
        self.calls, self.backend_uri, self.gateway_uri = calls, backend_uri, gateway_uri
        self._known: dict[str, Verdict] = {}

    def __call__(self, label: str) -> Verdict:
        if label not in self._known:
            call = self.calls[label]
            got = raw_call(self.gateway_uri if call.local else self.backend_uri, call.method, call.message)
            if isinstance(got, bytes):
                self._known[label] = verdict(call.method, 0, "", [got])
            else:
                assert isinstance(got, grpc.Call)
                self._known[label] = verdict(call.method, got.code().value[0], got.details() or "", [])
        return self._known[label]


def judge(outcome: h2c.Outcome, plan: h2c.Plan, references: Callable[[str], Verdict]) -> list[str]:
    """Every way the front's answers to ``plan`` differ from the references, and what broke the connection."""
    problems = list(outcome.problems)
    for i, request in enumerate(plan.requests):
        answer = outcome.answers.get(i)
        if i in outcome.cancelled or answer is None:
            continue
        # A server that has answered whole may reset the rest of the request with NO_ERROR (RFC 9113 §8.1): grpc's
        # server does when a request's END_STREAM (an empty DATA frame, trailers) comes after its message.
        if answer.reset is not None and not (answer.reset == 0 and answer.ended):
            got: Verdict = ("RST_STREAM", answer.reset)
        elif not answer.ended:
            got = ("no end",)
        else:
            got = verdict(request.method, *answer.status(), answer.messages())
        want = references(request.label)
        if got != want:
            problems.append(f"call {i} ({request.label}): got {got!r:.300}, want {want!r:.300}")
    return problems


# Plans

# What a plan may leave out (benchmarks/front_fuzz.py --leave-out): to look past a failure already known.
KNOBS = (
    "gzip",
    "trailers",
    "padding",
    "header-table",
    "small-windows",
    "cancel",
    "settings-change",
    "big-requests",
    "pause",
)
_BIG = {"search-big", "search-rr-big", "search-rr-noisy", "search-rr-long-error", "describe-long"}
_SIZES = st.one_of(st.integers(0, 64), st.sampled_from([1, 5, 6, 300, 16383, 16384, 16385, 40000]))
_PAD = st.one_of(st.none(), st.integers(0, 255))


def _knob(leave_out: frozenset[str], name: str, drawn: st.SearchStrategy[Any], default: Any) -> Any:
    return st.just(default) if name in leave_out else drawn


def _settings(leave_out: frozenset[str], least_window: int) -> st.SearchStrategy[h2c.Settings]:
    windows = [65535, 1024, 7, 100, 16384, 1 << 20, (1 << 31) - 1]
    least = 65535 if "small-windows" in leave_out else least_window
    return st.builds(
        h2c.Settings,
        max_frame_size=st.sampled_from([16384, 16385, 32768, 1 << 20, (1 << 24) - 1]),
        initial_window=st.sampled_from([w for w in windows if w >= least]),
        header_table_size=_knob(leave_out, "header-table", st.sampled_from([4096, 0, 64, 1 << 16]), 4096),
        encoder_table_size=_knob(leave_out, "header-table", st.sampled_from([4096, 0, 100]), 4096),
    )


@st.composite
def requests(draw: st.DrawFn, calls: dict[str, Call], leave_out: frozenset[str] = frozenset()) -> h2c.Request:
    label = draw(st.sampled_from(sorted(set(calls) - (_BIG if "big-requests" in leave_out else set()))))
    # Padding only where the backend never sees the frames: milvus-lite's server is grpc C-core, which resets a
    # stream on a PADDED DATA frame ("unsupported data flags") and reads a PADDED HEADERS frame's pad length as HPACK.
    pads = st.lists(_PAD, max_size=3) if calls[label].local else st.just([])
    return h2c.Request(
        label,
        calls[label].method,
        calls[label].message,
        compress=draw(_knob(leave_out, "gzip", st.booleans(), False)),
        chunks=tuple(draw(st.lists(_SIZES, max_size=4))),
        pads=tuple(draw(_knob(leave_out, "padding", pads, []))),
        empty_end=draw(st.booleans()),
        trailers=draw(_knob(leave_out, "trailers", st.booleans(), False)),
        split=tuple(draw(st.lists(st.integers(0, 80), max_size=4))),
        weight=draw(st.none() | st.integers(1, 256)),
        never_index=draw(st.booleans()),
        pause=draw(_knob(leave_out, "pause", st.sampled_from([0.0, 0.01]), 0.0)),
        timeout=draw(st.sampled_from([None, b"30S", b"29999m"])),
    )


def _extra(n: int, leave_out: frozenset[str], least_window: int) -> st.SearchStrategy[h2c.Step]:
    call = st.integers(0, n - 1)
    kinds: list[st.SearchStrategy[h2c.Step]] = [
        st.just(h2c.Wait()),
        st.builds(h2c.Prioritize, call, st.integers(1, 256), st.none() | call, st.booleans()),
        st.builds(h2c.Credit, st.none() | call, st.integers(1, 1 << 20)),
    ]
    if "cancel" not in leave_out:
        kinds.append(st.builds(h2c.Cancel, call))
    if "settings-change" not in leave_out:
        kinds.append(st.builds(h2c.Resettle, _settings(leave_out, least_window)))
    return st.one_of(kinds)


@st.composite
def plans(draw: st.DrawFn, calls: dict[str, Call], leave_out: frozenset[str] = frozenset()) -> h2c.Plan:
    """A connection: its settings, up to four calls whose steps interleave, and a few steps of other kinds."""
    chosen = draw(st.lists(requests(calls, leave_out), min_size=1, max_size=4))
    left = {i: 1 + len(request.actions()) for i, request in enumerate(chosen)}
    steps: list[h2c.Step] = []
    while left:
        active = sorted(left)
        call = active[draw(st.integers(0, len(active) - 1))]  # shrinks to the first call: calls one after another
        steps.append(h2c.Advance(call))
        left[call] -= 1
        if not left[call]:
            del left[call]
    credit = draw(st.sampled_from(h2c.CREDITS))
    # A client that credits only when the server falls silent (10 ms) takes a round of that per window: 7-byte
    # windows would make a 20 KB answer take seconds.
    least_window = 1024 if credit == "idle" else 0
    extras = st.tuples(st.integers(0, len(steps)), _extra(len(chosen), leave_out, least_window))
    for at, step in draw(st.lists(extras, max_size=3)):
        steps.insert(at, step)
    return h2c.Plan(
        settings=draw(_settings(leave_out, least_window)),
        requests=tuple(chosen),
        steps=tuple(steps),
        credit=credit,
        upfront=draw(st.sampled_from([0, 1 << 20])),
        preface_settings=draw(st.booleans()),
    )


def address(uri: str) -> tuple[str, int]:
    host, _, port = uri.removeprefix("http://").rpartition(":")
    return host, int(port)


# The tests


class Fuzz:
    """The calls plans draw from, and the property each plan must pass (a plain repr: hypothesis prints it)."""

    def __init__(self, calls: dict[str, Call], front_uri: str, references: References) -> None:
        self.calls, self.front_uri, self.references = calls, front_uri, references

    def request(self, label: str, **options: Any) -> h2c.Request:
        return h2c.Request(label, self.calls[label].method, self.calls[label].message, **options)

    def check(self, plan: h2c.Plan) -> None:
        problems = judge(h2c.run(address(self.front_uri), plan, TIMEOUT_S), plan, self.references)
        assert not problems, "\n".join([repr(plan), *problems])

    def __repr__(self) -> str:
        return "Fuzz()"


@pytest.fixture(scope="module")
def fuzz(gateway: Gateway, gw_backend: str, server: RerankServer, plain: Any) -> Iterator[Fuzz]:
    calls = catalogue(server.endpoint)
    with Gateway(gw_backend, port=0, splice=False) as reference:
        yield Fuzz(calls, gateway.uri, References(calls, gw_backend, reference.uri))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_front_answers_every_legal_connection_as_the_references_do(data: st.DataObject, fuzz: Fuzz) -> None:
    fuzz.check(data.draw(plans(fuzz.calls), label="plan"))


# One knob at a time, so that a regression reads plainly.

_ONE = h2c.Settings()
_KNOBS: dict[str, tuple[h2c.Settings, dict[str, Any]]] = {
    "plain": (_ONE, {}),
    "small-data-frames": (_ONE, {"chunks": (1, 5, 6, 7)}),
    "empty-data-frames": (_ONE, {"chunks": (0, 0, 3, 0)}),
    "padded-data": (_ONE, {"pads": (0, 255, None)}),
    "padded-empty-data": (_ONE, {"chunks": (0, 0), "pads": (0,)}),
    "empty-end": (_ONE, {"empty_end": True}),
    "request-trailers": (_ONE, {"trailers": True}),
    "continuations": (_ONE, {"split": (1, 2, 3)}),
    "continuations-read-apart": (_ONE, {"split": (1, 2, 3), "pause": 0.05}),
    "priority-headers": (_ONE, {"weight": 200}),
    "padded-headers": (_ONE, {"header_pad": 200, "weight": 1, "never_index": True}),
    "never-indexed": (_ONE, {"never_index": True}),
    "gzip": (_ONE, {"compress": True}),
    "gzip-cut": (_ONE, {"compress": True, "chunks": (8000, 8000, 8000)}),  # a big one outgrows the hold limit
    "deadline": (_ONE, {"timeout": b"30S"}),
    "window-7": (replace(_ONE, initial_window=7), {}),
    "large-frames": (replace(_ONE, max_frame_size=(1 << 24) - 1), {}),
    "no-header-table": (replace(_ONE, header_table_size=0, encoder_table_size=0), {}),
}
# Frames the C-core backend cannot take (see requests()): only for calls the front answers, whose headers it
# withholds from the backend (a search's block that changed no HPACK table) and whose data it never forwards.
_FRONT_ONLY = {"padded-data", "padded-empty-data", "padded-headers"}
_PASSTHROUGH = ["show", "search", "search-big", "describe-long"]
_ANSWERED = ["search-rr", "search-rr-big", "search-rr-noisy", "hybrid-rr", "search-rr-none", "search-rr-long-error"]


@pytest.mark.parametrize(
    ("knob", "label"),
    [(k, x) for k in sorted(_KNOBS) for x in _ANSWERED + ([] if k in _FRONT_ONLY else _PASSTHROUGH)],
)
def test_one_knob(knob: str, label: str, fuzz: Fuzz) -> None:
    settings_, options = _KNOBS[knob]
    assert fuzz.calls[label].local == (label in _ANSWERED)
    fuzz.check(h2c.Plan(settings_, (fuzz.request(label, **options),)))


def test_a_credit_then_a_header_block_read_in_two_parts(fuzz: Fuzz) -> None:
    """The SDK's connection credit comes alone (the front keeps it back), then a HEADERS frame whose CONTINUATION
    is read later: nothing may come between them on the way to the backend."""
    chosen = tuple(fuzz.request(x, split=(1,), pause=0.1) for x in ["show"] * 2)  # long enough on a busy machine
    steps = (h2c.Advance(0), h2c.Advance(0), h2c.Wait(), h2c.Credit(None, 1000), h2c.Advance(1), h2c.Advance(1))
    # h2's own policy gives no credit for so small an answer: the Credit step's is the only WINDOW_UPDATE.
    fuzz.check(h2c.Plan(_ONE, chosen, steps, credit="h2"))


@pytest.mark.parametrize("credit", h2c.CREDITS)
def test_interleaved_calls_with_small_windows(credit: str, fuzz: Fuzz) -> None:
    """Three calls open at once, their DATA frames interleaved, on 100-byte stream windows."""
    labels = ["search-rr", "describe", "hybrid-rr"]
    chosen = tuple(fuzz.request(x, chunks=(50, 50, 50)) for x in labels)
    steps = [h2c.Advance(i) for _ in range(5) for i in range(3)]
    fuzz.check(h2c.Plan(replace(_ONE, initial_window=100), chosen, tuple(steps), credit=credit))


def test_a_cancelled_call_leaves_the_others_answered(fuzz: Fuzz) -> None:
    chosen = tuple(fuzz.request(x) for x in ["search-rr", "search-rr", "show"])
    steps = (h2c.Advance(0), h2c.Advance(1), h2c.Cancel(0), h2c.Advance(1), h2c.Advance(2))
    fuzz.check(h2c.Plan(_ONE, chosen, steps))


def test_settings_changed_mid_connection(fuzz: Fuzz) -> None:
    chosen = tuple(fuzz.request(x) for x in ["search-rr", "show", "search-rr"])
    changed = h2c.Settings(max_frame_size=1 << 20, initial_window=1024, header_table_size=0, encoder_table_size=0)
    steps = (h2c.Advance(0), h2c.Resettle(changed), h2c.Advance(0), h2c.Advance(1), h2c.Advance(1), h2c.Advance(2))
    fuzz.check(h2c.Plan(_ONE, chosen, steps, preface_settings=False))


def test_priority_frames_and_extra_credit(fuzz: Fuzz) -> None:
    chosen = tuple(fuzz.request(x) for x in ["search-rr", "query"])
    steps = (
        h2c.Advance(0),
        h2c.Prioritize(0, 100, None, True),
        h2c.Advance(1),
        h2c.Prioritize(1, 1, 0, False),
        h2c.Credit(0, 5000),
        h2c.Credit(None, 1 << 20),
    )
    fuzz.check(h2c.Plan(_ONE, chosen, steps))
