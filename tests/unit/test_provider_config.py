"""The providers' configuration: milvus.yaml's sections parsed (every error names its key path), params filled
(never over what the request carries), secrets never shown, and the loader (file, mapping, VLLM_RANKER_CONFIG)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from vllm_ranker import Function, FunctionType, RerankParamError
from vllm_ranker.core.provider_config import EMPTY, ProviderConfig, ProviderConfigError
from vllm_ranker.provider_settings import CONFIG_ENV, load_provider_config

KEY = "sk-file-0123456789"
ENV_KEY = "sk-env-9876543210"

# A whole milvus.yaml's shape: unrelated sections, Milvus's default empty credentials and an unserved provider.
MILVUS_YAML = f"""
etcd:
  endpoints: localhost:2379
proxy:
  port: 19530
credential:
  aksk1:
    access_key_id:
    secret_access_key:
  apikey1:
    apikey: {KEY}
  empty:
    apikey:
function:
  textEmbedding:
    providers:
      openai:
        credential: nowhere
  rerank:
    model:
      providers:
        cohere:
          credential: apikey1
          url: http://127.0.0.1:9/v2/rerank
          enable: true
        vllm:
          url: http://127.0.0.1:8000
        tei:
          enable: false
        zilliz:
          anything: at all
"""


def doc(**providers: Any) -> dict[str, Any]:
    return {
        "credential": {"apikey1": {"apikey": KEY}},
        "function": {"rerank": {"model": {"providers": providers}}},
    }


def parsed(tmp_path: Path, text: str = MILVUS_YAML, environ: dict[str, str] | None = None) -> ProviderConfig:
    path = tmp_path / "milvus.yaml"
    path.write_text(text)
    return load_provider_config(path, environ or {})


def test_a_whole_milvus_yaml(tmp_path: Path) -> None:
    config = parsed(tmp_path)
    cohere = config.resolved("cohere")
    assert cohere.enabled and cohere.url == "http://127.0.0.1:9/v2/rerank" and cohere.credential == "apikey1"
    assert cohere.api_key is not None and cohere.api_key.reveal() == KEY
    assert cohere.key_source == "credential.apikey1.apikey"
    assert config.resolved("vllm").url == "http://127.0.0.1:8000" and config.resolved("vllm").api_key is None
    assert not config.resolved("tei").enabled
    assert "zilliz" not in config.providers  # Milvus's own provider: its section is the backend's
    assert set(config.credentials) == {"apikey1", "empty"}  # aksk1 is not an apikey credential


def test_fill_takes_what_the_request_does_not_carry() -> None:
    config = ProviderConfig.from_mapping(doc(cohere={"credential": "apikey1", "url": "https://co.example"}), {})
    filled = config.fill({"Provider": "Cohere", "model_name": "m"}, chain=False)
    assert filled == {"Provider": "Cohere", "model_name": "m", "credential": KEY, "endpoint": "https://co.example"}
    params = {"provider": "cohere", "API_KEY": "own", "Endpoint": "http://own:1"}
    assert config.fill(params, chain=False) == params  # the request's own key and endpoint win
    assert config.fill({"provider": "cohere", "endpoints": ["http://a:1"]}, chain=True)["endpoints"] == ["http://a:1"]
    assert config.fill({"provider": "cohere", "endpoint": ""}, chain=False)["endpoint"] == "https://co.example"
    assert config.fill({"reranker": "model"}, chain=False) == {"reranker": "model"}  # the spec refuses it
    assert EMPTY.fill({"provider": "vllm"}, chain=True) == {"provider": "vllm"}


def test_a_configured_credential_outranks_the_environment_which_is_read_live() -> None:
    environ = {"MILVUS_COHERE_API_KEY": ENV_KEY}
    config = ProviderConfig.from_mapping(doc(cohere={"credential": "apikey1"}), environ)
    assert config.fill({"provider": "cohere"}, chain=False)["credential"] == KEY  # Milvus: milvus.yaml > env
    only_env = ProviderConfig.from_mapping(None, environ)
    assert only_env.fill({"provider": "cohere"}, chain=True)["credential"] == ENV_KEY
    environ["MILVUS_COHERE_API_KEY"] = "changed"
    assert only_env.fill({"provider": "cohere"}, chain=True)["credential"] == "changed"


def test_a_credential_param_naming_an_entry_is_resolved() -> None:
    config = ProviderConfig.from_mapping({"credential": {"apikey1": {"apikey": KEY}, "blank": {"apikey": None}}}, {})
    assert config.fill({"provider": "cohere", "credential": "apikey1"}, chain=True)["credential"] == KEY
    assert config.fill({"provider": "cohere", "credential": "raw-key"}, chain=False)["credential"] == "raw-key"
    assert "credential" not in config.fill({"provider": "cohere", "credential": "blank"}, chain=False)
    with pytest.raises(RerankParamError) as caught:
        config.fill({"provider": "cohere", "credential": "sk-a-real-key"}, chain=True)
    assert "rerank_model credentials must be configured on the server" in str(caught.value)
    assert "sk-a-real-key" not in str(caught.value) and "apikey1" in str(caught.value)


def test_a_disabled_provider_is_refused_with_milvus_message() -> None:
    config = ProviderConfig.from_mapping(doc(vllm={"enable": "False"}), {})
    for chain in (False, True):
        with pytest.raises(RerankParamError, match=r"rerank provider: \[vllm\] is disabled.*providers\.vllm\.enable"):
            config.fill({"provider": "VLLM", "endpoint": "http://own:1"}, chain=chain)


def test_apply_builds_a_new_function_only_when_something_changes() -> None:
    function = Function("r", FunctionType.RERANK, ["document"], params={"reranker": "model", "provider": "vllm"})
    assert EMPTY.apply(function) is function
    config = ProviderConfig.from_mapping(doc(vllm={"url": "http://127.0.0.1:8000", "credential": "apikey1"}), {})
    filled = config.apply(function)
    assert filled is not function and type(filled) is Function and filled.input_field_names == ["document"]
    assert filled.params["endpoint"] == "http://127.0.0.1:8000" and function.params.get("endpoint") is None
    assert KEY not in repr(filled) and KEY not in str(filled)
    assert ProviderConfig.from_mapping(doc(cohere={}), {}).apply(function) is function


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (["a list"], "the configuration is a list, not a mapping"),
        ({"function": "x"}, "function: give a mapping"),
        ({"function": {"rerank": {"model": {"providers": []}}}}, "function.rerank.model.providers: give a mapping"),
        (doc(vllm=KEY), "function.rerank.model.providers.vllm: give a mapping with credential, enable, url, not a str"),
        (doc(vllm={"enable": "maybe"}), "function.rerank.model.providers.vllm.enable: 'maybe' is not true or false"),
        (doc(vllm={"url": 8000}), "function.rerank.model.providers.vllm.url: give the URL as a string, not int"),
        (doc(vllm={"url": "localhost:8000"}), "providers.vllm.url: [localhost:8000] is not a valid http/https link"),
        (doc(vllm={"url": f"ftp://u:{KEY}@h"}), "[<a URL with credentials>] is not a valid http/https link"),
        (
            doc(cohere={"credential": "apikey9"}),
            "function.rerank.model.providers.cohere.credential: apikey9 is not a apikey crediential, can not find "
            "key: apikey9.apikey; add credential.apikey9.apikey to the file, or name one of its apikey credentials "
            "(apikey1)",
        ),
        ({"credential": "x"}, "credential: give a mapping of named credentials, not str"),
        ({"credential": {"k": {"apikey": ["x"]}}}, "credential.k.apikey: give the key as a string, not list"),
    ],
)
def test_every_error_names_its_key_path(document: Any, message: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        ProviderConfig.from_mapping(document, {})
    assert message in str(caught.value) and KEY not in str(caught.value)


def test_the_key_is_never_shown(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    text = MILVUS_YAML.replace("          enable: true\n", "          enable: true\n          credentail: typo\n")
    with caplog.at_level(logging.WARNING, logger="vllm_ranker"):
        config = parsed(tmp_path, text, {"MILVUS_VLLM_API_KEY": ENV_KEY})
    assert "providers.cohere.credentail" in caplog.text  # a key we do not read: said, never silently dropped
    shown = " ".join(
        [repr(config), str(config), repr(config.resolved("cohere")), repr(config.credentials), caplog.text]
    )
    assert KEY not in shown and ENV_KEY not in shown
    assert "key from credential.apikey1.apikey" in repr(config)
    assert "key from environment variable MILVUS_VLLM_API_KEY" in repr(config)


def test_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "milvus.yaml"
    path.write_text(MILVUS_YAML)
    assert load_provider_config(None, {CONFIG_ENV: str(path)}).resolved("cohere").url == "http://127.0.0.1:9/v2/rerank"
    assert load_provider_config(None, {}).providers == {}
    given = ProviderConfig.from_mapping(doc(), {})
    assert load_provider_config(given) is given
    assert load_provider_config(doc(vllm={"url": "http://h:1"}), {}).resolved("vllm").url == "http://h:1"
    with pytest.raises(ProviderConfigError, match=r"rerank_config: give a milvus.yaml-style file's path"):
        load_provider_config(3, {})  # type: ignore[arg-type]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProviderConfigError, match=rf"{missing} \(named by {CONFIG_ENV}\): no such file"):
        load_provider_config(None, {CONFIG_ENV: str(missing)})
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"credential:\n  apikey1: {{apikey: {KEY}\n")
    with pytest.raises(ProviderConfigError) as caught:
        load_provider_config(bad, {})
    assert str(caught.value).startswith(f"{bad}: not valid YAML at line") and KEY not in str(caught.value)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("function:\n  rerank:\n    model:\n      providers:\n        tei:\n          enable: 2\n")
    with pytest.raises(ProviderConfigError, match=rf"^{wrong}: function.rerank.model.providers.tei.enable: 2 is not"):
        load_provider_config(wrong, {})
