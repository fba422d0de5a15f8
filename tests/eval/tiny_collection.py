"""A tiny hand-made collection in BEIR layout whose BM25 answers are known, for the ingest/eval/bench tests.

The queries are built so Milvus's BM25 ranking is forced by term overlap alone:
- q1 "zebra": d_zebra has it twice in a short text, d_okapi_long once in a long one; d_zebra is relevant -> rank 1
- q2 "giraffe": d_giraffe and d_okapi_long have it; the relevant d_lion shares no word -> not retrieved at all
- q3 "okapi": d_okapi_short repeats it (short doc, tf 4) and ranks first;
  the relevant d_okapi_long has it once in a long doc                       -> rank 2
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS = {
    "d_zebra": ("Zebra", "the zebra lives on the savanna"),
    "d_giraffe": ("Giraffe", "the giraffe eats leaves from tall trees"),
    "d_lion": ("Lion", "the lion hunts at night"),
    "d_okapi_short": ("", "okapi okapi okapi okapi"),
    "d_okapi_long": (
        "Forest animals",
        "a shy forest animal of central africa: the okapi, with white stripes on brown legs, is related to the "
        "giraffe rather than to the zebra although its stripes suggest otherwise",
    ),
    "d_filler": ("Filler", "rivers flow into the sea"),
}
QUERIES = {"q1": "zebra", "q2": "giraffe", "q3": "okapi", "q_unjudged": "lion"}
QRELS = {"q1": {"d_zebra": 1}, "q2": {"d_lion": 1}, "q3": {"d_okapi_long": 1}}


def rerank_by_legs(query: str, document: str) -> float:
    """A scripted model: for "okapi", the document mentioning legs first; otherwise shorter documents first.
    So bm25+rerank lifts q3's relevant document from rank 2 to 1 and keeps q1's at rank 1."""
    return 2.0 if query == "okapi" and "legs" in document else 1.0 / (1 + len(document))


def write_beir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as f:
        for doc_id, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, docs in QRELS.items() for d, r in docs.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return root
