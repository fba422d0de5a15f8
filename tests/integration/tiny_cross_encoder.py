"""Build a tiny, deterministic cross-encoder that vLLM can serve.

No cross-encoder reranker weights ship in any installable package here, so the
integration tests make one: a ``BertForSequenceClassification`` with one label
(vLLM serves that as a cross-encoder: /v1/rerank and /score give one sigmoid
score per (query, document) pair) and a WordPiece tokenizer.  Its scores are
meaningless; it only exercises vLLM's cross-encoder path, including
``truncate_prompt_tokens`` against a small ``max_position_embeddings``.

Two halves:

* ``ensure_tiny_cross_encoder(out_dir, python)`` runs from the test venv (no
  torch there) and executes this file with the vLLM venv's *python*, once.
* ``build(out_dir)`` / ``__main__`` run inside the vLLM venv, which has torch,
  transformers and tokenizers.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

# Positions the model accepts: a query plus a long document goes over it, so
# truncate_prompt_tokens has something to do.
MAX_POSITIONS = 128
SEED = 1234

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD_TEXT = """
the a an of to in is are was and or for on with as by at from that this it be not what which who
where when how capital city country france paris brazil brasilia germany berlin horse horses
animal animals river rivers run runs milvus vector search rerank query document
"""
WORDS = _WORD_TEXT.split()


def vocabulary() -> list[str]:
    """A fixed WordPiece vocabulary: specials, whole words, and characters as
    word-initial and ``##`` continuation pieces so that any ASCII text tokenizes
    without [UNK] (BertTokenizerFast(vocab_file=...) gave all-[UNK] here)."""
    chars = string.ascii_lowercase + string.digits
    pieces = [*SPECIAL_TOKENS, *string.punctuation, *chars, *(f"##{c}" for c in chars), *WORDS]
    return list(dict.fromkeys(pieces))  # de-duplicate, keep order (ids stay fixed)


def build(out_dir: Path) -> Path:
    """Write config, weights and tokenizer to *out_dir* (inside the vLLM venv)."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(vocabulary())}
    raw = BertWordPieceTokenizer(vocab=vocab, lowercase=True)
    # BertWordPieceTokenizer already post-processes pairs as BERT expects:
    # [CLS] q [SEP] d [SEP] with token types 0/1.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=MAX_POSITIONS,
        # The generic fast tokenizer leaves token types out by default; BERT needs
        # them to tell the query segment from the document segment.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )

    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=len(vocab),
        # head_dim = 64 / 2 = 32: vLLM's CPU attention kernels reject small head
        # sizes ("Unsupported CPU attention configuration: head_dim=16").
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        num_labels=1,
        pad_token_id=vocab["[PAD]"],
        # BERT's usual 0.02 makes every score ~0.502; wider weights give scores
        # that differ per document, so ordering and per-document results are visible.
        initializer_range=0.5,
    )
    model = BertForSequenceClassification(config).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def ensure_tiny_cross_encoder(out_dir: Path, python: Path, timeout: float = 300.0) -> Path:
    """Build the model into *out_dir* with the vLLM venv's *python*, unless already built."""
    if (out_dir / "config.json").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny cross-encoder failed:\n{done.stdout}\n{done.stderr}")
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    print(build(Path(sys.argv[1])))
