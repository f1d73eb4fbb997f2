"""docs/providers/remote-*.md document every config key of the remote inference adapters."""

import re
from pathlib import Path

import pytest

from stack.plugins import collect_providers, get_plugin_manager

DOCS = Path(__file__).resolve().parents[4] / "docs" / "providers"
ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)


@pytest.mark.parametrize("provider_type, page", [
    ("remote::openai", "remote-openai.md"),
    ("remote::together", "remote-openai.md"),
    ("remote::fireworks", "remote-openai.md"),
    ("remote::groq", "remote-openai.md"),
    ("remote::vllm", "remote-vllm.md"),
    ("remote::ollama", "remote-ollama.md"),
])
def test_every_config_key_has_a_row(provider_type, page):
    config = collect_providers(get_plugin_manager(load_entry_points=False))[("inference", provider_type)].spec.config
    documented = set(ROW_KEY.findall((DOCS / page).read_text()))
    assert set(config.model_fields) - documented == set()
    assert provider_type in (DOCS / page).read_text()


def test_the_ollama_alias_table_is_documented():
    from providers.remote.inference.ollama._models import OLLAMA_ALIASES

    page = (DOCS / "remote-ollama.md").read_text()
    rows = re.findall(r"^\| `(meta-llama/[^`]+)` \| `([^`]+)` \|(.*)\|$", page, re.MULTILINE)
    documented = {model: (tag, *re.findall(r"`([^`]+)`", rest)) for model, tag, rest in rows}
    assert documented == {a.llama_model: a.provider_model_ids for a in OLLAMA_ALIASES}


@pytest.mark.parametrize("provider_type, page", [
    ("remote::tgi", "remote-tgi.md"),
    ("remote::hf::serverless", "remote-hf-serverless.md"),
    ("remote::hf::endpoint", "remote-hf-endpoint.md"),
    ("remote::sambanova", "remote-sambanova.md"),
    ("remote::nvidia", "remote-nvidia.md"),
    ("remote::cerebras", "remote-cerebras.md"),
])
def test_hosted_pages_document_their_own_keys_and_point_at_the_http_ones(provider_type, page):
    from providers.utils.inference.remote_config import HTTPClientConfig

    config = collect_providers(get_plugin_manager(load_entry_points=False))[("inference", provider_type)].spec.config
    text = (DOCS / page).read_text()
    own = set(config.model_fields) - set(HTTPClientConfig.model_fields)
    assert own - set(ROW_KEY.findall(text)) == set()
    assert set(HTTPClientConfig.model_fields) - set(ROW_KEY.findall((DOCS / "remote-openai.md").read_text())) == set()
    assert "remote-openai.md#config" in text
    assert text.startswith(f"# {provider_type}\n") and "never been run against" in text


@pytest.mark.parametrize("module, table, page", [
    ("providers.remote.inference.sambanova", "SAMBANOVA_ALIASES", "remote-sambanova.md"),
    ("providers.remote.inference.nvidia", "NVIDIA_ALIASES", "remote-nvidia.md"),
    ("providers.remote.inference.cerebras", "CEREBRAS_ALIASES", "remote-cerebras.md"),
])
def test_the_hosted_alias_tables_are_documented(module, table, page):
    import importlib

    aliases = getattr(importlib.import_module(module), table)
    rows = re.findall(r"^\| `(meta-llama/[^`]+)` \| `([^`]+)` \|$", (DOCS / page).read_text(), re.MULTILINE)
    assert dict(rows) == {a.llama_model: a.preferred for a in aliases}
