"""The reranker families (local_vllm/reranker_families.py) without a vLLM: each family recognised from a real
config.json in a directory named as the test models are, the exact flags it adds, the refusal of a decoder no family
knows (one error: line through the command), the packaged templates rendered as vLLM renders them, and an
instruction reaching the template vLLM is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vllm_ranker.cli.main import main
from vllm_ranker.local_vllm import (
    RERANKER_FAMILIES,
    ManagedVLLM,
    UnrecognisedReranker,
    VLLMInstall,
    model_family,
    model_kind,
    plan_reranker,
    recognise_reranker,
)
from vllm_ranker.local_vllm.reranker_families import TEMPLATES, recognise

QWEN3_OVERRIDES = (
    '{"architectures":["Qwen3ForSequenceClassification"],"classifier_from_token":["no","yes"],'
    '"is_original_qwen3_reranker":true}'
)
GEMMA_OVERRIDES = (
    '{"architectures":["GemmaForSequenceClassification"],"classifier_from_token":["Yes"],"method":"no_post_processing"}'
)
MXBAI_OVERRIDES = (
    '{"architectures":["Qwen2ForSequenceClassification"],"classifier_from_token":["0","1"],'
    '"method":"from_2_way_softmax"}'
)
# The tiny decoders of the integration tests (and the environment facts' Qwen3): KV cache ~1 KB a token.
TINY = {"hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64, "num_hidden_layers": 2}
MESSAGES = [{"role": "query", "content": "What is X?"}, {"role": "document", "content": "X is Y."}]


def write_model(root: Path, name: str, architectures: list[str], model_type: str, **extra: Any) -> Path:
    """A model directory with the config.json transformers writes for it (the fields recognition reads)."""
    directory = root / name
    directory.mkdir(parents=True)
    config = {"architectures": architectures, "model_type": model_type, **extra}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLLM_RANKER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)


@pytest.mark.parametrize(
    ("name", "architecture", "model_type", "family", "overrides", "template"),
    [
        ("tiny-Qwen3-Reranker", "Qwen3ForCausalLM", "qwen3", "qwen3-reranker", QWEN3_OVERRIDES, "qwen3_reranker"),
        (
            "tiny-bge-reranker-v2-gemma",
            "GemmaForCausalLM",
            "gemma",
            "bge-reranker-v2-gemma",
            GEMMA_OVERRIDES,
            "bge_reranker_v2_gemma",
        ),
        (
            "tiny-mxbai-rerank-base-v2",
            "Qwen2ForCausalLM",
            "qwen2",
            "mxbai-rerank-v2",
            MXBAI_OVERRIDES,
            "mxbai_rerank_v2",
        ),
    ],
)
def test_each_llm_family_is_recognised_and_gets_its_flags(
    tmp_path: Path, name: str, architecture: str, model_type: str, family: str, overrides: str, template: str
) -> None:
    model = write_model(tmp_path, name, [architecture], model_type, max_position_embeddings=32768, **TINY)
    found = recognise_reranker(model)
    assert (found.name, found.kind) == (family, "llm-reranker")
    assert found.vllm_args(model) == [
        "--hf-overrides",
        overrides,
        "--chat-template",
        str(TEMPLATES / f"{template}.jinja"),
        "--max-model-len",
        "8192",
    ]
    assert (model_family(model), model_kind(model)) == (family, "llm-reranker")


def test_cross_encoders_bi_encoders_and_colbert(tmp_path: Path) -> None:
    bert = write_model(tmp_path, "tiny-ce", ["BertForSequenceClassification"], "bert")
    assert (recognise_reranker(bert).name, recognise_reranker(bert).vllm_args(bert)) == ("cross-encoder", [])
    xlmr = write_model(tmp_path, "bge-reranker-v2-m3", ["XLMRobertaForSequenceClassification"], "xlm-roberta")
    assert recognise_reranker(xlmr).kind == "cross-encoder"
    minilm = write_model(tmp_path, "all-MiniLM-L6-v2", ["BertModel"], "bert")
    assert (recognise_reranker(minilm).name, recognise_reranker(minilm).vllm_args(minilm)) == ("bi-encoder", [])
    embedder = write_model(tmp_path, "Qwen3-Embedding-0.6B", ["Qwen3ForCausalLM"], "qwen3")
    assert recognise_reranker(embedder).kind == "bi-encoder"  # a decoder, but an embedding model by name
    colbert = write_model(tmp_path, "colbertv2.0", ["HF_ColBERT"], "bert")
    assert recognise_reranker(colbert).kind == "late-interaction"
    # An already converted Qwen3-Reranker is a classifier that still needs its prompt, not the overrides.
    seq_cls = write_model(tmp_path, "Qwen3-Reranker-0.6B-seq-cls", ["Qwen3ForSequenceClassification"], "qwen3")
    found = recognise_reranker(seq_cls)
    assert found.name == "qwen3-reranker-seq-cls" and "--hf-overrides" not in found.vllm_args(seq_cls)
    assert "--chat-template" in found.vllm_args(seq_cls)


def test_a_decoder_no_family_knows_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chat = write_model(tmp_path, "tiny-qwen3-chat", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    with pytest.raises(UnrecognisedReranker, match="--hf-overrides"):
        recognise_reranker(chat)
    # The name alone does not make a reranker of another model_type, nor the model_type of another name.
    gemma_named_qwen = write_model(tmp_path, "tiny-Qwen3-Reranker", ["GemmaForCausalLM"], "gemma")
    with pytest.raises(UnrecognisedReranker):
        recognise_reranker(gemma_named_qwen)
    assert model_kind(chat) == "unknown"  # what eval reports for a server of it
    assert main(["serve", "--rerank-model", str(chat), "--port", "0"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --rerank-model tiny-qwen3-chat is a decoder model")
    assert "--rerank-family qwen3-reranker|bge-reranker-v2-gemma|mxbai-rerank-v2" in lines[0]
    assert "--hf-overrides JSON" in lines[0]


def test_forcing_a_family_and_passing_overrides(tmp_path: Path) -> None:
    chat = write_model(tmp_path, "tiny-qwen3-chat", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    forced = recognise(chat, family="qwen3-reranker")
    assert (forced.family.name, forced.source) == ("qwen3-reranker", "--rerank-family")
    custom = recognise(chat, hf_overrides={"architectures": ["Qwen3ForSequenceClassification"]})
    assert (custom.family.name, custom.family.kind) == ("custom", "llm-reranker")
    assert custom.family.vllm_args(chat) == ["--hf-overrides", '{"architectures":["Qwen3ForSequenceClassification"]}']
    reranker = write_model(tmp_path, "tiny-Qwen3-Reranker", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    merged = recognise(reranker, hf_overrides={"classifier_from_token": ["No", "Yes"]}).family.hf_overrides
    assert merged["classifier_from_token"] == ["No", "Yes"] and merged["is_original_qwen3_reranker"] is True


def test_a_hub_id_is_recognised_from_the_cache_or_by_its_name(tmp_path: Path) -> None:
    snapshot = tmp_path / "hf" / "hub" / "models--Qwen--Qwen3-Reranker-0.6B" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "max_position_embeddings": 40960}
    # Qwen3-Reranker-0.6B's shape: 28 layers x 8 KV heads x 128: in float32 4096 tokens fit 1 GiB, 8192 do not.
    config |= {"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128}
    (snapshot / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 28}))
    cached = recognise("Qwen/Qwen3-Reranker-0.6B")
    assert (cached.family.name, cached.source) == ("qwen3-reranker", "its config.json in the Hugging Face cache")
    assert cached.family.vllm_args(snapshot)[-2:] == ["--max-model-len", "4096"]
    assert recognise_reranker(snapshot).name == "qwen3-reranker"  # the snapshot goes by its hub id
    by_name = recognise("BAAI/bge-reranker-v2-gemma")
    assert by_name.family.name == "bge-reranker-v2-gemma" and by_name.source.startswith("its name only")
    assert recognise("someone/some-model").family.kind == "unknown"


def test_the_plan_carries_the_flags_and_the_one_line(tmp_path: Path) -> None:
    model = write_model(tmp_path, "tiny-Qwen3-Reranker", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    plan = plan_reranker(str(model))
    assert (plan.family, plan.kind, plan.model) == ("qwen3-reranker", "llm-reranker", str(model.resolve()))
    assert plan.model_args == tuple(recognise_reranker(model).vllm_args(model))
    assert plan.recognised is not None and "\n" not in plan.recognised
    assert plan.recognised.startswith("tiny-Qwen3-Reranker: recognised as qwen3-reranker (llm-reranker)")
    assert "--hf-overrides" in plan.recognised and "--chat-template" in plan.recognised


def test_the_reranker_command_line_carries_the_family_flags(tmp_path: Path) -> None:
    model = write_model(tmp_path, "tiny-Qwen3-Reranker", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    family_args = tuple(recognise_reranker(model).vllm_args(model))
    install = VLLMInstall(tmp_path, Path(sys.executable), "0.32.0", None, "cpu")
    server = ManagedVLLM(model, port=8001, model_args=family_args, extra_args=("--dtype", "float32"))
    server._install = install  # the venv probe imports vLLM; this test is about the argv only
    argv = server.command()
    assert argv[argv.index("--hf-overrides") + 1] == QWEN3_OVERRIDES
    assert argv[-2:] == ["--dtype", "float32"] and argv.count("--dtype") == 1
    # The user's --max-model-len replaces the family's.
    mine = ManagedVLLM(model, port=8001, model_args=family_args, max_model_len=1024)
    mine._install = install
    argv = mine.command()
    assert argv.count("--max-model-len") == 1 and argv[argv.index("--max-model-len") + 1] == "1024"


def _render(template: Path, **kwargs: Any) -> str:
    # How transformers' apply_chat_template (which vLLM's score path calls) compiles a template.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template.read_text()).render(messages=MESSAGES, **kwargs)


def test_the_templates_ship_and_render_the_model_cards_prompts() -> None:
    shipped = {f.template for f in RERANKER_FAMILIES if f.template}
    assert shipped == {"qwen3_reranker.jinja", "bge_reranker_v2_gemma.jinja", "mxbai_rerank_v2.jinja"}
    assert all((TEMPLATES / name).is_file() for name in shipped)
    qwen3 = _render(TEMPLATES / "qwen3_reranker.jinja")
    assert qwen3 == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
        'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n<Instruct>: Given a '
        "web search query, retrieve relevant passages that answer the query\n<Query>: What is X?\n<Document>: X is "
        "Y.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert "<Instruct>: Find code\n" in _render(TEMPLATES / "qwen3_reranker.jinja", instruction="Find code")
    assert _render(TEMPLATES / "bge_reranker_v2_gemma.jinja") == (
        "A: What is X?\nB: X is Y.\nGiven a query A and a passage B, determine whether the passage contains an "
        "answer to the query by providing a prediction of either 'Yes' or 'No'."
    )
    mxbai = _render(TEMPLATES / "mxbai_rerank_v2.jinja")
    assert "user\nquery: What is X?\ndocument: X is Y.\nYou are a search relevance expert" in mxbai
    assert mxbai.endswith("Relevance:<|im_end|>\n<|im_start|>assistant\n") and "instruction:" not in mxbai
    assert "user\ninstruction: Find code\nquery: " in _render(
        TEMPLATES / "mxbai_rerank_v2.jinja", instruction="Find code"
    )


def test_rerank_instruction_reaches_the_template_vllm_is_given(tmp_path: Path) -> None:
    model = write_model(tmp_path, "tiny-Qwen3-Reranker", ["Qwen3ForCausalLM"], "qwen3", **TINY)
    instruction = 'Find the "right" code\\snippet'
    args = plan_reranker(str(model), instruction=instruction).model_args
    template = Path(args[args.index("--chat-template") + 1])
    assert template.parent == tmp_path / "state" / "templates"
    assert f"<Instruct>: {instruction}\n" in _render(template)
    assert "<Instruct>: per request\n" in _render(template, instruction="per request")  # a request's own wins
    assert plan_reranker(str(model), instruction=instruction).model_args == args  # one file per instruction
    cross = write_model(tmp_path, "tiny-ce", ["BertForSequenceClassification"], "bert")
    with pytest.raises(UnrecognisedReranker, match="takes no instruction"):
        plan_reranker(str(cross), instruction=instruction)
