"""The scoring stack fixture of the provider tests (``serve``), for the conformance suite."""

from tests.providers.inline.scoring.conftest import serve  # noqa: F401
