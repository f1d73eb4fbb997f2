"""A resource registry persisted in the metadata store, shared by every routing table."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Generic, Literal, TypeVar

from ..apis._resource import Resource
from ..errors import BadRequestError, ConflictError, NotFoundError, StackError
from ..storage import KVStore

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
Source = Literal["run_config", "api"]


class ResourceTable(Generic[R]):
    """Registered resources of one kind and the provider that owns each.

    Entries live in the metadata store under ``registry:<kind>:<identifier>``
    with their source ("run_config" or "api"), and in an in-process cache for
    the request path. A miss re-reads the store, so a resource registered
    through another replica that shares the store is found.
    """

    kind: str = "resource"
    resource_cls: type[R]

    def __init__(self, store: KVStore, providers: dict[str, Any], *, routed_api: str) -> None:
        self.store = store
        self.providers = providers
        self.routed_api = routed_api
        self._cache: dict[str, tuple[R, Source]] = {}
        self._lock = asyncio.Lock()

    # -- persistence ---------------------------------------------------------

    def _key(self, identifier: str) -> str:
        return f"registry:{self.kind}:{identifier}"

    def _decode(self, value: str) -> tuple[R, Source]:
        record = json.loads(value)
        return self.resource_cls.model_validate(record["resource"]), record["source"]

    async def _save(self, resource: R, source: Source) -> None:
        record = {"source": source, "resource": resource.model_dump(mode="json")}
        await self.store.set(self._key(resource.identifier), json.dumps(record))
        self._cache[resource.identifier] = (resource, source)

    async def _load_all(self) -> dict[str, tuple[R, Source]]:
        entries = {}
        for _key, value in await self.store.items(f"registry:{self.kind}:"):
            resource, source = self._decode(value)
            entries[resource.identifier] = (resource, source)
        return entries

    async def initialize(self) -> None:
        self._cache = await self._load_all()

    # -- queries ---------------------------------------------------------------

    async def list(self) -> list[R]:
        self._cache = await self._load_all()
        return [r for r, _ in self._cache.values() if r.provider_id in self.providers]

    async def get(self, identifier: str) -> R:
        entry = self._cache.get(identifier)
        if entry is None:
            value = await self.store.get(self._key(identifier))
            if value is not None:
                entry = self._decode(value)
                self._cache[identifier] = entry
        if entry is None or entry[0].provider_id not in self.providers:
            raise NotFoundError(self.kind.replace("_", " ").capitalize(), identifier, await self._known())
        return entry[0]

    async def lookup(self, identifier: str) -> tuple[R, Any]:
        """The resource and the provider instance that serves it."""
        resource = await self.get(identifier)
        return resource, self.providers[resource.provider_id]

    async def _known(self) -> list[str]:
        return [r.identifier for r in await self.list()]

    # -- changes ---------------------------------------------------------------

    def pick_provider(self, provider_id: str | None) -> str:
        """The provider to own a new resource; automatic when only one serves the API."""
        if provider_id is not None:
            if provider_id not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise BadRequestError(
                    f"no {self.routed_api} provider {provider_id!r}; configured: {known}", field="provider_id"
                )
            return provider_id
        if len(self.providers) == 1:
            return next(iter(self.providers))
        if not self.providers:
            raise BadRequestError(f"this stack has no {self.routed_api} provider to register a {self.kind} with")
        raise BadRequestError(
            f"required when several {self.routed_api} providers are configured: {', '.join(sorted(self.providers))}",
            field="provider_id",
        )

    async def register(self, resource: R, *, source: Source = "api") -> R:
        """Register ``resource``; the same id with other settings is a 409."""
        async with self._lock:
            existing = self._cache.get(resource.identifier)
            if existing is None:
                value = await self.store.get(self._key(resource.identifier))
                existing = self._decode(value) if value is not None else None
            if existing is not None and not (source == "run_config" and existing[1] == "run_config"):
                current = existing[0]
                if current == resource:
                    return current
                raise ConflictError(self._conflict_message(current, resource))
            resource = await self._provider_accepts(resource)
            await self._save(resource, source)
            return resource

    def _conflict_message(self, current: R, wanted: R) -> str:
        if current.provider_id != wanted.provider_id:
            return (
                f"{self.kind} {current.identifier!r} is already registered with provider "
                f"{current.provider_id!r}; unregister it first to move it to {wanted.provider_id!r}"
            )
        return f"{self.kind} {current.identifier!r} is already registered with other settings; unregister it first"

    async def _provider_accepts(self, resource: R) -> R:
        provider = self.providers[resource.provider_id]
        hook = getattr(provider, f"register_{self.kind}", None)
        if hook is None:
            return resource
        accepted = await hook(resource)
        return accepted if accepted is not None else resource

    async def unregister(self, identifier: str) -> None:
        async with self._lock:
            resource = await self.get(identifier)
            hook = getattr(self.providers[resource.provider_id], f"unregister_{self.kind}", None)
            if hook is not None:
                await hook(identifier)
            await self._drop(identifier)

    async def _drop(self, identifier: str) -> None:
        """Forget ``identifier`` (store and cache) without asking its provider."""
        await self.store.delete(self._key(identifier))
        self._cache.pop(identifier, None)

    async def reconcile(self, wanted: list[R]) -> None:
        """Make the run-config resources match ``wanted``: register new or changed
        ones and drop those that left the file. API-registered ones stay."""
        wanted_ids = {r.identifier for r in wanted}
        for identifier, (resource, source) in (await self._load_all()).items():
            if source == "run_config" and identifier not in wanted_ids:
                log.info("removing %s %r: no longer in the run config", self.kind, identifier)
                await self._drop(identifier)
        for resource in wanted:
            try:
                await self.register(resource, source="run_config")
            except StackError as exc:
                # one bad resource must not keep the whole stack from starting
                log.error("could not register %s %r from the run config: %s", self.kind, resource.identifier, exc)
