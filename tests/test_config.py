"""Run-config loading: env substitution, validation messages, llama-stack configs."""

import textwrap

import pytest

from stack._yaml_env import substitute_env
from stack.config import load_run_config, resolve_config_path
from stack.errors import ConfigError
from tests.support import shared_path


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SET_VAR", "value")
    monkeypatch.setenv("EMPTY_VAR", "")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "text, expected",
    [
        ("${env.SET_VAR}", "value"),
        ("${env.SET_VAR:fallback}", "value"),
        ("${env.UNSET_VAR:fallback}", "fallback"),
        ("${env.EMPTY_VAR:fallback}", "fallback"),
        ("${env.UNSET_VAR:}", ""),
        ("${env.UNSET_VAR:=fallback}", "fallback"),
        ("${env.SET_VAR:=fallback}", "value"),
        ("${env.SET_VAR:+on}", "on"),
        ("${env.UNSET_VAR:+on}", ""),
        ("${env.EMPTY_VAR:+on}", ""),
        ("http://${env.UNSET_VAR:localhost}:${env.SET_VAR}/v1", "http://localhost:value/v1"),
        ("~/.llama/${env.UNSET_VAR:a/b}/x.db", "~/.llama/a/b/x.db"),
        ("no reference", "no reference"),
    ],
)
def test_env_substitution(env, text, expected):
    result, missing = substitute_env({"k": [text]})
    assert result == {"k": [expected]}
    assert missing == []


def test_missing_variable_without_default_is_reported_with_its_path(env):
    _, missing = substitute_env({"providers": {"inference": [{"config": {"api_key": "${env.UNSET_VAR}"}}]}})
    assert missing == [(("providers", "inference", 0, "config", "api_key"), "UNSET_VAR")]


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_missing_variable_error_names_file_line_and_variable(tmp_path, env):
    path = write(tmp_path, """\
        version: '2'
        image_name: t
        providers:
          inference:
          - provider_id: x
            provider_type: remote::x
            config:
              api_key: ${env.UNSET_VAR}
        """)
    [message] = load_run_config(path).env_problems
    assert f"{path}:8 at providers.inference[0].config.api_key" in message
    assert "UNSET_VAR is not set" in message


def test_unknown_key_names_file_line_and_path(tmp_path):
    path = write(tmp_path, """\
        version: '2'
        image_name: t
        models:
        - model_id: m
          modle_type: llm
        """)
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert f"{path}:5 at models[0].modle_type: unknown field" in str(info.value)


def test_wrong_type_names_the_field(tmp_path):
    path = write(tmp_path, "version: '2'\nimage_name: t\nserver:\n  port: many\n")
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert f"{path}:4 at server.port" in str(info.value)


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = write(tmp_path, "version: '2'\nimage_name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(path)


def test_empty_provider_id_switches_a_provider_off(tmp_path, env):
    path = write(tmp_path, """\
        version: '2'
        image_name: t
        providers:
          inference:
          - provider_id: ${env.UNSET_VAR:+vllm}
            provider_type: remote::vllm
          - provider_id: kept
            provider_type: remote::acme
        """)
    config = load_run_config(path).config
    assert [p.provider_id for p in config.providers["inference"]] == ["kept"]


REFERENCE_FILES = ["meta-reference-gpu-run.yaml", "ollama-run-with-safety.yaml", "ollama-run.yaml",
                   "remote-vllm-run.yaml", "together-run.yaml"]


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_llama_stack_reference_configs_parse(name, monkeypatch):
    # the variables these files require without a default
    for var in ("INFERENCE_MODEL", "SAFETY_MODEL", "TOGETHER_API_KEY", "VLLM_URL"):
        monkeypatch.setenv(var, "set-by-test")
    loaded = load_run_config(shared_path("reference", "llama-stack-0.1.0-run-configs", name))
    cfg = loaded.config
    assert cfg.version in ("2", 2)
    assert "inference" in cfg.providers
    assert cfg.metadata_store.type == "sqlite"
    assert all(m.model_id for m in cfg.models)


def test_distribution_names_resolve_to_embedded_files():
    assert resolve_config_path(None).name == "run.yaml"
    assert resolve_config_path("starter").parent.name == "starter"
    with pytest.raises(ConfigError, match="neither a run-config file nor a distribution; distributions: .*starter"):
        resolve_config_path("no-such-distribution")
