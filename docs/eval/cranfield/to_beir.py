"""Cranfield 1400 (the classic SMART-format files) -> the BEIR layout that `vllm-ranker ingest` and `eval` read.

    python docs/eval/cranfield/to_beir.py DIR_WITH_cran.all.1400_cran.qry_cranqrel OUT_DIR

- Documents: `.I` id, `.T` title, `.W` abstract. Most abstracts begin by repeating the title; that repeat is cut
  from the text (the title is its own field), so a reranker that reads `{title}` and `{body}` sees it once.
- Queries: cran.qry numbers them 001, 002, 004, ... (gaps), but cranqrel numbers them 1..225 in file order; the
  queries are renumbered by position, as ir_datasets and every Cranfield evaluation do.
- Judgments: cranqrel's codes are Cleverdon's 1 (a complete answer) .. 4 (minimum interest), and -1 (no
  interest); graded gains 5 - code (4 .. 1), and -1 -> 0 (judged not relevant).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def _records(text: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    field = ""
    for line in text.splitlines():
        if line.startswith(".I "):
            out.append({"I": line[3:].strip()})
            field = ""
        elif re.fullmatch(r"\.[A-Z]", line.strip()):
            field = line.strip()[1]
            out[-1].setdefault(field, "")
        elif field:
            out[-1][field] += line + "\n"
    return out


def _squash(text: str) -> str:
    return " ".join(text.split())


def main(src: Path, out: Path) -> None:
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w") as corpus:
        for rec in _records((src / "cran.all.1400").read_text()):
            title, body = _squash(rec.get("T", "")), _squash(rec.get("W", ""))
            if title and body.startswith(title):
                body = body[len(title) :].strip()
            corpus.write(json.dumps({"_id": rec["I"], "title": title, "text": body}) + "\n")
    with (out / "queries.jsonl").open("w") as queries:
        for number, rec in enumerate(_records((src / "cran.qry").read_text()), start=1):
            queries.write(json.dumps({"_id": str(number), "text": _squash(rec.get("W", ""))}) + "\n")
    seen: set[tuple[str, str]] = set()
    with (out / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for line in (src / "cranqrel").read_text().splitlines():
            if not line.strip():
                continue
            qid, doc, code = line.split()[:3]
            if (qid, doc) in seen:
                continue
            seen.add((qid, doc))
            grade = 5 - int(code) if 1 <= int(code) <= 4 else 0
            qrels.write(f"{qid}\t{doc}\t{grade}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
