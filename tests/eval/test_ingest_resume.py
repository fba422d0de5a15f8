"""Resumable, idempotent ingest: interrupted by a failing embeddings service or a killed process, then resumed,
it ends with exactly the corpus's documents, none twice, and never re-embeds what was already flushed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vllm_ranker import MilvusClient
from vllm_ranker.testing import Recorded, Reply, RerankServer
from vllm_ranker.tools.corpus_files import Columns, read_corpus
from vllm_ranker.tools.embeddings import Embedder
from vllm_ranker.tools.errors import CorpusFileError, EmbeddingServiceError, IngestCountError, ToolInputError
from vllm_ranker.tools.ingest import ID_FIELD, ingest

N_DOCS = 50
BATCH = 8


def write_corpus(path: Path, n: int = N_DOCS) -> list[str]:
    ids = [f"doc-{i}" for i in range(n)]
    if n > 7:
        ids[7] = 'quote"and\\backslash'  # ids are quoted by Milvus, not by string formatting
    with path.open("w") as f:
        for i, doc_id in enumerate(ids):
            f.write(json.dumps({"_id": doc_id, "title": f"title {i}", "text": f"text number {i} about topic {i % 5}"}))
            f.write("\n")
    return ids


def stored_ids(client: MilvusClient, collection: str) -> list[str]:
    client.load_collection(collection)  # a reopened .db starts with its collections released
    rows = client.query(collection, filter='id != ""', output_fields=[ID_FIELD], limit=10_000)
    return [str(r[ID_FIELD]) for r in rows]


def embed_calls(server: RerankServer) -> list[Recorded]:
    return [r for r in server.requests if r.path.endswith("/embeddings")]


def test_fault_then_resume(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    ids = write_corpus(corpus)
    with RerankServer() as server:
        allowed = 1 + 3  # the dimension probe, then three batches

        def fail_later(request: Recorded) -> Reply | None:
            if len(embed_calls(server)) > allowed:
                return Reply(status=503, json_body={"error": {"message": "overloaded"}})
            return None

        server.fault = fail_later
        client = MilvusClient(uri=str(tmp_path / "resume.db"))
        try:
            with Embedder(server.endpoint, max_retries=1) as embedder:
                with pytest.raises(EmbeddingServiceError, match="Re-run the same command to resume"):
                    ingest(client, "c", read_corpus(corpus), embedder, batch_size=BATCH)
                # What was flushed before the fault is there, exactly once.
                assert sorted(stored_ids(client, "c")) == sorted(ids[: 3 * BATCH])

                server.fault = None
                server.requests.clear()
                report = ingest(client, "c", read_corpus(corpus), embedder, batch_size=BATCH)
                assert (report.skipped, report.inserted, report.count) == (3 * BATCH, N_DOCS - 3 * BATCH, N_DOCS)
                # Only the missing documents were embedded: probe + the 4 batches after the first three.
                sent = [t for r in embed_calls(server)[1:] for t in r.body["input"]]
                assert len(embed_calls(server)) == 1 + 4 and len(sent) == N_DOCS - 3 * BATCH
                assert all(not t.startswith(("title 0\n", "title 23\n")) for t in sent)

                # Idempotent: once more changes nothing and embeds nothing but the probe.
                server.requests.clear()
                again = ingest(client, "c", read_corpus(corpus), embedder, batch_size=BATCH)
                assert (again.skipped, again.inserted, again.count) == (N_DOCS, 0, N_DOCS)
                assert len(embed_calls(server)) == 1
            stored = stored_ids(client, "c")
            assert len(stored) == len(set(stored)) == N_DOCS and set(stored) == set(ids)
        finally:
            client.close()


def test_killed_process_then_resume(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    ids = write_corpus(corpus)
    db = tmp_path / "killed.db"
    cli = [sys.executable, "-m", "vllm_ranker.cli.main", "ingest", str(corpus), "--uri", str(db), "--collection", "c"]
    with RerankServer(request_latency=0.2) as server:
        args = [*cli, "--endpoint", server.endpoint, "--batch-size", str(BATCH)]
        env = dict(os.environ, COLUMNS="100")
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while len(embed_calls(server)) < 1 + 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up: as a crash or a power cut
        finally:
            proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()
        killed_after = len(embed_calls(server)) - 1
        assert 3 <= killed_after < N_DOCS // BATCH

        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"{N_DOCS} documents" in done.stdout
    client = MilvusClient(uri=str(db))
    try:
        stored = stored_ids(client, "c")
    finally:
        client.close()
    assert len(stored) == len(set(stored)) == N_DOCS and set(stored) == set(ids)


def test_duplicate_ids_in_the_corpus_count_once(tmp_path: Path) -> None:
    corpus = tmp_path / "dups.csv"
    corpus.write_text("doc_id,body\n1,first\n2,second\n1,first again\n")
    with RerankServer() as server, Embedder(server.endpoint, truncate_prompt_tokens=None) as embedder:
        client = MilvusClient(uri=str(tmp_path / "dups.db"))
        try:
            docs = read_corpus(corpus, Columns(id="doc_id", text="body", title=None))
            report = ingest(client, "c", docs, embedder)
        finally:
            client.close()
        assert "truncate_prompt_tokens" not in embed_calls(server)[-1].body
    assert (report.documents, report.duplicate_ids, report.count) == (2, 1, 2)


def test_another_corpus_is_refused_before_any_write(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_corpus(first, 5)
    second.write_text(json.dumps({"_id": "other", "text": "another corpus"}) + "\n")
    with RerankServer() as server, Embedder(server.endpoint) as embedder:
        client = MilvusClient(uri=str(tmp_path / "mixed.db"))
        try:
            ingest(client, "c", read_corpus(first), embedder)
            with pytest.raises(ToolInputError, match="already holds 5 documents and none of this corpus's first 1"):
                ingest(client, "c", read_corpus(second), embedder)
            assert len(stored_ids(client, "c")) == 5  # nothing was added
        finally:
            client.close()


def test_count_check_refuses_a_partly_mixed_collection(tmp_path: Path) -> None:
    # Sharing some ids passes for a resume; the count check after the run still says the two corpora mix.
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_corpus(first, 5)
    second.write_text("".join(json.dumps({"_id": i, "text": "x"}) + "\n" for i in ("doc-0", "other")))
    with RerankServer() as server, Embedder(server.endpoint) as embedder:
        client = MilvusClient(uri=str(tmp_path / "mixed.db"))
        try:
            ingest(client, "c", read_corpus(first), embedder)
            with pytest.raises(IngestCountError, match="holds 6 documents but the corpus has 2"):
                ingest(client, "c", read_corpus(second), embedder)
        finally:
            client.close()


def test_a_failed_start_leaves_no_collection_behind(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 10)
    with RerankServer() as server:
        # The dimension probe (one text) works; the first real batch fails for good.
        def fail_batches(request: Recorded) -> Reply | None:
            body = request.body if isinstance(request.body, dict) else {}
            if request.path.endswith("/embeddings") and len(body.get("input") or []) > 1:
                return Reply(status=400, json_body={"error": {"message": "bad request"}})
            return None

        server.fault = fail_batches
        client = MilvusClient(uri=str(tmp_path / "failed.db"))
        try:
            with Embedder(server.endpoint, max_retries=0) as embedder, pytest.raises(EmbeddingServiceError):
                ingest(client, "c", read_corpus(corpus), embedder, batch_size=4)
            assert not client.has_collection("c")
        finally:
            client.close()


def test_bad_corpus_says_what_to_change(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "x"}\n')
    with pytest.raises(CorpusFileError, match="--id-field"):
        list(read_corpus(bad))
    with pytest.raises(CorpusFileError, match="no such file"):
        list(read_corpus(tmp_path / "missing.jsonl"))
