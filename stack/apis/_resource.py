"""Fields every registered resource (model, shield, vector DB, ...) shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Resource(BaseModel):
    """A resource that the routing tables persist and route by ``identifier``.

    ``provider_resource_id`` is the provider's own name for it (the upstream
    model name, say); ``provider_id`` is the run-config provider that owns it.
    """

    model_config = ConfigDict(protected_namespaces=())

    identifier: str = Field(description="Unique id of the resource in this stack")
    provider_resource_id: str = Field(description="The provider's own id for it")
    provider_id: str = Field(description="Run-config provider_id that serves it")
    type: str
