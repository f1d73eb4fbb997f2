"""The running stack: providers started in order, routing tables, routers."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from . import tracing
from ._trace_stack import instrument_provider, instrument_router
from .apis import api_names, get_protocol, iter_webmethods
from .apis.inspect import HealthInfo, ListProvidersResponse, ListRoutesResponse, ProviderInfo, RouteInfo, VersionInfo
from .errors import StackError
from .fetcher import URLFetcher
from .registry import ProviderContext
from .resolver import ALWAYS_SERVED, SERVED_WITH, Plan, check_protocol, check_provider, data_dir
from .routing import BY_ROUTED_API, ROUTINGS, ResourceTable
from .routing.routers import InferenceRouter, not_served
from .apis.jobs import ListJobsResponse
from .errors import BadRequestError
from .jobs import Job, JobRunner, JobStatus, JobStore
from .storage import KVStore, SqliteStoreConfig, SqlStore, kvstore_from_config, sqlstore_from_config

log = logging.getLogger(__name__)


@dataclass
class StartedProvider:
    api: str
    provider_id: str
    provider_type: str
    package: str
    impl: Any
    #: the operations of ``api`` it serves (its spec's ``serves``); None: all
    operations: frozenset[str] | None = None

    def serves(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


class Stack:
    """Everything a served route calls into; ``impls[api]`` serves ``api``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.providers: list[StartedProvider] = []
        self.tables: dict[str, ResourceTable] = {}
        self.impls: dict[str, Any] = {}
        self.metadata_store: KVStore | None = None
        self.job_store: SqlStore | None = None
        self.jobs: JobRunner | None = None
        self.fetcher = URLFetcher(plan.loaded.config.server.fetch)
        self.started = False
        #: routers' and providers' calls are spans (only when a telemetry provider is configured)
        self.traced = any(p.api == "telemetry" for p in plan.providers)

    @property
    def served_apis(self) -> list[str]:
        return served_apis(self.plan)

    async def start(self, *, begin_background: bool = True) -> None:
        """Start every provider. ``begin_background=False`` leaves the call of
        ``begin_background()`` (providers' ``after_start``) to the caller:
        ``polystack run`` makes it once the port is open."""
        cfg = self.plan.loaded.config
        home = data_dir(cfg.image_name)
        store_config = cfg.metadata_store or SqliteStoreConfig()
        self.metadata_store = await kvstore_from_config(store_config, default_path=home / "registry.db")
        # jobs live beside the registry: in its PostgreSQL database, or jobs.db next to registry.db
        self.job_store = await sqlstore_from_config(store_config, default_path=home / "jobs.db")
        self.jobs = JobRunner(JobStore(self.job_store))
        await self.jobs.start()
        self.impls["inspect"] = StackInspector(self)
        self.impls["jobs"] = StackJobs(self)
        # every table exists from the start (empty until its API's providers
        # start), so providers can depend on any of them
        for table_api, routing in ROUTINGS.items():
            table = routing.table(self.metadata_store, {}, routed_api=routing.routed_api)
            check_protocol(table, table_api, f"the {table_api} table")
            self.tables[table_api] = self.impls[table_api] = table
        for table_api, routing in ROUTINGS.items():
            for dependency in routing.table_dependencies:  # e.g. vector DBs name an embedding model
                setattr(self.tables[table_api], dependency, self.tables[dependency])
        try:
            await self._start_providers(home)
            for routing in ROUTINGS.values():
                if routing.routed_api not in self.impls:
                    await self._sync_table(routing)
        except BaseException:
            await self.shutdown()
            raise
        self.started = True
        if begin_background:
            self.begin_background()

    def begin_background(self) -> None:
        """Let providers begin background work (loading models) now, not while
        the providers after them start: that work holds the GIL for seconds
        (torch's import) and would slow down every start-up behind it."""
        for started in self.providers:
            hook = getattr(started.impl, "after_start", None)
            if hook is None:
                continue
            try:
                result = hook()
                if inspect.isawaitable(result):  # nothing would await it
                    getattr(result, "close", lambda: None)()
                    log.error("provider %s: after_start must be a plain def, not async", started.provider_id)
            except Exception:  # background work reports through health(); it must not stop the server
                log.exception("provider %s failed to begin its background work", started.provider_id)

    async def _start_providers(self, home) -> None:
        for planned in self.plan.providers:
            spec = planned.registered.spec
            context = ProviderContext(
                provider_id=planned.provider_id,
                spec=spec,
                image_name=self.plan.image_name,
                data_dir=home,
                deps={d: self.impls[d] for d in (*spec.api_dependencies, *spec.optional_api_dependencies) if d in self.impls},
                fetcher=self.fetcher,
                jobs=self.jobs,
            )
            impl = await spec.factory(planned.config, context)
            self.providers.append(StartedProvider(planned.api, planned.provider_id, planned.provider_type,
                                                  planned.registered.package, impl, spec.operations()))
            check_provider(impl, planned.api, f"provider {planned.provider_id!r} ({planned.provider_type})",
                           spec.operations())
            await self._expose(planned.api)

    async def _expose(self, api: str) -> None:
        """After the last provider of ``api`` starts, serve it directly or
        through its router, and bring its table up to date."""
        mine = [p for p in self.providers if p.api == api]
        if api in self.impls or len(mine) != sum(1 for p in self.plan.providers if p.api == api):
            return
        routing = BY_ROUTED_API.get(api)
        companions = [c for c, host in SERVED_WITH.items() if host == api]
        if self.traced:
            for p in mine:
                instrument_provider(p.impl, api, companions, p.provider_id, p.provider_type)
        if routing is None:
            self.impls[api] = _with_declared_operations(mine[0])
            return
        table = self.tables[routing.table_api]
        table.providers.update({p.provider_id: p.impl for p in mine})
        await self._sync_table(routing)
        router = self.impls[api] = routing.make_router(table)
        check_protocol(router, api, f"the {api} router")
        if isinstance(router, InferenceRouter):
            router.limits = self.plan.loaded.config.server.limits
        if self.traced:
            instrument_router(router, api, companions)
        for companion in companions:
            self.impls[companion] = self.impls[api]

    async def _sync_table(self, routing) -> None:
        """Load a table and make its run-config resources match the file."""
        table = self.tables[routing.table_api]
        await table.initialize()
        wanted = []
        for item in getattr(self.plan.loaded.config, routing.config_section) if routing.config_section else ():
            try:
                wanted.append(table.from_input(item))
            except StackError as exc:  # plan() checked these; a provider may still refuse
                log.error("skipping a %s from the run config: %s", table.kind, exc)
        await table.reconcile(wanted)

    async def shutdown(self) -> None:
        if self.jobs is not None:  # running jobs stop (cancelled) before the providers they use
            await self.jobs.shutdown()
            self.jobs = None
        for started in reversed(self.providers):
            closer = getattr(started.impl, "shutdown", None)
            if closer is None:
                continue
            try:
                await closer()
            except Exception:  # one failing provider must not keep the others open
                log.exception("provider %s failed to shut down", started.provider_id)
        self.providers.clear()
        self.started = False
        if self.job_store is not None:
            await self.job_store.close()
            self.job_store = None
        if self.metadata_store is not None:
            await self.metadata_store.close()
            self.metadata_store = None


def _with_declared_operations(started: StartedProvider) -> Any:
    """The provider serving an unrouted API alone, its undeclared operations answering 501."""
    if started.operations is not None:
        for name, _wm, _fn in iter_webmethods(get_protocol(started.api)):
            if name not in started.operations and not hasattr(started.impl, name):
                setattr(started.impl, name, not_served(started.provider_type, started.api, name))
    return started.impl


def served_apis(plan: Plan) -> list[str]:
    """APIs whose routes the server exposes for ``plan``, sorted."""
    apis = set(plan.apis) | set(ALWAYS_SERVED)
    apis |= {BY_ROUTED_API[a].table_api for a in plan.apis if a in BY_ROUTED_API}
    apis |= {companion for companion, host in SERVED_WITH.items() if host in plan.apis}
    return sorted(a for a in apis if a in api_names())


class StackJobs:
    """The Jobs API of a running stack: its job store, which every replica shares."""

    MAX_LIMIT = 1000

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def list_jobs(self, kind: str | None = None, status: JobStatus | None = None, limit: int = 100,
                        offset: int = 0) -> ListJobsResponse:
        if not 1 <= limit <= self.MAX_LIMIT:
            raise BadRequestError(f"must be from 1 to {self.MAX_LIMIT}, got {limit}", field="limit")
        if offset < 0:
            raise BadRequestError(f"must be 0 or more, got {offset}", field="offset")
        # one more than asked: whether there is a next page
        jobs = await self.stack.jobs.store.list(kind, status, limit + 1, offset, with_results=False)
        return ListJobsResponse(data=jobs[:limit], has_more=len(jobs) > limit)

    async def get_job(self, job_id: str, include_result: bool = True) -> Job:
        job = await self.stack.jobs.store.get(job_id)
        return job if include_result else job.model_copy(update={"result": None})

    async def cancel_job(self, job_id: str) -> Job:
        return await self.stack.jobs.cancel(job_id)

    async def restart_job(self, job_id: str) -> Job:
        return await self.stack.jobs.restart(job_id)


class StackInspector:
    """The Inspect API of a running stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def list_providers(self) -> ListProvidersResponse:
        return ListProvidersResponse(
            data=[ProviderInfo(api=p.api, provider_id=p.provider_id, provider_type=p.provider_type) for p in self.stack.providers]
        )

    async def list_routes(self) -> ListRoutesResponse:
        """Every served route with the provider types that serve its operation
        (a table's routes: every provider of the API it routes)."""
        hosts = {table_api: routing.routed_api for table_api, routing in ROUTINGS.items()} | dict(SERVED_WITH)
        routes = []
        for api in self.stack.served_apis:
            for name, wm, _fn in iter_webmethods(get_protocol(api)):
                if api in hosts:
                    types = [p.provider_type for p in self.stack.providers if p.api == hosts[api]]
                else:
                    types = [p.provider_type for p in self.stack.providers if p.api == api and p.serves(name)]
                routes.append(RouteInfo(route=wm.route, method=wm.method, provider_types=types))
        return ListRoutesResponse(data=sorted(routes, key=lambda r: (r.route, r.method)))

    async def health(self) -> HealthInfo:
        """OK, plus the state of providers that report one (models loading...)."""
        states = {}
        for p in self.stack.providers:
            probe = getattr(p.impl, "health", None)
            if probe is not None:
                states[p.provider_id] = await probe()
        extra = {"providers": states} if states else {}
        if tracing.collector() is not None:  # spans buffered, exported and dropped (buffer full)
            extra["telemetry"] = tracing.collector().stats()
        return HealthInfo(status="OK", **extra)

    async def version(self) -> VersionInfo:
        from . import __version__

        return VersionInfo(version=__version__)
