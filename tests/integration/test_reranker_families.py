"""`vllm-ranker serve --rerank-model DIR` serves each reranker family right, against REAL vLLM servers (issue 28).

For a tiny random model of each family (``tiny_rerankers.py``: Qwen3-Reranker, bge-reranker-v2-gemma,
mxbai-rerank-v2; ``tiny_cross_encoder.py``: a BERT cross-encoder), started the way a user starts it
(``serve --rerank-model DIR --detach``, then ``serve --stop``):

* serve prints one line saying which family it recognised;
* the reranker's vLLM was launched with the family's ``--hf-overrides`` and prompt template (its command line, read
  from /proc), loaded the architecture the overrides name (its log) and serves the directory (``/v1/models``);
* the template renders the prompt the model was trained with (the upstream format, written out below);
* ``/rerank`` answers, per document, the score transformers computes from the same weights with the family's
  classifier (``tiny_rerankers.reference``), within float tolerance.

And a decoder model no family knows is refused before anything starts, in one ``error:`` line naming
``--hf-overrides``.

Cost: two vLLM starts per family (serve always runs its embedder too), one family at a time, each stopped before the
next starts: 55-75 s per family on 2 CPUs, ~4 min for the module. ``-k qwen3`` runs one family.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_serve import group_gone, wait_until
from tests.integration.test_serve_pair import Served, serve, start_detached, stop_all
from tests.integration.tiny_rerankers import (
    CHAT_DIRECTORY,
    GEMMA,
    LLM_FAMILIES,
    MXBAI,
    QWEN3,
    Family,
    ensure_tiny_rerankers,
    reference_scores,
)
from vllm_ranker.local_vllm import VLLMInstall

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Horses run in the field.",
    "Brasilia is the capital of Brazil.",
]
# A request's own instruction (vLLM's `instruction` field): the families that take one must put it in the prompt.
REQUEST_INSTRUCTION = "Find the passage that names the city"
# vLLM computes in float32 here (-- --dtype float32), as the reference does; what is left is summation order.
TOLERANCE = 1e-4

# The BERT cross-encoder: recognised by its architectures, served with no flags added.
CROSS_ENCODER = Family(
    "cross-encoder", "tiny-ce", "bert", "BertForSequenceClassification", "BertForSequenceClassification", (), ""
)

# The prompts the released models were trained with, written out from their own code (not from the templates under
# test): Qwen3-Reranker's model card (prefix, "<Instruct>: ...\n<Query>: ...\n<Document>: ...", suffix with the
# empty think block), FlagEmbedding's LLM reranker for bge-reranker-v2-gemma ("A: q", "B: p", the question; the
# tokenizer adds the BOS), the mxbai-rerank package for v2 (Qwen chat frame, "query: ", "document: ", the task).
_QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
_QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
_QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
_GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a "
    "prediction of either 'Yes' or 'No'."
)
_MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
_MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
_MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


def expected_prompt(family: Family, query: str, document: str, instruction: str | None = None) -> str:
    if family is QWEN3:
        said = instruction or _QWEN3_INSTRUCTION
        return f"{_QWEN3_PREFIX}<Instruct>: {said}\n<Query>: {query}\n<Document>: {document}{_QWEN3_SUFFIX}"
    if family is GEMMA:
        return f"A: {query}\nB: {document}\n{instruction or _GEMMA_PROMPT}"
    if family is MXBAI:
        asked = f"instruction: {instruction}\n" if instruction else ""  # none by default
        return f"{_MXBAI_PREFIX}{asked}query: {query}\ndocument: {document}\n{_MXBAI_TASK}{_MXBAI_SUFFIX}"
    raise AssertionError(f"{family.name} has no prompt template")


@dataclass
class FamilyRun:
    """Everything one family's serve showed, collected while it ran (the servers are stopped before the tests)."""

    family: Family
    model_dir: Path
    served: Served
    argv: list[str]  # the reranker's vLLM command line
    models: list[dict[str, Any]]  # its /v1/models
    log: str  # its vLLM log
    scores: list[float]  # /rerank, by document index
    instructed: list[float] | None  # /rerank with REQUEST_INSTRUCTION (families that take one)
    stopped_by_serve: bool  # `serve --stop` alone ended both process groups
    stop_stdout: str
    reference: dict[str, Any]  # tiny_rerankers.reference on the template vLLM got
    instructed_reference: dict[str, Any] | None


def option(argv: list[str], name: str) -> str | None:
    """The value of `name VALUE` on a command line (the last one: argparse keeps the last)."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]
    return values[-1] if values else None


def rerank(endpoint: str, model: str, instruction: str | None = None) -> list[float]:
    body: dict[str, Any] = {"model": model, "query": QUERY, "documents": DOCS}
    if instruction is not None:
        body["instruction"] = instruction
    reply = httpx.post(endpoint + "/rerank", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    by_index = {r["index"]: r["relevance_score"] for r in reply.json()["results"]}
    return [float(by_index[i]) for i in range(len(DOCS))]


@pytest.fixture(scope="module")
def tiny_rerankers_root(vllm_install: VLLMInstall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = ensure_tiny_rerankers(tmp_path_factory.mktemp("rerankers"), vllm_install.python)
    return root


# One module-scoped instance per family: pytest runs each family's tests together and tears its instance down before
# the next one starts, so at most one serve (two vLLM processes) runs at a time.
@pytest.fixture(scope="module", params=[f.name for f in (*LLM_FAMILIES, CROSS_ENCODER)])
def run(
    request: pytest.FixtureRequest,
    vllm_install: VLLMInstall,
    tiny_rerankers_root: Path,
    tiny_cross_encoder_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FamilyRun]:
    family = next(f for f in (*LLM_FAMILIES, CROSS_ENCODER) if f.name == request.param)
    model_dir = tiny_cross_encoder_dir if family is CROSS_ENCODER else tiny_rerankers_root / family.directory
    state = tmp_path_factory.mktemp(f"serve-{family.name}")
    # float32: on a CPU with bfloat16 serve would pick it, and the scores would differ from the reference by ~1e-2.
    vllm_args = ["--", "--dtype", "float32"]
    served = start_detached(state, "--rerank-model", str(model_dir), "--vllm-venv", str(vllm_install.venv), *vllm_args)
    try:
        reranker_pid = served.pids[1]
        argv = Path(f"/proc/{reranker_pid}/cmdline").read_text().split("\0")[:-1]
        models = httpx.get(served.rerank + "/v1/models", timeout=10).json()["data"]
        name = str(models[0]["id"])
        scores = rerank(served.rerank, name)
        # Every LLM family takes an instruction (bge-reranker-v2-gemma's replaces its question); a BERT pair has none.
        takes_instruction = family is not CROSS_ENCODER
        instructed = rerank(served.rerank, name, REQUEST_INSTRUCTION) if takes_instruction else None
        log = (state / f"vllm-{served.rerank_port}.log").read_text(errors="replace")
        stop = serve("--stop", "--port", str(served.port), "--rerank-port", str(served.rerank_port), state_dir=state)
        stopped = stop.returncode == 0 and all(wait_until(partial(group_gone, pid), 30) for pid in served.pids)
    finally:
        stop_all(served)  # whatever --stop left (nothing, when it works)
    # The reference after the servers are gone: it needs the CPUs too.
    template = option(argv, "--chat-template")
    base = {
        "directory": str(model_dir),
        "template": template,
        "method": family.method,
        "tokens": list(family.classifier_from_token),
        "query": QUERY,
        "documents": DOCS,
    }
    requests = [base] + ([{**base, "instruction": REQUEST_INSTRUCTION}] if instructed is not None else [])
    references = reference_scores(vllm_install.python, requests)
    yield FamilyRun(
        family,
        model_dir,
        served,
        argv,
        models,
        log,
        scores,
        instructed,
        stopped,
        stop.stdout,
        references[0],
        references[1] if instructed is not None else None,
    )


@pytest.mark.vllm
def test_serve_says_which_family_it_recognised(run: FamilyRun) -> None:
    lines = [line for line in (run.served.stdout + run.served.stderr).splitlines() if "recognised as" in line]
    assert len(lines) == 1, run.served.stdout + run.served.stderr
    assert f"recognised as {run.family.name} " in lines[0] and run.model_dir.name in lines[0], lines[0]
    if run.family is not CROSS_ENCODER:
        assert "--hf-overrides" in lines[0], lines[0]  # the line says what serve adds


@pytest.mark.vllm
def test_vllm_was_launched_with_the_family_overrides(run: FamilyRun) -> None:
    argv, family = run.argv, run.family
    assert option(argv, "--runner") == "pooling" and option(argv, "--dtype") == "float32", argv
    assert [m["root"] for m in run.models] == [str(run.model_dir.resolve())]
    # vLLM's own account of what it built: the overrides' architecture, not the checkpoint's (*ForCausalLM).
    assert f"Resolved architecture: {family.served_as}" in run.log, run.log[-3000:]
    overrides_text = option(argv, "--hf-overrides")
    if family is CROSS_ENCODER:
        # A cross-encoder's head is in its weights and it reads a plain (query, document) pair: nothing to add.
        assert overrides_text is None and option(argv, "--chat-template") is None, argv
        return
    assert overrides_text is not None, argv
    overrides = json.loads(overrides_text)
    assert overrides["architectures"] == [family.served_as]
    assert overrides["classifier_from_token"] == list(family.classifier_from_token)
    if family is QWEN3:
        # vLLM's Qwen3ForSequenceClassificationConfig turns this flag into method from_2_way_softmax.
        assert overrides.get("is_original_qwen3_reranker") is True, overrides
    else:
        assert overrides["method"] == family.method, overrides
    template = option(argv, "--chat-template")
    assert template is not None and Path(template).is_file(), argv


@pytest.mark.vllm
def test_the_template_renders_the_prompt_the_model_was_trained_with(run: FamilyRun) -> None:
    if run.family is CROSS_ENCODER:
        pytest.skip(
            "a cross-encoder has no template: vLLM gives it the (query, document) pair as the tokenizer joins it"
        )
    assert run.reference["prompts"] == [expected_prompt(run.family, QUERY, d) for d in DOCS]
    if run.instructed_reference is not None:
        wanted = [expected_prompt(run.family, QUERY, d, REQUEST_INSTRUCTION) for d in DOCS]
        assert run.instructed_reference["prompts"] == wanted


@pytest.mark.vllm
def test_rerank_scores_equal_the_transformers_computation(run: FamilyRun) -> None:
    expected = run.reference["scores"]
    assert run.scores == pytest.approx(expected, abs=TOLERANCE), (run.scores, expected)
    # The documents score apart by many tolerances (tiny random models: 0.006 for the Gemma, more for the rest), so a
    # prompt that lost or mangled the document could not pass the comparison above by accident.
    assert max(expected) - min(expected) > 20 * TOLERANCE, expected
    if run.instructed is not None:
        assert run.instructed_reference is not None
        wanted = run.instructed_reference["scores"]
        assert run.instructed == pytest.approx(wanted, abs=TOLERANCE), (run.instructed, wanted)
        assert run.instructed != pytest.approx(run.scores, abs=TOLERANCE)  # the instruction reached the prompt


@pytest.mark.vllm
def test_serve_stop_stops_both_servers(run: FamilyRun) -> None:
    assert run.stopped_by_serve, run.stop_stdout
    assert all(f"Stopped vLLM (pid {pid})" in run.stop_stdout for pid in run.served.pids), run.stop_stdout


@pytest.mark.vllm
def test_an_unrecognised_decoder_model_is_refused_before_anything_starts(
    vllm_install: VLLMInstall, tiny_rerankers_root: Path, tmp_path: Path
) -> None:
    # The Qwen3 reranker's very weights under a name that says nothing: served plainly, vLLM would rerank with
    # meaningless scores, so serve must refuse rather than guess.
    chat = tiny_rerankers_root / CHAT_DIRECTORY
    args = ["--rerank-model", str(chat), "--vllm-venv", str(vllm_install.venv), "--detach"]
    try:
        done = serve("--port", "0", "--rerank-port", "0", *args, state_dir=tmp_path, timeout=120)
    finally:
        # A serve that does start it (the code before issue 28 did, as a bi-encoder) leaves detached servers behind.
        started = sorted(tmp_path.glob("vllm-*.pid"))
        if started:
            serve("--stop", state_dir=tmp_path)
    assert not started, "a server was started for a refused model"
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert CHAT_DIRECTORY in errors[0] and "--hf-overrides" in errors[0], errors[0]
    assert "ready at" not in done.stdout
