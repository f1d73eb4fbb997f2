"""What in-process LLM providers share about the models they were configured with."""

from __future__ import annotations

from collections.abc import Collection

from stack.apis.models import Model, ModelType
from stack.errors import BadRequestError


def accept_configured_llm(model: Model, configured: Collection[str], provider: str) -> Model:
    """The routing table's register hook: an LLM this provider's config lists."""
    if model.model_type != ModelType.llm:
        raise BadRequestError(f"{provider} serves LLMs only", field="model_type")
    if model.provider_resource_id not in configured:
        known = ", ".join(repr(m) for m in sorted(configured)) or "none"
        raise BadRequestError(
            f"{model.provider_resource_id!r} is not a model of this {provider} provider; configured: {known}",
            field="provider_model_id",
        )
    return model
