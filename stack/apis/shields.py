"""Shields: the registry of safety shields and who serves them."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._resource import Resource
from ._webmethod import webmethod


class Shield(Resource):
    """A safety shield that checks messages (e.g. Llama Guard)."""

    type: Literal["shield"] = "shield"
    params: dict[str, Any] | None = None

    @property
    def shield_id(self) -> str:
        return self.identifier

    @property
    def provider_shield_id(self) -> str:
        return self.provider_resource_id


class ListShieldsResponse(BaseModel):
    data: list[Shield]


class ShieldInput(BaseModel):
    """A shield as listed under ``shields:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    shield_id: str = Field(description="Id clients use for the shield")
    provider_id: str | None = Field(
        default=None, description="Safety provider that runs it; may be omitted with one provider"
    )
    provider_shield_id: str | None = Field(
        default=None, description="The provider's own name for it; defaults to shield_id"
    )
    params: dict[str, Any] | None = Field(default=None, description="Provider-specific settings")


@runtime_checkable
class Shields(Protocol):
    @webmethod(route="/v1/shields", method="GET")
    async def list_shields(self) -> ListShieldsResponse: ...

    @webmethod(route="/v1/shields/{identifier}", method="GET")
    async def get_shield(self, identifier: str) -> Shield | None: ...

    @webmethod(route="/v1/shields", method="POST")
    async def register_shield(
        self,
        shield_id: str,
        provider_shield_id: str | None = None,
        provider_id: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Shield: ...


PROTOCOL = Shields
