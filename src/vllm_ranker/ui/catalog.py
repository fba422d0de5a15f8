"""What the page may offer for each collection: its text fields and the first stages its schema allows.

Read from ``describe_collection`` (public pymilvus API), so it works for the demo's collection (dense field filled by
Milvus's TEXTEMBEDDING function: search with the query text), for ``vllm-ranker ingest``'s (dense vectors inserted by
the caller: the page embeds the query through the endpoint's ``/v1/embeddings``) and for any other collection with a
text field and a BM25 function.

Each listed collection also says whether it is loaded: Milvus searches only loaded collections, and Milvus Lite
leaves every collection of a file released when the file is opened by a new process (the case of every file that
``vllm-ranker demo`` or ``ingest`` made), so the page loads one before searching it (``load``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pymilvus import MilvusException

from vllm_ranker import DataType, FunctionType

from .errors import NotLoaded

STAGES = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class CollectionView:
    name: str
    pk: str
    pk_int: bool  # an INT64 key: the page sends keys as strings (JavaScript numbers lose digits past 2**53)
    text_fields: list[str]
    default_text: str | None
    title_field: str | None
    dense: str | None  # a float vector field searched with COSINE/IP/L2
    dense_from_text: bool  # filled by TEXTEMBEDDING: Milvus embeds the query text itself
    sparse: str | None  # the BM25 function's output field
    scalar_fields: list[str] = field(default_factory=list)  # what a document shows (vectors left out)
    stages: list[str] = field(default_factory=list)
    load_state: str = "unknown"  # "loaded", "loading" or "released"; describe() alone does not ask (one more call)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(value: Any, member: Any) -> bool:
    # describe_collection gives enum members on some pymilvus versions and plain ints or names on others.
    if isinstance(value, int):  # IntEnum members too
        return value == int(member)
    return bool(str(value).rsplit(".", 1)[-1].upper() == member.name)


def describe(client: Any, name: str) -> CollectionView:
    """The page's view of collection ``name``; raises pymilvus's MilvusException when it does not exist."""
    desc = client.describe_collection(name)
    fields: list[dict[str, Any]] = list(desc.get("fields") or [])
    functions: list[dict[str, Any]] = list(desc.get("functions") or [])
    pk_spec = next((f for f in fields if f.get("is_primary")), {"name": "id", "type": DataType.INT64})
    pk = str(pk_spec["name"])
    vector_types = [t for t in DataType if "VECTOR" in t.name]
    scalars = [str(f["name"]) for f in fields if not any(_same(f.get("type"), t) for t in vector_types)]
    texts = [str(f["name"]) for f in fields if _same(f.get("type"), DataType.VARCHAR) and f["name"] != pk]
    dense_fields = [str(f["name"]) for f in fields if _same(f.get("type"), DataType.FLOAT_VECTOR)]
    sparse = embedded_dense = None
    function_input: str | None = None
    for fn in functions:
        outputs = [str(o) for o in fn.get("output_field_names") or []]
        inputs = [str(i) for i in fn.get("input_field_names") or []]
        if _same(fn.get("type"), FunctionType.BM25) and outputs:
            sparse, function_input = outputs[0], function_input or (inputs[0] if inputs else None)
        elif _same(fn.get("type"), FunctionType.TEXTEMBEDDING) and outputs and outputs[0] in dense_fields:
            embedded_dense, function_input = outputs[0], function_input or (inputs[0] if inputs else None)
    dense = embedded_dense or (dense_fields[0] if dense_fields else None)
    # The text a model should read: what BM25/the embedder read, else the longest-sounding VARCHAR.
    default_text = function_input if function_input in texts else _guess_text(fields, texts)
    title = next((t for t in texts if t.lower() in ("title", "name", "heading")), None)
    stages = [s for s, ok in (("dense", dense), ("bm25", sparse), ("hybrid", dense and sparse)) if ok]
    return CollectionView(
        name=name,
        pk=pk,
        pk_int=_same(pk_spec.get("type"), DataType.INT64),
        text_fields=texts,
        default_text=default_text,
        title_field=title if title != default_text else None,
        dense=dense,
        dense_from_text=embedded_dense is not None,
        sparse=sparse,
        scalar_fields=scalars,
        stages=stages,
    )


def _guess_text(fields: list[dict[str, Any]], texts: list[str]) -> str | None:
    if not texts:
        return None
    analysed = [str(f["name"]) for f in fields if str(f.get("params", {}).get("enable_analyzer")).lower() == "true"]
    if analysed and analysed[0] in texts:
        return analysed[0]

    def length(name: str) -> int:
        spec = next(f for f in fields if f["name"] == name)
        return int(spec.get("params", {}).get("max_length", 0) or 0)

    return max(texts, key=length)


def load_state(client: Any, name: str) -> str:
    """``"loaded"``, ``"loading"`` (a load under way, by anyone) or ``"released"``."""
    state = client.get_load_state(name).get("state")
    label = str(getattr(state, "name", state))  # a pymilvus LoadState member
    return {"Loaded": "loaded", "Loading": "loading"}.get(label, "released")


def described(client: Any, name: str) -> CollectionView:
    """``describe`` and the load state: what the page lists."""
    return replace(describe(client, name), load_state=load_state(client, name))


def list_views(client: Any) -> list[CollectionView]:
    """Every collection, sorted by name; ones that vanish between list and describe are left out."""
    views: list[CollectionView] = []
    for name in sorted(client.list_collections()):
        try:
            views.append(described(client, name))
        except MilvusException:  # dropped by someone else meanwhile: not worth failing the whole list
            continue
    return views


def load(client: Any, name: str) -> CollectionView:
    """Load collection ``name`` (pymilvus waits until it is loaded) and give its view as it is now."""
    client.load_collection(name)
    return described(client, name)


@contextlib.contextmanager
def loaded_needed(client: Any, name: str) -> Iterator[None]:
    """Turns Milvus's failure on a released collection ("call load() before search") into ``NotLoaded``, which the
    page answers by loading the collection or offering to. Asked only after a failure: searches pay nothing."""
    try:
        yield
    except MilvusException:
        with contextlib.suppress(MilvusException):  # gone, or Milvus unreachable: the first failure says more
            state = load_state(client, name)
            if state != "loaded":
                raise NotLoaded(
                    f"collection {name!r} is {state}: Milvus searches only loaded collections. The page loads it "
                    "when you pick it (at once for a Milvus Lite file, with its Load button on a server); "
                    "POST /api/load does it too"
                ) from None
        raise
