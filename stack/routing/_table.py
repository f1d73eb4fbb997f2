"""A resource registry persisted in the metadata store, shared by every routing table."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ..apis._resource import Resource
from ..errors import BadRequestError, ConflictError, NotFoundError, StackError
from ..storage import KVStore

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
Source = Literal["run_config", "api"]

#: how long a cached entry is trusted before the store is read again; bounds
#: how long a replica serves a resource another replica unregistered
CACHE_TTL_SECONDS = 1.0


@dataclass
class _Entry(Generic[R]):
    resource: R
    source: Source
    requested: R  # what was asked for, before the provider's hook filled it in
    created: int
    loaded_at: float = field(default_factory=time.monotonic)


class ResourceTable(Generic[R]):
    """Registered resources of one kind and the provider that owns each.

    Entries live in the metadata store under ``registry:<kind>:<identifier>``
    with their source ("run_config" or "api"), and in an in-process cache for
    the request path, trusted for ``CACHE_TTL_SECONDS``: replicas sharing one
    store see each other's changes within that time. Changes always read the
    store first.
    """

    kind: str = "resource"
    resource_cls: type[R]

    def __init__(self, store: KVStore, providers: dict[str, Any], *, routed_api: str) -> None:
        self.store = store
        self.providers = providers
        self.routed_api = routed_api
        self._cache: dict[str, _Entry[R]] = {}
        self._reads: dict[str, asyncio.Future] = {}  # re-reads in flight, one per identifier
        self._lock = asyncio.Lock()
        #: what this process's providers were told of, by identifier: another replica may
        #: register a resource after this one started, and its provider must hear of it
        #: (open the table, load the index) before it serves the resource here
        self._announced: dict[str, R] = {}
        self._announcing = asyncio.Lock()

    # -- persistence ---------------------------------------------------------

    def _key(self, identifier: str) -> str:
        return f"registry:{self.kind}:{identifier}"

    def _decode(self, value: str) -> _Entry[R]:
        record = json.loads(value)
        resource = self.resource_cls.model_validate(record["resource"])
        requested = self.resource_cls.model_validate(record["requested"]) if "requested" in record else resource
        return _Entry(resource, record["source"], requested, record.get("created", 0))

    async def _save(self, entry: _Entry[R]) -> None:
        record = {
            "source": entry.source,
            "created": entry.created,
            "resource": entry.resource.model_dump(mode="json"),
            "requested": entry.requested.model_dump(mode="json"),
        }
        await self.store.set(self._key(entry.resource.identifier), json.dumps(record))
        self._cache[entry.resource.identifier] = entry

    async def _read(self, identifier: str) -> _Entry[R] | None:
        """The entry as the store has it now (and refresh the cache)."""
        value = await self.store.get(self._key(identifier))
        if value is None:
            self._cache.pop(identifier, None)
            return None
        entry = self._cache[identifier] = self._decode(value)
        return entry

    async def _load_all(self) -> dict[str, _Entry[R]]:
        entries = {}
        for _key, value in await self.store.items(f"registry:{self.kind}:"):
            entry = self._decode(value)
            entries[entry.resource.identifier] = entry
        return entries

    async def initialize(self) -> None:
        """Load the registry; providers hear again of the resources registered
        through the API, so state they keep in memory survives a restart."""
        self._cache = await self._load_all()
        for entry in list(self._cache.values()):
            if entry.source != "api" or not self._served(entry):
                continue
            try:
                await self._provider_accepts(entry.requested)
            except StackError as exc:
                log.error("provider %r no longer accepts %s %r: %s", entry.resource.provider_id, self.kind,
                          entry.resource.identifier, exc)
            else:
                self._announced[entry.resource.identifier] = entry.requested

    def _served(self, entry: _Entry[R] | None) -> bool:
        return entry is not None and entry.resource.provider_id in self.providers

    def created(self, identifier: str) -> int:
        """Unix time the resource was first registered (0 if unknown)."""
        entry = self._cache.get(identifier)
        return entry.created if entry else 0

    # -- queries ---------------------------------------------------------------

    async def list(self) -> list[R]:
        self._cache = await self._load_all()
        return [e.resource for e in self._cache.values() if self._served(e)]

    async def get(self, identifier: str) -> R:
        entry = self._cache.get(identifier)
        if entry is None or time.monotonic() - entry.loaded_at > CACHE_TTL_SECONDS:
            entry = await self._shared_read(identifier)
        if not self._served(entry):
            raise NotFoundError(self.kind.replace("_", " ").capitalize(), identifier, await self._known())
        told = self._announced.get(identifier)
        if told is not entry.requested:
            if told != entry.requested:
                await self._announce(entry)
            else:  # the same, re-read: remembered as this object, so the next request skips the comparison
                self._announced[identifier] = entry.requested
        return entry.resource

    async def _shared_read(self, identifier: str) -> _Entry[R] | None:
        """``_read``, once for all the requests that find the entry stale at the same time
        (under load, every request in flight would otherwise queue a read of its own)."""
        pending = self._reads.get(identifier)
        if pending is None:
            pending = self._reads[identifier] = asyncio.ensure_future(self._read(identifier))

            def forget(done: asyncio.Future) -> None:
                if self._reads.get(identifier) is done:
                    del self._reads[identifier]
                if not done.cancelled():
                    done.exception()  # retrieved: each waiter gets it raised
            pending.add_done_callback(forget)
        # shielded: a waiter that is cancelled (its client left) leaves the read to the others
        return await asyncio.shield(pending)

    async def _announce(self, entry: _Entry[R]) -> None:
        """Tell the provider of a resource registered (or changed) by another
        replica, as a restart would; its refusal is the caller's error."""
        async with self._announcing:
            if self._announced.get(entry.resource.identifier) == entry.requested:
                return  # a concurrent request announced it meanwhile
            await self._provider_accepts(entry.requested)
            self._announced[entry.resource.identifier] = entry.requested

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
        """Register ``resource``. The same request again returns what is there;
        the same id with other settings is a 409. Run-config resources replace
        their earlier run-config versions, and an entry whose provider left the
        config no longer holds its id."""
        async with self._lock:
            existing = await self._read(resource.identifier)
            if self._served(existing) and not (source == "run_config" and existing.source == "run_config"):
                if existing.requested == resource:
                    return existing.resource
                raise ConflictError(self._conflict_message(existing.resource, resource))
            await self._check_before_save(resource)
            accepted = await self._provider_accepts(resource)
            created = existing.created if existing else int(time.time())
            await self._save(_Entry(accepted, source, resource, created))
            self._announced[resource.identifier] = resource
            return accepted

    async def _check_before_save(self, resource: R) -> None:
        """Subclasses refuse a registration here, before anything is stored."""

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
            await self._remove(await self.get(identifier))

    async def _remove(self, resource: R) -> None:
        """Tell the owning provider (if it is configured), then forget."""
        provider = self.providers.get(resource.provider_id)
        hook = getattr(provider, f"unregister_{self.kind}", None) if provider is not None else None
        if hook is not None:
            await hook(resource)
        await self._drop(resource.identifier)

    async def _drop(self, identifier: str) -> None:
        """Forget ``identifier`` (store and cache) without asking its provider."""
        await self.store.delete(self._key(identifier))
        self._cache.pop(identifier, None)
        self._announced.pop(identifier, None)

    async def reconcile(self, wanted: list[R]) -> None:
        """Make the run-config resources match ``wanted``: register new or changed
        ones and drop those that left the file. API-registered ones stay."""
        wanted_ids = {r.identifier for r in wanted}
        for identifier, entry in (await self._load_all()).items():
            if entry.source == "run_config" and identifier not in wanted_ids:
                log.info("removing %s %r: no longer in the run config", self.kind, identifier)
                try:
                    await self._remove(entry.resource)
                except StackError as exc:
                    log.error("provider refused to drop %s %r: %s", self.kind, identifier, exc)
                    await self._drop(identifier)
        for resource in wanted:
            try:
                await self.register(resource, source="run_config")
            except StackError as exc:
                # one bad resource must not keep the whole stack from starting
                log.error("could not register %s %r from the run config: %s", self.kind, resource.identifier, exc)
