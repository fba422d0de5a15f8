"""Loading the rerank providers' configuration (core/provider_config.py) from a milvus.yaml-style file.

``load_provider_config`` is what ``MilvusClient(rerank_config=...)``, ``AsyncMilvusClient`` and
``vllm-ranker gateway --config`` call: a ``ProviderConfig`` as it is, a path to a YAML file, a parsed mapping, or
None, meaning the file named by ``VLLM_RANKER_CONFIG`` when that is set, else the environment's provider keys
alone. Secrets come only from that file or the environment and are never echoed: errors name key paths.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vllm_ranker.core.endpoint_policy import EndpointPolicy
from vllm_ranker.core.provider_config import ProviderConfig, ProviderConfigError

# What an outer room (the gateway's --config) may import from here: tests/unit/test_layout.py reads this list.
__all__ = [
    "CONFIG_ENV",
    "ConfigSource",
    "PolicySource",
    "load_provider_config",
    "with_endpoint_policy",
]

CONFIG_ENV = "VLLM_RANKER_CONFIG"
log = logging.getLogger("vllm_ranker")

ConfigSource = ProviderConfig | str | os.PathLike[str] | Mapping[str, Any] | None
PolicySource = EndpointPolicy | Iterable[str] | None


def load_provider_config(source: ConfigSource = None, environ: Mapping[str, str] | None = None) -> ProviderConfig:
    """The providers' configuration from ``source``; a bad file or value raises ``ProviderConfigError`` naming the
    file and the YAML key path."""
    environ = os.environ if environ is None else environ
    if isinstance(source, ProviderConfig):
        return source
    if isinstance(source, Mapping):
        return _checked(ProviderConfig.from_mapping(source, environ), "the rerank_config mapping")
    if source is None:
        named = environ.get(CONFIG_ENV, "").strip()
        if not named:
            return ProviderConfig.from_mapping({}, environ)
        source, origin = named, f" (named by {CONFIG_ENV})"
    else:
        origin = ""
    if not isinstance(source, str | os.PathLike):
        raise ProviderConfigError(
            f"rerank_config: give a milvus.yaml-style file's path, a mapping or a ProviderConfig, not "
            f"{type(source).__name__}"
        )
    path = Path(source)
    document = _read(path, origin)
    try:
        config = ProviderConfig.from_mapping(document, environ)
    except ProviderConfigError as exc:
        raise ProviderConfigError(f"{path}{origin}: {exc}") from None
    return _checked(config, str(path))


def _read(path: Path, origin: str) -> Any:
    import yaml  # only when a file is read: `import vllm_ranker` stays light

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProviderConfigError(f"{path}{origin}: no such file; give the path of a milvus.yaml-style file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ProviderConfigError(f"{path}{origin}: cannot be read ({reason})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # The mark says where; the problem line may hold a key, so the file's text is never quoted.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProviderConfigError(f"{path}{origin}: not valid YAML{where}: {problem}") from None


def _checked(config: ProviderConfig, origin: str) -> ProviderConfig:
    if config.ignored:
        log.warning("%s: ignored (not read by vllm_ranker): %s", origin, ", ".join(config.ignored))
    return config


def with_endpoint_policy(config: ProviderConfig, policy: PolicySource, source: str) -> ProviderConfig:
    """``config`` with ``policy`` (a client's ``endpoint_policy=``: a policy, or its entries) added to the file's;
    None leaves it as it is. A bad entry raises ``ProviderConfigError`` naming it."""
    if policy is None:
        return config
    if not isinstance(policy, EndpointPolicy):
        entries = [policy] if isinstance(policy, str) else list(policy)  # one URL given bare is one entry
        try:
            policy = EndpointPolicy.parse(entries, source=source)
        except ValueError as exc:
            raise ProviderConfigError(str(exc)) from None
    return config.with_policy(config.policy.merged(policy))
