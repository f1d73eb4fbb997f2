"""Llama model ids -> the names a service gives the same models.

llama-stack run configs name models the Hugging Face way
(``meta-llama/Llama-3.2-3B-Instruct``); services name them their own way
(Ollama ``llama3.2:3b-instruct-fp16``, Together ``...-Instruct-Turbo``). A
remote provider whose service does that keeps one ``AliasTable`` and, at
registration, replaces a Llama id in ``provider_resource_id`` with the
service's name. Names that are not Llama ids are the service's own and pass
through untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from stack.apis.models import Model

__all__ = ["LLAMA_MODELS", "AliasTable", "ModelAlias", "naming_field"]

#: Hugging Face repo id -> llama-models descriptor; llama-stack 0.1.0 took either spelling
LLAMA_MODELS: dict[str, str] = {
    "meta-llama/Llama-3.1-8B-Instruct": "Llama3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct": "Llama3.1-70B-Instruct",
    "meta-llama/Llama-3.1-405B-Instruct-FP8": "Llama3.1-405B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct": "Llama3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct": "Llama3.2-3B-Instruct",
    "meta-llama/Llama-3.2-11B-Vision-Instruct": "Llama3.2-11B-Vision-Instruct",
    "meta-llama/Llama-3.2-90B-Vision-Instruct": "Llama3.2-90B-Vision-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct": "Llama3.3-70B-Instruct",
    "meta-llama/Llama-Guard-3-1B": "Llama-Guard-3-1B",
    "meta-llama/Llama-Guard-3-8B": "Llama-Guard-3-8B",
    "meta-llama/Llama-Guard-3-11B-Vision": "Llama-Guard-3-11B-Vision",
}


@dataclass(frozen=True)
class ModelAlias:
    """One Llama model (its Hugging Face id) and the service's names for it, preferred first."""

    llama_model: str
    provider_model_ids: tuple[str, ...]

    @property
    def preferred(self) -> str:
        return self.provider_model_ids[0]


class AliasTable:
    """A provider's aliases, looked up by either spelling of the Llama id."""

    def __init__(self, aliases: Iterable[ModelAlias]) -> None:
        self._aliases = list(aliases)
        self._by_name: dict[str, ModelAlias] = {}
        for alias in self._aliases:
            if alias.llama_model not in LLAMA_MODELS:
                raise ValueError(f"{alias.llama_model!r} is not a Llama model id; known: {', '.join(LLAMA_MODELS)}")
            if not alias.provider_model_ids:
                raise ValueError(f"{alias.llama_model!r} has no provider model id")
            self._by_name[alias.llama_model] = self._by_name[LLAMA_MODELS[alias.llama_model]] = alias

    def get(self, name: str) -> ModelAlias | None:
        """The alias for a Llama model id, or None for any other name."""
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[ModelAlias]:
        return iter(self._aliases)


def naming_field(model: Model) -> str:
    """The registration field that gave ``model`` its provider_resource_id, for error messages."""
    return "model_id" if model.provider_resource_id == model.identifier else "provider_model_id"
