"""Fixtures of the telemetry provider tests."""

from __future__ import annotations

import pytest

from tests.providers.remote.inference.doubles import FakeOpenAIUpstream


@pytest.fixture
async def upstream():
    """An OpenAI-compatible test double on loopback (usage: 5 prompt, 4 completion tokens)."""
    fake = FakeOpenAIUpstream()
    await fake.start()
    yield fake
    await fake.stop()
