"""The page's pure helpers: marked snippets, the user-info filter, and schema reading on describe's variants."""

from __future__ import annotations

from typing import Any

from vllm_ranker import DataType, FunctionType
from vllm_ranker.ui.catalog import describe
from vllm_ranker.ui.compare import without_userinfo
from vllm_ranker.ui.highlight import query_terms, segments, snippet


def text_of(parts: list[tuple[str, bool]]) -> str:
    return "".join(t for t, _ in parts)


def test_query_terms_leave_out_stop_words_and_single_letters() -> None:
    assert query_terms("How do I read a GZIP file, x?") == {"read", "gzip", "file"}


def test_segments_mark_whole_words_case_insensitively_and_keep_every_character() -> None:
    text = "Reading <b>gzip</b> files: gzip.open reads GZIP."
    parts = segments(text, {"gzip", "reads"})
    assert text_of(parts) == text
    assert [t for t, marked in parts if marked] == ["gzip", "gzip", "reads", "GZIP"]


def test_long_text_snippet_centres_on_the_first_match_with_ellipses() -> None:
    text = " ".join(f"word{i}" for i in range(200)) + " needle " + " ".join(f"tail{i}" for i in range(200))
    parts = snippet(text, {"needle"}, width=120)
    shown = text_of(parts)
    assert shown.startswith("… ") and shown.endswith(" …") and ("needle", True) in parts
    assert len(shown) <= 120 + 4 and " word" in shown and "tail0" in shown
    assert text_of(snippet("short text", {"x"})) == "short text"
    assert text_of(snippet(text, set(), width=50)).startswith("word0 ")  # no match: from the start


def test_user_info_is_dropped_from_urls_only() -> None:
    assert without_userinfo("http://u:p@host:8000/v1") == "http://host:8000/v1"
    assert without_userinfo("https://user@h") == "https://h"
    assert without_userinfo("./milvus.db") == "./milvus.db"


class FakeDescribe:
    """describe_collection's answer as plain names and ints (what other pymilvus versions give)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def describe_collection(self, name: str) -> dict[str, Any]:
        return self.answer


def test_describe_reads_int_and_name_types_alike() -> None:
    answer = {
        "fields": [
            {"name": "doc_id", "type": "DataType.VARCHAR", "is_primary": True, "params": {"max_length": 64}},
            {"name": "body", "type": int(DataType.VARCHAR), "params": {"max_length": 9000, "enable_analyzer": "true"}},
            {"name": "note", "type": "VARCHAR", "params": {"max_length": 10}},
            {"name": "vec", "type": int(DataType.FLOAT_VECTOR), "params": {"dim": 4}},
            {"name": "sp", "type": "SPARSE_FLOAT_VECTOR"},
        ],
        "functions": [
            {"type": int(FunctionType.BM25), "input_field_names": ["body"], "output_field_names": ["sp"]},
        ],
    }
    view = describe(FakeDescribe(answer), "c")
    assert (view.pk, view.pk_int, view.default_text, view.dense, view.sparse) == ("doc_id", False, "body", "vec", "sp")
    assert view.stages == ["dense", "bm25", "hybrid"] and view.dense_from_text is False
    assert view.scalar_fields == ["doc_id", "body", "note"]  # vectors are never sent to the page


def test_describe_without_functions_guesses_the_longest_text_and_allows_dense_only() -> None:
    answer = {
        "fields": [
            {"name": "id", "type": DataType.INT64, "is_primary": True},
            {"name": "title", "type": DataType.VARCHAR, "params": {"max_length": 200}},
            {"name": "content", "type": DataType.VARCHAR, "params": {"max_length": 8000}},
            {"name": "emb", "type": DataType.FLOAT_VECTOR, "params": {"dim": 8}},
        ],
    }
    view = describe(FakeDescribe(answer), "c")
    assert view.default_text == "content" and view.title_field == "title" and view.stages == ["dense"]
