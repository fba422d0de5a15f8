"""Any value of any type for any param key, any input field names, any search data: a spec, a result, or a
MilvusException subclass whose message names what was wrong — never another exception type, never a hang.

Each example starts from a valid vLLM ranker and changes one to three keys (known keys, their upper-case
spellings, and random keys) to hypothesis's values: None, bools, huge ints, NaN/inf floats, text from every
Unicode plane including lone surrogates, bytes, decimals, nested lists/dicts, and strings that look like numbers,
booleans, JSON or URLs. The message must name one of the changed keys (or the setting it is an alias of).
(Params that are not a dict never reach us: pymilvus's Function refuses them.)
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

import numpy as np
import pymilvus
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymilvus import Function, FunctionType, MilvusException

from tests.conftest import DIM
from tests.hostile.helpers import no_hang
from vllm_ranker import MilvusClient, RerankError
from vllm_ranker.core.schema import CollectionInfo
from vllm_ranker.core.spec import RerankSpec, parse_ranker
from vllm_ranker.providers import PROVIDERS
from vllm_ranker.testing import RerankServer

CORE_KEYS = (
    "reranker",
    "provider",
    "queries",
    "endpoint",
    "endpoints",
    "model_name",
    "maxBatch",
    "max_batch",
    "max_client_batch_size",
    "truncate_prompt_tokens",
    "credential",
    "api_key",
    "timeout",
    "max_retries",
    "max_concurrency",
    "tls_verify",
    # issue 5's opt-in params (the fuzz must cover them too; absent keys are harmless)
    "cache",
    "cache_ttl",
    "rerank_window",
    "score_normalization",
    "min_score",
    "on_failure",
    "eject_after",
    "eject_seconds",
)
OPTION_KEYS = tuple(sorted({o.key for p in PROVIDERS.values() for o in p.options}))
KNOWN_KEYS = CORE_KEYS + OPTION_KEYS
# Keys that reach the network when valid: kept out of the search fuzz (a random valid host means DNS look-ups),
# fuzzed by parse_ranker only.
NETWORK_KEYS = ("endpoint", "endpoints")

# What a message must contain for a changed key (lower case): the key, or the setting it is one spelling of.
ALIASES = {
    "maxbatch": ("max_client_batch_size", "maxbatch", "max_batch"),
    "max_batch": ("max_client_batch_size", "maxbatch", "max_batch"),
    "max_client_batch_size": ("max_client_batch_size", "maxbatch", "max_batch"),
    "credential": ("credential", "api key"),
    "api_key": ("credential", "api key"),
    "endpoints": ("endpoint",),
    "reranker": ("reranker",),
}

CHARS = st.characters(codec=None, categories=None)  # every plane, lone surrogates and controls included
TRICKY_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1",
        "32",
        "1.5",
        "1e999",
        "-1e999",
        "nan",
        "inf",
        "-inf",
        "1e308",
        "9" * 5000,
        "true",
        "false",
        "yes",
        "null",
        "[]",
        "[1]",
        '["a", 2]',
        '["q"]',
        "{}",
        "model",
        "vllm",
        "cohere",
        "http://",
        "http://[::1",
        "http://h:99999",
        "http://h:0",
        "ftp://h",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "localhost:8000",
        "http://u:p@h",
        "http://h\r\nX: y",
        "http://h/\x00",
        "\ud800",
        "\x00",
        "🦀",
        "‮",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(CHARS, max_size=30)
    | TRICKY_STRINGS
    | st.binary(max_size=10)
    | st.decimals(allow_nan=True)
    | st.complex_numbers(allow_nan=True)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(CHARS, max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
RANDOM_KEYS = st.text(CHARS, max_size=20)


def keys(known: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(known) | st.sampled_from(known).map(str.upper) | RANDOM_KEYS


def changes(known: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys(known), VALUES, min_size=1, max_size=3)


def names_a_changed_key(message: str, changed: dict[str, Any]) -> bool:
    text = message.lower()
    for key, value in changed.items():
        folded = key.lower() if key != "queries" else key  # only `queries` is case-sensitive
        if folded not in {k.lower() for k in KNOWN_KEYS}:
            continue  # an unknown key is ignored, so it cannot be what the message is about
        expected = ALIASES.get(folded, (folded,))
        if folded == "provider" and str(value).strip().lower() in PROVIDERS:
            expected = (*expected, str(value).strip().lower())  # a valid other provider: its own requirements
        if any(e in text for e in expected):
            return True
    return False


def base_params(endpoint: str) -> dict[str, Any]:
    return {"reranker": "model", "provider": "vllm", "endpoint": endpoint, "queries": ["AI research"]}


def function(params: Any, fields: Any = ("document",)) -> Function:
    return Function(
        name="fuzzed",
        input_field_names=list(fields) if isinstance(fields, tuple) else fields,
        function_type=FunctionType.RERANK,
        params=params,
    )


@pytest.fixture(scope="module")
def docs_info(milvus: MilvusClient) -> CollectionInfo:
    return CollectionInfo.from_describe(milvus.describe_collection("docs"))


# VLLM_RANKER_FUZZ_EXAMPLES=5000 for a deeper local hunt; CI runs the modest default.
EXAMPLES = int(os.environ.get("VLLM_RANKER_FUZZ_EXAMPLES", "150"))
FAST = settings(
    max_examples=EXAMPLES, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SEARCHES = settings(
    max_examples=max(25, EXAMPLES // 6),
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FAST
@given(changed=changes(KNOWN_KEYS))
# Found by this test once (each was a raw OverflowError/UnicodeEncodeError/ValueError before the fix):
@example(changed={"timeout": 1e308})
@example(changed={"credential": "key\nwith-a-newline"})
@example(changed={"api_key": "clé"})
@example(changed={"endpoint": "http://[::1"})
@example(changed={"endpoint": "http://h:99999"})
@example(changed={"endpoint": "http://h\r\nX-Injected: 1"})
@example(changed={"ENDPOINT": "javascript:alert(1)"})
def test_any_param_value_parses_or_names_the_key(docs_info: CollectionInfo, changed: dict[str, Any]) -> None:
    params = base_params("http://127.0.0.1:9") | changed
    try:
        spec = parse_ranker(function(params), docs_info, env={})
    except RerankError as exc:
        assert names_a_changed_key(str(exc), changed), (str(exc), changed)
        return
    assert isinstance(spec, RerankSpec)
    assert spec.timeout > 0 and math.isfinite(spec.timeout) and spec.batch_size >= 1
    assert all(t.url.startswith(("http://", "https://")) and "@" not in t.url for t in spec.targets)


FIELD_NAMES = st.one_of(
    st.sampled_from(
        [
            ["document"],
            [],
            [""],
            ["missing"],
            ["note"],
            ["id"],
            ["year"],
            ["dense_vector"],
            ["document", "category"],
            ["DOCUMENT"],
            ["document "],
        ]
    ),
    st.lists(st.text(CHARS, max_size=10), max_size=3, unique=True),
    st.text(CHARS, max_size=10),
)


@FAST
@given(fields=FIELD_NAMES)
def test_any_input_field_names_parse_or_name_the_field(docs_info: CollectionInfo, fields: Any) -> None:
    try:
        ranker = function(base_params("http://127.0.0.1:9"), fields)
    except MilvusException:
        return  # pymilvus's own Function checks (duplicates, types): not ours
    try:
        spec = parse_ranker(ranker, docs_info, env={})
    except RerankError as exc:
        assert "field" in str(exc), str(exc)
        return
    assert spec.text_field in ("document", "category")


def vectors(nq: int, dim: int) -> list[list[float]]:
    return [[float((i + j) % 7) / 7 + 0.01 for j in range(dim)] for i in range(nq)]


DATA = st.one_of(
    st.builds(vectors, st.integers(0, 3), st.sampled_from([DIM, DIM, 0, 1, DIM + 1])),
    st.lists(st.text(CHARS, max_size=20), max_size=3),  # texts: the TEXTEMBEDDING function embeds them
    st.builds(lambda nq: np.asarray(vectors(nq, DIM), dtype=np.float32), st.integers(1, 3)),
    st.just(vectors(1, DIM)[0]),  # one bare vector
    VALUES,
)
QUERIES = st.one_of(st.none(), st.lists(st.text(CHARS, max_size=20), max_size=4), VALUES)


def run_search(client: Any, ranker: Function, data: Any) -> Any:
    return client.search(
        "docs", data=data, anns_field="dense_vector", limit=5, output_fields=["document"], ranker=ranker
    )


def pymilvus_raises_the_same(milvus: MilvusClient, data: Any, error: BaseException) -> bool:
    """A non-Milvus exception is pymilvus's own when a plain search of the same data raises the same type."""
    try:
        pymilvus.MilvusClient.search(milvus, "docs", data=data, anns_field="dense_vector", limit=5)
    except Exception as plain:  # comparing exception types is the point
        return type(plain) is type(error)
    return False


@SEARCHES
@given(changed=changes(tuple(k for k in KNOWN_KEYS if k not in NETWORK_KEYS)), data=DATA, queries=QUERIES)
@example(changed={"timeout": 1e12}, data=[vectors(1, DIM)[0]], queries=["q"])
@example(changed={"credential": "\x80"}, data=vectors(1, DIM), queries=["q"])
@example(changed={"maxBatch": 1}, data=np.asarray(vectors(2, DIM), dtype=np.float32), queries=["q"])
def test_searches_with_fuzzed_params_and_data_end_cleanly(
    client: Any, milvus: MilvusClient, server: RerankServer, changed: dict[str, Any], data: Any, queries: Any
) -> None:
    params = base_params(server.endpoint)
    params.pop("queries")
    if queries is not None:
        params["queries"] = queries
    params |= {k: v for k, v in changed.items() if k.lower() not in NETWORK_KEYS}
    try:
        ranker = function(params)
    except MilvusException:
        return
    with no_hang(60):
        try:
            result = run_search(client, ranker, data)
        except MilvusException:
            return
        except Exception as exc:
            assert pymilvus_raises_the_same(milvus, data, exc), repr(exc)
            return
    assert isinstance(result, pymilvus.SearchResult)
    for hits in result:
        distances = [h["distance"] for h in hits]
        assert distances == sorted(distances, reverse=True)
