"""``vllm_ranker.testing``: a deliberate, documented test kit for code that uses vllm-ranker (and for our tests).

- ``RerankServer``: a loopback HTTP server answering in a real provider's wire format (vLLM by default; TEI,
  Cohere, Voyage AI, SiliconFlow, DashScope, Hugging Face, SGLang through ``wire``), with deterministic scores
  (``overlap_score``), OpenAI-style ``/v1/embeddings`` (``hashed_embedding``), a record of every request
  (``Recorded``), simulated latency and concurrency, and injectable faults (``Reply``).
- ``milvus_lite_server``: ``milvus-lite server`` on a free loopback port (the remote, cluster-like path).
- ``milvus_standalone_server``: a real Milvus 2.3.5 standalone (``pip install milvus==2.3.5``) on loopback ports.
- ``wire_formats``: the request/answer shapes of each provider, as the server speaks them.
- ``process_guard``: the servers a test run starts, stopped by process group however the run ends (Ctrl-C,
  SIGTERM, exit).
"""

from vllm_ranker.testing import process_guard, wire_formats
from vllm_ranker.testing.milvus_lite import milvus_lite_server
from vllm_ranker.testing.milvus_standalone import milvus_standalone_server
from vllm_ranker.testing.rerank_server import (
    Recorded,
    Reply,
    RerankServer,
    hashed_embedding,
    overlap_score,
    vllm_answer,
)

__all__ = [
    "Recorded",
    "Reply",
    "RerankServer",
    "hashed_embedding",
    "milvus_lite_server",
    "milvus_standalone_server",
    "overlap_score",
    "process_guard",
    "vllm_answer",
    "wire_formats",
]
