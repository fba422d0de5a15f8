"""Connections on which the front fuzz once failed (through a fault of the front's or of its test client's),
replayed on every run (hypothesis's example database is not in the repository, and CI starts without it)."""

from __future__ import annotations

from tests.gateway import h2_plan as h2c
from tests.gateway.test_front_fuzz import Fuzz, fuzz  # noqa: F401 - the module's fixture, reused


def test_a_tiny_client_window_with_empty_data_frames_and_a_compressed_search(fuzz: Fuzz) -> None:  # noqa: F811
    """Found 2026-12-07: with the client's initial window at 7 bytes, a DescribeCollection sent as four empty DATA
    frames beside a gzip search ran past the 8 s deadline. Not the front's fault: the backend and the gateway without
    its front took 11 s too. The 20 KB answer takes ~2,900 credit round trips, and the test client re-gzipped the
    26 KB search (4 ms) at each of them to count its steps (h2_client now builds them once): 0.5 s through the
    front."""
    plan = h2c.Plan(
        settings=h2c.Settings(initial_window=7),
        requests=(
            fuzz.request("describe"),
            fuzz.request("describe-long", chunks=(0, 0, 0, 0)),
            fuzz.request("search-rr-noisy", compress=True),
        ),
        steps=tuple(h2c.Advance(call=c) for c in (0, 2, 0, 1, 1, 1, 1, 1, 1, 2)),
        preface_settings=False,
    )
    fuzz.check(plan)


def test_a_larger_initial_window_counts_for_the_fronts_answers_once_the_sdk_has_the_ack(fuzz: Fuzz) -> None:  # noqa: F811
    """Found 2026-12-07 (flaky in the fuzz): the SDK raised SETTINGS_INITIAL_WINDOW_SIZE while an answer of the
    front's waited for its 7-byte stream window, and the front sent the rest at once, before the SDK had the
    SETTINGS ACK (the backend's, relayed): h2 holds the old window until then (RFC 9113 §6.5.3) and refused it."""
    plan = h2c.Plan(
        settings=h2c.Settings(initial_window=7),
        # The pause before the second call's headers lets the first call's answer come and wait for credit.
        requests=(fuzz.request("search-rr"), fuzz.request("show", pause=0.3)),
        steps=(
            h2c.Advance(0),
            h2c.Advance(0),
            h2c.Advance(1),
            h2c.Resettle(h2c.Settings(initial_window=1 << 20)),
        ),
    )
    fuzz.check(plan)


def test_a_released_searchs_trailers_in_continuation_frames_then_a_withheld_search(fuzz: Fuzz) -> None:  # noqa: F811
    """Found 2026-12-07: a passthrough search held and released whole, its trailers a HEADERS and a CONTINUATION,
    left the front believing that block still open towards the backend, so the next search's withheld headers
    waited behind it forever (the second search repeats the first's headers: all indexed, its block is withheld)."""
    plan = h2c.Plan(
        settings=h2c.Settings(),
        requests=(fuzz.request("search", trailers=True, split=(0,)), fuzz.request("search")),
    )
    fuzz.check(plan)
