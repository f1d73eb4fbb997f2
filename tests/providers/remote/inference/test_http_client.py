"""The shared upstream client (providers/utils/http.py) as these adapters use it."""

import email.utils
import time

import pytest

from providers.utils.http import HTTPSettings, UpstreamClient, _retry_after, upstream_message
from stack.errors import ConfigError


@pytest.mark.parametrize("body, message", [
    (b'{"error": {"message": "model not found", "type": "invalid_request_error"}}', "model not found"),  # OpenAI, vLLM
    (b'{"error": "model \\"x\\" not found, try pulling it first"}', 'model "x" not found, try pulling it first'),  # Ollama
    (b'{"detail": "Model \'x\' not found", "error": {"type": "NotFoundError", "status": 404}}', "Model 'x' not found"),  # polystack
    (b'{"detail": [{"loc": ["body", "n"], "msg": "too big"}]}', "body.n: too big"),  # FastAPI validation
    (b"upstream connect error or disconnect/reset before headers", "upstream connect error or disconnect/reset before headers"),
    (b"", "(empty body)"),
])
def test_upstream_message_understands_common_error_bodies(body, message):
    assert upstream_message(body) == message


def test_retry_after_in_seconds_ms_and_http_dates():
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after({"retry-after": soon}) <= 31
    assert _retry_after({"retry-after": "whenever"}) is None
    assert _retry_after({}) is None


async def test_missing_ca_bundle_is_a_config_error():
    client = UpstreamClient("https://x/v1", HTTPSettings(tls_verify="/nonexistent/ca.pem"), name="remote::openai (t)")
    with pytest.raises(ConfigError, match="/nonexistent/ca.pem"):
        await client.start()
