"""The gateway's start-up rules beyond loopback (gateway/exposure.py, issue 26), and how the flags' endpoint policy
joins the config file's: pure functions, every combination that matters."""

from __future__ import annotations

import pytest

from vllm_ranker.core.endpoint_policy import ANY, EndpointPolicy
from vllm_ranker.gateway.exposure import Exposure, combined_policy, startup_problem, startup_warnings
from vllm_ranker.local_servers import is_loopback

POLICY = EndpointPolicy.parse(["http://vllm:8000"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_keeps_todays_behaviour(host: str) -> None:
    # Any endpoint, clear text, a --token lent: one user, one machine.
    assert is_loopback(host)
    assert startup_problem(Exposure(host, token=True), ANY) is None
    assert startup_warnings(Exposure(host, token=True)) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "gateway.example"])
def test_beyond_loopback_each_rule_names_its_flags(host: str) -> None:
    assert not is_loopback(host)
    everything = startup_problem(Exposure(host, token=True), ANY)
    assert everything is not None and "\n" not in everything
    for flag in ("--allow-endpoint", "--allow-any-endpoint", "--token-for-anonymous-callers", "--insecure"):
        assert flag in everything  # every rule broken is named at once
    assert startup_problem(Exposure(host, insecure=True), POLICY) is None
    assert startup_problem(Exposure(host, tls=True), POLICY) is None
    assert startup_problem(Exposure(host, insecure=True, allow_any_endpoint=True), ANY) is None
    no_policy = startup_problem(Exposure(host, tls=True), ANY)
    assert no_policy is not None and "--allow-endpoint URL" in no_policy and "clear text" not in no_policy
    clear = startup_problem(Exposure(host), POLICY)
    assert clear is not None and clear.endswith(
        "or --insecure when TLS ends in front of the gateway or the network is trusted"
    )


def test_a_token_beyond_loopback_needs_tls_and_the_flag_saying_so() -> None:
    host = "0.0.0.0"
    for exposure in (
        Exposure(host, token=True, insecure=True),  # clear text: the token's principal to anyone listening
        Exposure(host, token=True, insecure=True, token_for_anonymous_callers=True),
        Exposure(host, token=True, tls=True),  # TLS, but nobody said callers may borrow it
    ):
        problem = startup_problem(exposure, POLICY)
        assert problem is not None and "--token-for-anonymous-callers" in problem
    lent = Exposure(host, token=True, tls=True, token_for_anonymous_callers=True)
    assert startup_problem(lent, POLICY) is None
    assert any("acts as the --token's principal" in w for w in startup_warnings(lent))


def test_any_endpoint_is_loud_and_excludes_an_allowlist() -> None:
    assert any(
        "every endpoint a caller names" in w for w in startup_warnings(Exposure("127.0.0.1", allow_any_endpoint=True))
    )
    contradiction = startup_problem(Exposure("127.0.0.1", allow_any_endpoint=True), POLICY)
    assert contradiction is not None and contradiction.startswith("--allow-any-endpoint contradicts")


def test_the_flags_add_to_the_file() -> None:
    file_policy = EndpointPolicy.parse(["http://tei:80"], source="vllm_ranker.allowed_endpoints")
    flags = EndpointPolicy.parse(["http://vllm:8000", "10.1.0.0/16"], ["10.9.0.0/16"])
    both = combined_policy(file_policy, flags)
    assert (
        both.allows("http://tei/rerank")
        and both.allows("http://vllm:8000/v1/rerank")
        and both.allows("http://10.1.2.3")
    )
    assert not both.allows("http://other:8000")
    assert both.source == "--allow-endpoint"  # a refusal names the flag (either place would do)
    assert str(both.deny[0]) == "10.9.0.0/16"
    assert combined_policy(file_policy, None) is file_policy
    assert combined_policy(ANY, None) is ANY
    assert combined_policy(ANY, flags) is flags
    with pytest.raises(ValueError, match="--deny-address narrows an allowlist"):
        combined_policy(ANY, EndpointPolicy.parse([], ["10.0.0.0/8"]))
    # Denied networks narrowing the file's allowlist are fine.
    assert combined_policy(file_policy, EndpointPolicy.parse([], ["10.0.0.0/8"])).allows("http://tei:80")
