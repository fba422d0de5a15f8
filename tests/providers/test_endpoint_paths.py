"""One endpoint-path rule for every provider (providers/base.py), and hints that name the provider at hand.

The rule: an endpoint whose path ends in ``rerank`` or in the last segment of the provider's own route is the
full request URL, POSTed to as given; any other endpoint is a base URL and gets the route appended, less the
leading part of the route that its path already ends with. Expected URLs come from ``case.path`` (the request
path for a bare address, written from each service's API reference), not from the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.providers.cases import CASES, Case
from tests.providers.test_contract import collection_info, dense_search, ranker
from vllm_ranker import MilvusClient, RerankServiceError
from vllm_ranker.core.spec import parse_ranker
from vllm_ranker.providers import PROVIDERS
from vllm_ranker.testing import Reply, RerankServer
from vllm_ranker.testing import wire_formats as wf
from vllm_ranker.transport.exchange import status_hint

ALL = [pytest.param(case, id=case.provider) for case in CASES]
GW = "https://gw.example"


def url_for(case: Case, endpoint: str) -> str:
    spec = parse_ranker(ranker(case, None, endpoint=endpoint), collection_info(), env={})
    return spec.targets[0].url


def segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


@pytest.mark.parametrize("case", ALL)
def test_a_bare_host_gets_the_providers_route(case: Case) -> None:
    assert url_for(case, GW) == GW + case.path
    assert url_for(case, GW + "/") == GW + case.path


@pytest.mark.parametrize("case", ALL)
@pytest.mark.parametrize("path", ["/v9/rerank", "/team/RERANK/", "/rerank"])
def test_a_path_ending_in_rerank_is_used_as_given_by_every_provider(case: Case, path: str) -> None:
    # Before: ali appended its DashScope route (.../v9/rerank/api/v1/services/rerank/text-rerank/text-rerank)
    # and huggingface its pipeline route, where the other providers POSTed to the endpoint as given.
    assert url_for(case, GW + path) == GW + path.rstrip("/")


@pytest.mark.parametrize("case", ALL)
def test_a_path_ending_in_the_routes_own_last_segment_is_used_as_given(case: Case) -> None:
    last = segments(case.path)[-1]
    assert url_for(case, f"{GW}/custom/{last}") == f"{GW}/custom/{last}"


@pytest.mark.parametrize("case", ALL)
def test_a_gateway_prefix_gets_the_whole_route(case: Case) -> None:
    assert url_for(case, GW + "/team-a/svc") == GW + "/team-a/svc" + case.path


@pytest.mark.parametrize("case", ALL)
def test_a_leading_part_of_the_route_is_not_repeated(case: Case) -> None:
    route = segments(case.path)
    for k in range(1, len(route) - 1):  # every proper leading part of the route (none for /rerank)
        head = "/" + "/".join(route[:k])
        if route[k - 1].lower() == "rerank":  # ali's /api/v1/services/rerank: a path ending in rerank is as given
            continue
        assert url_for(case, GW + "/prefix" + head) == GW + "/prefix" + case.path, head


@pytest.mark.parametrize("case", ALL)
def test_a_query_string_is_kept_and_a_fragment_dropped(case: Case) -> None:
    assert url_for(case, GW + "/team?tenant=a#frag") == GW + "/team" + case.path + "?tenant=a"


# -- hints --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ALL)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 503])
def test_every_hint_names_only_the_provider_at_hand(case: Case, status: int) -> None:
    provider = PROVIDERS[case.provider]
    hint = status_hint(provider, status)
    assert provider.label in hint
    for name, other in PROVIDERS.items():
        label = other.label
        if name != case.provider and label not in provider.label:
            assert label not in hint, (status, hint)


@pytest.mark.parametrize("case", ALL)
def test_a_404_hint_says_where_this_provider_answers(case: Case) -> None:
    provider = PROVIDERS[case.provider]
    hint = status_hint(provider, 404)
    assert "params['endpoint']" in hint
    route = case.path.replace(case.model or "", "<model_name>") if case.provider == "huggingface" else case.path
    assert route in hint
    assert ("vLLM serves /rerank, /v1/rerank, /v2/rerank" in hint) == (case.provider == "vllm")
    assert ("params['model_name']" in hint) == (case.provider != "tei")  # TEI's request carries no model


@pytest.mark.parametrize("case", ALL)
def test_a_401_hint_names_this_providers_key_variables(case: Case) -> None:
    hint = status_hint(PROVIDERS[case.provider], 401)
    assert "params['credential']" in hint
    for name in case.key_env:
        assert name in hint


def test_a_5xx_hint_says_see_its_log_only_for_a_service_the_user_runs() -> None:
    assert status_hint(PROVIDERS["vllm"], 500) == "vLLM failed; see its log"
    assert status_hint(PROVIDERS["tei"], 502) == "TEI failed; see its log"
    assert status_hint(PROVIDERS["cohere"], 503) == "Cohere failed; try again later"


@pytest.mark.parametrize("case", ALL)
def test_a_404_from_the_service_carries_its_own_hint(
    case: Case, lite: MilvusClient, servers: dict[str, RerankServer]
) -> None:
    srv = servers[case.provider]
    raw, shown = wf.error_answer(case.provider, 404, f"no route ({case.provider})")

    def not_found(_recorded: Any) -> Reply:
        return Reply(status=404, raw=raw)

    srv.fault = not_found
    with pytest.raises(RerankServiceError) as caught:
        dense_search(lite, ranker(case, srv, max_retries=0))
    text = str(caught.value)
    assert f"HTTP 404: {shown}" in text
    assert text.endswith(" — " + status_hint(PROVIDERS[case.provider], 404))
    assert ("vLLM serves" in text) == (case.provider == "vllm")
