"""Fixtures: upstream test doubles and polystack served in-process (the real
llama.cpp server, ``llama_server``, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support import serve_stack

from .doubles import FakeOllama, FakeOpenAIUpstream


@pytest.fixture
async def upstream():
    server = await FakeOpenAIUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def ollama():
    server = await FakeOllama().start()
    yield server
    await server.stop()


@pytest.fixture
def serve(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    return lambda providers_yaml, models_yaml="": serve_stack(tmp_path, providers_yaml, models_yaml)


