"""Inspect: health, version, providers and routes of the running stack."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._webmethod import webmethod


class ProviderInfo(BaseModel):
    api: str
    provider_id: str
    provider_type: str


class ListProvidersResponse(BaseModel):
    data: list[ProviderInfo]


class RouteInfo(BaseModel):
    route: str
    method: str
    provider_types: list[str]


class ListRoutesResponse(BaseModel):
    data: list[RouteInfo]


class HealthInfo(BaseModel):
    """``status`` is "OK" once the server serves requests; providers that load
    models in the background add their state under ``providers`` (an extra
    field, so clients that know only ``status`` still parse it)."""

    model_config = ConfigDict(extra="allow")

    status: str


class VersionInfo(BaseModel):
    version: str


@runtime_checkable
class Inspect(Protocol):
    @webmethod(route="/v1/inspect/providers", method="GET")
    async def list_providers(self) -> ListProvidersResponse: ...

    @webmethod(route="/v1/inspect/routes", method="GET")
    async def list_routes(self) -> ListRoutesResponse: ...

    @webmethod(route="/v1/health", method="GET")
    async def health(self) -> HealthInfo: ...

    @webmethod(route="/v1/version", method="GET")
    async def version(self) -> VersionInfo: ...


PROTOCOL = Inspect
