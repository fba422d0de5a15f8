"""Reranker families: how ``serve`` recognises a rerank model and the vLLM flags it needs, one frozen row each.

An LLM reranker (Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank-v2) is a causal LM whose answer token is the
score. vLLM serves it on /rerank and /score only when told so: ``--hf-overrides`` make it a sequence classifier
whose one label is built from the answer tokens' rows of the LM head (vllm/model_executor/models/adapters.py,
``SEQ_CLS_LOAD_METHODS``), and ``--chat-template`` gives the prompt it was trained with (vLLM applies no template
to a score pair unless one is given). Started plainly, the same weights load and answer with meaningless scores, so
a decoder model this table does not know is refused (``UnrecognisedReranker``) rather than served.

Recognition reads the model's ``config.json`` (a directory, or the Hugging Face cache for a hub id) and its name
(the hub id, or the directory's name); a hub id that is not on this machine is recognised by its name alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vllm_ranker.local_vllm.model_kind import (
    BI_ENCODER,
    CROSS_ENCODER,
    UNKNOWN,
    cached_snapshot,
    looks_like_hub_id,
)
from vllm_ranker.local_vllm.venv import VLLMStartError, state_dir

LLM_RERANKER = "llm-reranker"
LATE_INTERACTION = "late-interaction"
TEMPLATES = Path(__file__).with_name("templates")
# What the LLM families ask for at most: their model cards rerank with 8192 tokens, and vLLM would otherwise take
# the model's whole context (40960 for Qwen3-Reranker), whose KV cache a CPU server's default space cannot hold.
LLM_MAX_MODEL_LEN = 8192
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
# model_types of decoder families: such a config with no architectures is still a decoder.
_DECODER_MODEL_TYPES = frozenset(
    {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3", "phi3", "olmo2"}
)
_EMBEDDING_NAME = re.compile(r"embed", re.IGNORECASE)  # Qwen3-Embedding & co: decoders served as bi-encoders
_SET_DEFAULT = re.compile(r'^\{%- set default_instruction = ".*" -%\}$', re.MULTILINE)


class UnrecognisedReranker(VLLMStartError):
    """A rerank model ``serve`` cannot start right: one line saying which flag fixes it."""


@dataclass(frozen=True)
class RerankerFamily:
    """One row: how a model is recognised, what vLLM needs for it, what kind of reranker it is."""

    name: str
    kind: str  # cross-encoder, llm-reranker, late-interaction, bi-encoder (or unknown)
    recognised_by: str  # in words, for the docs and --help
    model_types: tuple[str, ...] = ()  # config.json model_type (LLM families: with a name match)
    name_pattern: str | None = None  # searched in the hub id / directory name, case-insensitive
    architectures: tuple[str, ...] = ()  # config.json architectures (late interaction)
    hf_overrides: Mapping[str, Any] = field(default_factory=dict)
    template: str | None = None  # a file of templates/ (package data)
    default_instruction: str | None = None  # None: the model takes no instruction
    max_model_len: int | None = None

    @property
    def takes_instruction(self) -> bool:
        return self.default_instruction is not None

    def template_path(self) -> Path | None:
        return TEMPLATES / self.template if self.template else None

    def matches_name(self, name: str) -> bool:
        return self.name_pattern is not None and re.search(self.name_pattern, name, re.IGNORECASE) is not None

    def vllm_args(self, model_path: str | os.PathLike[str], instruction: str | None = None) -> list[str]:
        """The ``vllm serve`` arguments this family adds for *model_path* (``--runner pooling`` every managed vLLM
        gets already). An *instruction* is written into a copy of the template under the state directory (vLLM's
        score templates take no server-side default, only a request's ``instruction``)."""
        if instruction is not None and not self.takes_instruction:
            raise UnrecognisedReranker(f"--rerank-instruction: a {self.name} reranker takes no instruction")
        args: list[str] = []
        if self.hf_overrides:
            args += ["--hf-overrides", json.dumps(dict(self.hf_overrides), separators=(",", ":"))]
        template = self.template_path()
        if template is not None:
            args += ["--chat-template", str(_with_instruction(template, instruction) if instruction else template)]
        if self.max_model_len is not None:
            args += ["--max-model-len", str(_fitting_max_model_len(_config_of(model_path), self.max_model_len))]
        return args


FAMILIES: tuple[RerankerFamily, ...] = (
    # vLLM's scoring docs; config.py's Qwen3ForSequenceClassificationConfig turns is_original_qwen3_reranker into
    # method "from_2_way_softmax": score = logit("yes") - logit("no") through a sigmoid, i.e. P("yes").
    RerankerFamily(
        "qwen3-reranker",
        LLM_RERANKER,
        'model_type "qwen3" and a name with "Qwen3-Reranker"',
        model_types=("qwen3",),
        name_pattern=r"qwen3-reranker",
        hf_overrides={
            "architectures": ["Qwen3ForSequenceClassification"],
            "classifier_from_token": ["no", "yes"],
            "is_original_qwen3_reranker": True,
        },
        template="qwen3_reranker.jinja",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
        max_model_len=LLM_MAX_MODEL_LEN,
    ),
    # "no_post_processing": the score layer is the LM head's row of "Yes" (a sigmoid of that logit).
    RerankerFamily(
        "bge-reranker-v2-gemma",
        LLM_RERANKER,
        'model_type "gemma" and a name with "bge-reranker-v2-gemma"',
        model_types=("gemma",),
        name_pattern=r"bge-reranker-v2-gemma",
        hf_overrides={
            "architectures": ["GemmaForSequenceClassification"],
            "classifier_from_token": ["Yes"],
            "method": "no_post_processing",
        },
        template="bge_reranker_v2_gemma.jinja",
        default_instruction=(
            "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
            "providing a prediction of either 'Yes' or 'No'."
        ),
        max_model_len=LLM_MAX_MODEL_LEN,
    ),
    # "from_2_way_softmax" over "0" (not relevant) and "1" (relevant).
    RerankerFamily(
        "mxbai-rerank-v2",
        LLM_RERANKER,
        'model_type "qwen2" and a name like "mxbai-rerank-...-v2"',
        model_types=("qwen2",),
        name_pattern=r"mxbai-rerank-.*v2",
        hf_overrides={
            "architectures": ["Qwen2ForSequenceClassification"],
            "classifier_from_token": ["0", "1"],
            "method": "from_2_way_softmax",
        },
        template="mxbai_rerank_v2.jinja",
        default_instruction="",  # none unless given
        max_model_len=LLM_MAX_MODEL_LEN,
    ),
    # A Qwen3-Reranker already converted to a classifier (e.g. "...-seq-cls"): its score head is in the weights,
    # but it still reads the prompt it was trained with.
    RerankerFamily(
        "qwen3-reranker-seq-cls",
        CROSS_ENCODER,
        'architectures "Qwen3ForSequenceClassification" and a name with "Qwen3-Reranker"',
        name_pattern=r"qwen3-reranker",
        architectures=("Qwen3ForSequenceClassification",),
        template="qwen3_reranker.jinja",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
        max_model_len=LLM_MAX_MODEL_LEN,
    ),
    # vLLM's _LATE_INTERACTION_MODELS (text): MaxSim over token embeddings, chosen by vLLM from the architecture.
    RerankerFamily(
        "late-interaction",
        LATE_INTERACTION,
        "architectures of a ColBERT model (HF_ColBERT, ColBERTModernBertModel, ColBERTJinaRobertaModel, ...)",
        architectures=("HF_ColBERT", "ColBERTModernBertModel", "ColBERTJinaRobertaModel", "ColBERTLfm2Model"),
    ),
    RerankerFamily("cross-encoder", CROSS_ENCODER, 'architectures ending in "ForSequenceClassification"'),
    RerankerFamily("bi-encoder", BI_ENCODER, "any other architectures (an embedding model: a cosine re-sort)"),
    RerankerFamily("unknown", UNKNOWN, "no config.json on this machine and no known name: vLLM decides"),
)
BY_NAME: dict[str, RerankerFamily] = {f.name: f for f in FAMILIES}
LLM_FAMILIES = tuple(f for f in FAMILIES if f.kind == LLM_RERANKER)
# A refused decoder served with the user's own --hf-overrides.
CUSTOM = RerankerFamily("custom", LLM_RERANKER, "--hf-overrides given for a model this table does not know")


@dataclass(frozen=True)
class Recognition:
    """What ``serve`` recognised for a model: its family, the name it went by and how it knew (``source``)."""

    family: RerankerFamily
    name: str
    source: str  # "its config.json", "the Hugging Face cache", "its name only", "--rerank-family"

    def line(self, args: list[str]) -> str:
        """The one line ``serve`` prints."""
        adds = f"adds {shlex.join(args)}" if args else "adds no flags"
        return f"{self.name}: recognised as {self.family.name} ({self.family.kind}) from {self.source}; {adds}"


def recognise_reranker(model: str | os.PathLike[str]) -> RerankerFamily:
    """The family of *model* (a directory or a hub id); ``UnrecognisedReranker`` for a decoder no row knows."""
    return recognise(model).family


def recognise(
    model: str | os.PathLike[str], family: str | None = None, hf_overrides: Mapping[str, Any] | None = None
) -> Recognition:
    """*model*'s recognition; *family* forces a row (``--rerank-family``); *hf_overrides* (``--hf-overrides``)
    are merged over the row's, the user's keys winning, and serve a decoder no row knows (family ``custom``)."""
    name = model_name(model)
    if family is not None:
        found = Recognition(BY_NAME[family], name, "--rerank-family")
    else:
        try:
            found = _recognise(model, name)
        except UnrecognisedReranker:
            if not hf_overrides:
                raise
            found = Recognition(CUSTOM, name, "--hf-overrides")
    if hf_overrides:
        merged = {**found.family.hf_overrides, **hf_overrides}
        found = replace(found, family=replace(found.family, hf_overrides=merged))
    return found


def model_name(model: str | os.PathLike[str]) -> str:
    """The name a model goes by: a hub id as given; a directory's name, or the hub id of a cache snapshot
    (``models--org--name/snapshots/<rev>``, which is what serve starts for a cached hub id)."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.is_dir():
        return text
    path = path.resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name


def _recognise(model: str | os.PathLike[str], name: str) -> Recognition:
    config, source = _config_and_source(model)
    if config is None:
        by_name = next((f for f in LLM_FAMILIES if f.matches_name(name)), None)
        return Recognition(by_name or BY_NAME["unknown"], name, "its name only (no config.json to read here)")
    architectures = [str(a) for a in config.get("architectures") or [] if isinstance(a, str)]
    model_type = str(config.get("model_type") or "")
    classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    for family in FAMILIES:
        if family.kind == LLM_RERANKER:
            # An LLM family needs its model_type AND its name: a plain Qwen3 chat model is no reranker.
            found = not classifier and model_type in family.model_types and family.matches_name(name)
        else:
            named = family.name_pattern is None or family.matches_name(name)
            found = bool(set(family.architectures) & set(architectures)) and named
        if found:
            return Recognition(family, name, source)
    if classifier:
        return Recognition(BY_NAME["cross-encoder"], name, source)
    decoder = any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures) or (
        model_type in _DECODER_MODEL_TYPES and not architectures
    )
    if decoder and not _EMBEDDING_NAME.search(name):
        raise UnrecognisedReranker(_refusal(name, architectures, model_type))
    if not architectures and not decoder:
        return Recognition(BY_NAME["unknown"], name, source)
    return Recognition(BY_NAME["bi-encoder"], name, source)


def _refusal(name: str, architectures: list[str], model_type: str) -> str:
    what = ", ".join(architectures) or f"model_type {model_type}"
    known = "|".join(f.name for f in LLM_FAMILIES)
    return (
        f"--rerank-model {name} is a decoder model ({what}) that serve does not know as a reranker: started plainly "
        f"vLLM would answer /rerank with meaningless scores; give --rerank-family {known} if it is one of those, or "
        "--hf-overrides JSON with the overrides vLLM's scoring docs give for it (a chat template with -- "
        "--chat-template FILE)"
    )


def _config_and_source(model: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, str]:
    path = Path(model).expanduser()
    if path.is_dir():
        return _read_config(path / "config.json"), "its config.json"
    text = os.fspath(model)
    snapshot = cached_snapshot(text) if looks_like_hub_id(text) else None
    if snapshot is None:
        return None, ""
    return _read_config(snapshot / "config.json"), "its config.json in the Hugging Face cache"


def _read_config(config_file: Path) -> dict[str, Any] | None:
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _config_of(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    return _config_and_source(model_path)[0]


def _fitting_max_model_len(config: Mapping[str, Any] | None, cap: int) -> int:
    """*cap*, or less where the model's context is shorter or its KV cache at *cap* tokens would not fit a CPU
    server's KV space ($VLLM_CPU_KVCACHE_SPACE GiB, 1 as ManagedVLLM sets it; vLLM refuses to start then),
    counted in float32, the widest type serve picks."""
    if config is None:
        return cap
    limit = cap
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        limit = min(limit, positions)
    try:
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
        per_token = 2 * int(config["num_hidden_layers"]) * kv_heads * head_dim * 4
        space_gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return limit
    fits = int(space_gib * 2**30 * 0.9) // max(per_token, 1) // 256 * 256  # vLLM keeps a few blocks back
    return max(min(limit, fits), min(limit, 256))


def _with_instruction(template: Path, instruction: str) -> Path:
    """A copy of *template* whose default instruction is *instruction*, under the state directory (named by its
    content, so the same instruction reuses one file)."""
    literal = json.dumps(instruction, ensure_ascii=False)  # a JSON string is a Jinja string literal
    text = _SET_DEFAULT.sub(lambda _: f"{{%- set default_instruction = {literal} -%}}", template.read_text(), 1)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = state_dir() / "templates" / f"{template.stem}-{digest}.jinja"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out
