"""Synthetic data generation: generate and filter dialog data with a model."""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ._webmethod import webmethod
from .inference import Message


class FilteringFunction(str, Enum):
    """How generated samples are filtered by score."""

    none = "none"
    random = "random"
    top_k = "top_k"
    top_p = "top_p"
    top_k_top_p = "top_k_top_p"
    sigmoid = "sigmoid"


class SyntheticDataGenerationResponse(BaseModel):
    """The generated (prompt, response, score) rows that passed the filter."""

    synthetic_data: list[dict[str, Any]]
    statistics: dict[str, Any] | None = None


@runtime_checkable
class SyntheticDataGeneration(Protocol):
    @webmethod(route="/v1/synthetic-data-generation/generate", method="POST")
    async def synthetic_data_generate(
        self,
        dialogs: list[Message],
        filtering_function: FilteringFunction,
        model: str | None = None,
    ) -> SyntheticDataGenerationResponse: ...


PROTOCOL = SyntheticDataGeneration
