"""The backend's search answers in, the reranked answer out: rows of ``fields_data`` taken from the backend's own.

The flow reads the first-stage hits as pymilvus shapes them (``flow_hits``); the reranked answer keeps the
backend's encoding of every output field (dynamic fields, JSON, vectors, arrays, nullable flags) by copying rows of
the FieldData Milvus sent, instead of decoding values and encoding them again (``reranked_answer``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pymilvus import DataType
from pymilvus.grpc_gen import schema_pb2

# Bytes per row of the packed vector kinds, as a function of the field's dim.
_PACKED_VECTOR_BYTES = {
    "binary_vector": lambda dim: dim // 8,
    "float16_vector": lambda dim: dim * 2,
    "bfloat16_vector": lambda dim: dim * 2,
    "int8_vector": lambda dim: dim,
}


class RowSource:
    """One FieldData of one backend answer, with the index of each row's value (nullable fields may be sent
    compact: only valid rows carry a value)."""

    def __init__(self, field: schema_pb2.FieldData, n_rows: int) -> None:
        self.field = field
        valid = list(field.valid_data)
        self.valid = valid if len(valid) == n_rows else None
        stored = _stored_rows(field)
        if self.valid is not None and stored is not None and stored < n_rows:
            positions, seen = [], 0
            for ok in self.valid:
                positions.append(seen if ok else -1)
                seen += ok
            self.positions: list[int] | None = positions
        else:
            self.positions = None

    def value_index(self, row: int) -> int:
        return row if self.positions is None else self.positions[row]


def _stored_rows(field: schema_pb2.FieldData) -> int | None:
    if field.HasField("scalars"):
        kind = field.scalars.WhichOneof("data")
        return None if kind is None else len(getattr(field.scalars, kind).data)
    return None


def empty_like(field: schema_pb2.FieldData) -> schema_pb2.FieldData:
    out = schema_pb2.FieldData(
        type=field.type, field_name=field.field_name, field_id=field.field_id, is_dynamic=field.is_dynamic
    )
    if field.HasField("scalars"):
        kind = field.scalars.WhichOneof("data")
        if kind is not None:
            getattr(out.scalars, kind).SetInParent()
            if kind == "array_data":
                out.scalars.array_data.element_type = field.scalars.array_data.element_type
    elif field.HasField("vectors"):
        out.vectors.dim = field.vectors.dim
        kind = field.vectors.WhichOneof("data")
        if kind is not None:
            getattr(out.vectors, kind).SetInParent()
            if kind == "sparse_float_vector":
                out.vectors.sparse_float_vector.dim = field.vectors.sparse_float_vector.dim
            elif kind == "vector_array":
                out.vectors.vector_array.dim = field.vectors.vector_array.dim
                out.vectors.vector_array.element_type = field.vectors.vector_array.element_type
    elif field.HasField("struct_arrays"):
        raise ValueError(f"output field {field.field_name}: struct array fields are not supported by the gateway")
    return out


def append_row(out: schema_pb2.FieldData, source: RowSource, row: int) -> None:
    """Append row ``row`` of ``source`` to ``out`` (made by ``empty_like`` of a field of the same kind)."""
    field = source.field
    if source.valid is not None:
        out.valid_data.append(source.valid[row])
        if source.positions is not None and not source.valid[row]:
            return  # compact encoding: a null row carries no value
    index = source.value_index(row)
    if field.HasField("scalars"):
        kind = field.scalars.WhichOneof("data")
        if kind is None:
            return
        values = getattr(field.scalars, kind).data
        target = getattr(out.scalars, kind).data
        if kind == "array_data":
            target.add().CopyFrom(values[index])
        else:
            target.append(values[index])
        return
    if not field.HasField("vectors"):
        return
    vectors = field.vectors
    dim = vectors.dim
    kind = vectors.WhichOneof("data")
    if kind == "float_vector":
        out.vectors.float_vector.data.extend(vectors.float_vector.data[index * dim : (index + 1) * dim])
    elif kind in _PACKED_VECTOR_BYTES:
        width = _PACKED_VECTOR_BYTES[kind](dim)
        packed: bytes = getattr(vectors, kind)
        setattr(out.vectors, kind, getattr(out.vectors, kind) + packed[index * width : (index + 1) * width])
    elif kind == "sparse_float_vector":
        out.vectors.sparse_float_vector.contents.append(vectors.sparse_float_vector.contents[index])
    elif kind == "vector_array":
        out.vectors.vector_array.data.add().CopyFrom(vectors.vector_array.data[index])


def take_rows(
    answers: Sequence[schema_pb2.SearchResultData],
    picks: Sequence[tuple[int, int]],
    drop: frozenset[str],
) -> list[schema_pb2.FieldData]:
    """``fields_data`` made of the rows ``picks`` ((answer index, row) each), fields named in ``drop`` left out."""
    if not answers:
        return []
    first = answers[0]
    names = [(f.field_name, f.is_dynamic) for f in first.fields_data if f.field_name not in drop]
    sources: list[dict[tuple[str, bool], RowSource]] = []
    for answer in answers:
        n_rows = sum(answer.topks)
        sources.append({(f.field_name, f.is_dynamic): RowSource(f, n_rows) for f in answer.fields_data})
    outs = {key: empty_like(sources[0][key].field) for key in names}
    for answer_index, row in picks:
        for key in names:
            source = sources[answer_index].get(key)
            if source is None:
                raise ValueError(f"output field {key[0]} is missing from one of the backend's answers")
            append_row(outs[key], source, row)
    return [outs[key] for key in names]


def flow_hits(
    results: schema_pb2.SearchResultData, pk_name: str, text_field: str, nq: int
) -> list[list[dict[str, Any]]]:
    """Each query's hits in the shape the flow reads from pymilvus (pk, distance, the text in the entity)."""
    kind = results.ids.WhichOneof("id_field")
    ids: Sequence[Any] = getattr(results.ids, kind).data if kind else []
    # Every VARCHAR field fetched, not only text_field: a document_template reads several (a null one as None).
    n_rows = sum(results.topks)
    texts = [
        RowSource(f, n_rows)
        for f in results.fields_data
        if not f.is_dynamic and f.HasField("scalars") and f.scalars.WhichOneof("data") == "string_data"
    ]
    out: list[list[dict[str, Any]]] = []
    start = 0
    for count in results.topks:
        out.append(
            [
                {pk_name: ids[r], "distance": results.scores[r], "entity": _texts(texts, r, text_field)}
                for r in range(start, start + count)
            ]
        )
        start += count
    out.extend([] for _ in range(nq - len(out)))
    return out


def _texts(sources: Sequence[RowSource], row: int, text_field: str) -> dict[str, Any]:
    entity: dict[str, Any] = {text_field: ""}
    for source in sources:
        valid = source.valid is None or source.valid[row]
        strings = source.field.scalars.string_data.data
        entity[source.field.field_name] = strings[source.value_index(row)] if valid else None
    return entity


# The entity fields a hit gains beyond Milvus (core/shaping.py), as FieldData of the answer.
_ADDED = {"$first_stage_score": "double", "$first_stage_rank": "long", "$rerank_chunk": "json"}


def added_fields(result: Any) -> list[schema_pb2.FieldData]:
    """``$first_stage_score`` (Double), ``$first_stage_rank`` (Int64), ``$rerank_chunk`` (JSON) of every hit,
    for those the flow put in the hits' entities (keep_first_stage, chunk.return)."""
    hits = [hit for hits in result for hit in hits]
    out = []
    for name, kind in _ADDED.items():
        if not hits or name not in hits[0]["entity"]:
            continue
        values = [hit["entity"][name] for hit in hits]
        if kind == "double":
            field = schema_pb2.FieldData(type=DataType.DOUBLE, field_name=name)
            field.scalars.double_data.data.extend(float(v) for v in values)
        elif kind == "long":
            field = schema_pb2.FieldData(type=DataType.INT64, field_name=name)
            field.scalars.long_data.data.extend(int(v) for v in values)
        else:
            field = schema_pb2.FieldData(type=DataType.JSON, field_name=name)
            field.scalars.json_data.data.extend(json.dumps(v).encode() for v in values)
        out.append(field)
    return out


def reranked_answer(
    result: Any,
    answers: Sequence[schema_pb2.SearchResultData],
    text_field: str,
    limit: int,
    requested: list[str],
    fetched: Sequence[str] = (),
) -> schema_pb2.SearchResultData:
    """The flow's reranked hits (``result``) as Milvus shapes a search answer: ids, scores, topks, and the requested
    fields' rows, taken from the backend's ``answers`` (first occurrence of a primary key wins, like the flow's
    union). The fields fetched for the ranker only (``text_field``, or a function chain's ``fetched``) are left out."""
    drop = frozenset() if "*" in requested else frozenset(f for f in (text_field, *fetched) if f not in requested)
    data = schema_pb2.SearchResultData(num_queries=len(result), top_k=limit)
    first = answers[0] if answers else schema_pb2.SearchResultData()
    pk_kind = first.ids.WhichOneof("id_field") or "int_id"
    picks: list[tuple[int, int]] = []
    for q, hits in enumerate(result):
        where: dict[Any, tuple[int, int]] = {}
        for a, answer in enumerate(answers):
            start = sum(answer.topks[:q])
            kind = answer.ids.WhichOneof("id_field")
            if kind is None or q >= len(answer.topks):
                continue
            ids = getattr(answer.ids, kind).data
            for row in range(start, start + answer.topks[q]):
                where.setdefault(ids[row], (a, row))
        picks.extend(where[pk] for pk in hits.ids)
        getattr(data.ids, pk_kind).data.extend(hits.ids)
        data.scores.extend(float(d) for d in hits.distances)
        data.topks.append(len(hits))
    data.fields_data.extend(take_rows(answers, picks, drop))
    data.output_fields.extend(f for f in first.output_fields if f not in drop)
    added = added_fields(result)
    data.fields_data.extend(added)
    data.output_fields.extend(f.field_name for f in added)
    data.primary_field_name = first.primary_field_name
    data.all_search_count = sum(a.all_search_count for a in answers)
    return data
