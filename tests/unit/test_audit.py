"""The gateway's audit line (gateway/audit.py): the user name of a token and nothing more of it, endpoints as
host:port only, and fields a caller cannot forge."""

from __future__ import annotations

import base64

from vllm_ranker.gateway.audit import Audit, host_port, token_user


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_only_the_user_name_of_a_token_shows() -> None:
    assert token_user(b64("alice:s3cret:with:colons")) == "alice"
    assert token_user(b64("sk-0123456789abcdef")) == "-"  # an API key: nothing of it
    assert token_user(b64("x y:pw")) == "-"  # not a user name: the password's neighbourhood is not guessed at
    assert token_user("not base64!") == "-" and token_user(None) == "-" and token_user("") == "-"


def test_endpoints_are_host_and_port_only() -> None:
    assert host_port("http://bob:pw@vllm:8000/v1/rerank?key=abc") == "vllm:8000"
    assert host_port("https://API.cohere.com/v2") == "api.cohere.com:443"
    assert host_port("http://[::1]:9/x") == "[::1]:9"
    assert host_port("no url") == "?"


def test_a_crafted_collection_name_cannot_forge_a_field_or_a_line() -> None:
    audit = Audit("Search", collection="docs outcome=ok\nrerank user=root", provider="vllm")
    line = audit.line()
    assert "\n" not in line and ' collection="docs outcome=ok\\nrerank user=root" ' in line
    assert line.rsplit('"', 1)[1].count(" outcome=") == 1 and " outcome=error " in line  # one, outside quotes


def test_a_functions_params_give_what_a_refusal_knows() -> None:
    audit = Audit("Search")
    audit.saw_function("vllm", {"endpoint": '["http://u:p@a:1/x", "http://b:2"]'})
    assert audit.endpoints == ("a:1", "b:2") and "u:p" not in audit.line()
    again = Audit("Search")
    again.saw_function("tei", {"endpoint": "http://a:1, http://a:1/other"})
    assert again.endpoints == ("a:1",)
