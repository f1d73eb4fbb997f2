import pytest

from tests.support import build_tiny_llama


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny Llama checkpoint (config, weights, a tokenizer trained here) shared by the post-training tests."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
