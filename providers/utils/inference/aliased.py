"""The provider class of the hosted OpenAI-compatible services (``hosted.py``)."""

from __future__ import annotations

from typing import Any

from stack.apis.models import Model
from stack.errors import BadRequestError

from .model_aliases import AliasTable, naming_field
from .openai_compat import OpenAICompatInference


class AliasedInference(OpenAICompatInference):
    """An OpenAI-compatible upstream that knows the service's names of the Llama models.

    ``served_model`` (from ``serves(config)``): the one model the upstream
    serves (an HF serverless repo), so registering any other is an error
    instead of a silently wrong answer.
    """

    def __init__(self, *, aliases: AliasTable | None = None, config: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliases = aliases
        self.config = config
        self.served_model = self.serves(config)

    def serves(self, config: Any) -> str | None:
        return None

    async def register_model(self, model: Model) -> Model:
        alias = self.aliases.get(model.provider_resource_id) if self.aliases is not None else None
        if alias is not None:
            model = model.model_copy(update={"provider_resource_id": alias.preferred})
        if self.served_model is not None and model.provider_resource_id != self.served_model:
            raise BadRequestError(
                f"{self.provider_type} provider {self.context.provider_id!r} serves only {self.served_model!r}, "
                f"not {model.provider_resource_id!r}", field=naming_field(model))
        return model
