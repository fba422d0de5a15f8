"""One text's request to the model's tokenizer (``chunk.tokens``: vLLM's ``POST /tokenize``), with every rule of a
rerank request's tries (exchange.py's ``attempts``: retries, failover, the call's deadline, errors)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

from vllm_ranker.core.spec import RerankSpec
from vllm_ranker.providers import Target
from vllm_ranker.providers.tokenizers import TOKENIZERS
from vllm_ranker.stats import RerankStats
from vllm_ranker.transport.answers import read_answer
from vllm_ranker.transport.balancer import EndpointPool
from vllm_ranker.transport.exchange import Answer, Reply, Send, Sleep, attempts, encode_body, status_hint

Tokenizing = Generator[Send | Sleep, Reply, list[str]]


def tokenize_exchange(
    spec: RerankSpec,
    index: int,
    text: str,
    deadline: float,
    stats: RerankStats,
    pool: EndpointPool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Tokenizing:
    """The token strings of ``text`` (the ``index``-th text of the call), by the spec's endpoints' tokenizer."""
    tokenizer = TOKENIZERS[spec.provider.name]  # the flow asks only a provider that has one (core/token_chunks.py)
    body = encode_body(tokenizer.build_body(spec.targets[0], text))

    def read(target: Target, reply: Answer) -> list[str]:
        url = tokenizer.url(target.url)
        return read_answer(spec, target, reply.status, reply.body, tokenizer.parse_tokens, "tokenize answer", url)[1]

    def hint(status: int) -> str:
        if status in (404, 405):
            return (
                "the server does not answer /tokenize beside its rerank route: chunk.tokens needs vLLM's tokenizer "
                "there (a gateway in front of vLLM must pass /tokenize on too); or count words (chunk.words)"
            )
        return status_hint(spec.provider, status)

    return (
        yield from attempts(
            spec,
            body,
            lambda target: tokenizer.url(target.url),
            read,
            deadline,
            stats,
            pool,
            clock,
            what=f"tokenize retry %d of %d for text {index}",
            counter="tokenize_requests",
            timer=None,  # the step's wall time is tokenize_seconds; service_seconds stays the rerank's
            hint=hint,
        )
    )
