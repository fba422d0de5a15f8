"""The collection shape of the Milvus docs: a text field with a BM25 sparse field and a dense field embedded by Milvus.

The dense field is filled by Milvus's own TEXTEMBEDDING function (provider ``openai``) pointed at any
OpenAI-compatible ``/v1/embeddings`` (vLLM, the loopback test server): Milvus embeds at insert AND at search time, so
``search(data=["some text"], anns_field="dense_vector")`` works exactly as in the Milvus docs.
"""

from __future__ import annotations

from typing import Any

from pymilvus import CollectionSchema, DataType, Function, FunctionType


def add_text_fields(
    schema: CollectionSchema,
    *,
    dim: int,
    embeddings_url: str | None = None,
    model: str = "",
    text_field: str = "document",
    max_length: int = 4096,
    analyzer_params: dict[str, Any] | None = None,
    dense_field: str = "dense_vector",
    sparse_field: str = "sparse_vector",
    send_dimensions: bool = False,
) -> CollectionSchema:
    """Add the analysed text field, its BM25 sparse field and its dense field to ``schema``.

    With ``embeddings_url`` (the service's OpenAI base URL, ``http://host:port/v1``) Milvus's TEXTEMBEDDING fills
    the dense field; without it the caller inserts the vectors. ``send_dimensions`` asks the service for
    ``dim``-sized vectors; leave it off for vLLM, which refuses it for models without Matryoshka support.
    """
    analyzer = {} if analyzer_params is None else {"analyzer_params": analyzer_params}
    schema.add_field(text_field, DataType.VARCHAR, max_length=max_length, enable_analyzer=True, **analyzer)
    schema.add_field(dense_field, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(sparse_field, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=[text_field],
            output_field_names=[sparse_field],
        )
    )
    if embeddings_url is None:
        return schema
    params: dict[str, Any] = {
        "provider": "openai",
        "model_name": model,
        "api_key": "unused",
        "base_url": embeddings_url,
    }
    if send_dimensions:
        params["dimensions"] = dim
    schema.add_function(
        Function(
            name="embed",
            function_type=FunctionType.TEXTEMBEDDING,
            input_field_names=[text_field],
            output_field_names=[dense_field],
            params=params,  # the openai provider requires a key; vLLM ignores it
        )
    )
    return schema


def text_index_params(
    client: Any, dense_index: str = "HNSW", dense_field: str = "dense_vector", sparse_field: str = "sparse_vector"
) -> Any:
    """A COSINE index on the dense field (HNSW; FLAT for exact answers) and an inverted BM25 index on the sparse
    one. Create it with the SYNC client: the async client cannot create indexes on a Milvus Lite file."""
    index = client.prepare_index_params()
    index.add_index(dense_field, index_type=dense_index, metric_type="COSINE")
    index.add_index(sparse_field, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return index
