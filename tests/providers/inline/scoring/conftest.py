"""A scoring stack served in-process, with the test doubles' plugin."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from tests.support import app_from_yaml, serve_app

from .doubles import InMemoryRows, ScriptedJudge, plugin_manager


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """``async with serve(run_yaml) as client``: the stack of ``run_yaml`` (built-ins and the doubles)."""
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    ScriptedJudge.instances.clear()
    InMemoryRows.instances.clear()

    @asynccontextmanager
    async def serving(text: str):
        async with serve_app(app_from_yaml(tmp_path, text, plugin_manager())) as client:
            yield client

    return serving
