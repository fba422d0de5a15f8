"""What the ranker needs from a collection's schema, the per-client cache of it (one describe per collection), and
the ONE list of Milvus calls after which a cached schema may be wrong (the clients and the gateway both read it)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, FunctionType


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    dtype: DataType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """The part of a collection's schema the ranker needs (cached per collection by the client)."""

    name: str
    pk_name: str
    fields: Mapping[str, FieldInfo]
    # Sparse fields a BM25 function fills: searching one scores by BM25 (a function chain's $score reads it).
    bm25_fields: frozenset[str] = frozenset()

    @classmethod
    def from_describe(cls, described: Mapping[str, Any]) -> CollectionInfo:
        fields: dict[str, FieldInfo] = {}
        pk_name = "id"
        for raw in described.get("fields", []):
            info = FieldInfo(raw["name"], DataType(raw["type"]), bool(raw.get("nullable", False)))
            fields[info.name] = info
            if raw.get("is_primary"):
                pk_name = info.name
        bm25 = frozenset(
            name
            for function in described.get("functions") or []
            if int(function.get("type", 0)) == int(FunctionType.BM25)
            for name in function.get("output_field_names") or []
        )
        return cls(str(described.get("collection_name", "")), pk_name, fields, bm25)


class SchemaCache:
    """Per-client cache of what the ranker needs from each collection's schema: one describe per collection,
    not one per search (a describe costs as much as a small search)."""

    def __init__(self) -> None:
        self._infos: dict[str, CollectionInfo] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionInfo | None:
        with self._lock:
            return self._infos.get(name)

    def put(self, name: str, info: CollectionInfo) -> None:
        with self._lock:
            self._infos[name] = info

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._infos.clear()
            else:
                self._infos.pop(name, None)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A Milvus call after which a cached schema may be wrong: its MilvusService method, the pymilvus client
    methods that send it, and whether it may concern collections other than the one it names."""

    rpc: str
    methods: tuple[str, ...]
    whole: bool = False  # a rename (the new name may be cached too), a dropped database


SCHEMA_CHANGES: tuple[SchemaChange, ...] = (
    SchemaChange("CreateCollection", ("create_collection",)),
    SchemaChange("DropCollection", ("drop_collection",)),
    SchemaChange("RenameCollection", ("rename_collection",), whole=True),
    SchemaChange("AlterCollection", ("alter_collection_properties", "drop_collection_properties")),
    SchemaChange("AddCollectionField", ("add_collection_field",)),
    SchemaChange("AddCollectionStructField", ("add_collection_struct_field",)),
    SchemaChange("AlterCollectionField", ("alter_collection_field",)),
    SchemaChange("AlterCollectionSchema", ("drop_collection_field", "add_function_field", "drop_function_field")),
    SchemaChange("AddCollectionFunction", ("add_collection_function",)),
    SchemaChange("AlterCollectionFunction", ("alter_collection_function",)),
    SchemaChange("DropCollectionFunction", ("drop_collection_function",)),
    SchemaChange("DropDatabase", ("drop_database",), whole=True),
)
