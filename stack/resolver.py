"""Turn a run config into running providers: plan (validate), then start in order."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .apis import api_names, get_protocol, iter_webmethods
from .config import LoadedConfig, validation_messages
from .errors import BadRequestError, ConfigError, StackError, UnknownProviderError
from .registry import RegisteredProvider
from .routing import BY_ROUTED_API, ROUTINGS
from .storage import polystack_home

log = logging.getLogger(__name__)

#: served by every stack, whatever the config lists
ALWAYS_SERVED = ("inspect", "jobs", "models")
#: APIs served by another API's router: OpenAI-compatible routes by inference
SERVED_WITH = {"openai": "inference"}


@dataclass
class PlannedProvider:
    api: str
    provider_id: str
    provider_type: str
    registered: RegisteredProvider
    config: BaseModel


@dataclass
class Plan:
    """A validated run config: which APIs are served and providers in start order."""

    loaded: LoadedConfig
    apis: list[str]
    providers: list[PlannedProvider] = field(default_factory=list)

    @property
    def image_name(self) -> str:
        return self.loaded.config.image_name


def _api_order(apis: list[str], deps: dict[str, set[str]], where) -> list[str]:
    order: list[str] = []
    visiting: list[str] = []

    def visit(api: str) -> None:
        if api in order:
            return
        if api in visiting:
            cycle = " -> ".join(visiting[visiting.index(api):] + [api])
            raise ConfigError(f"{where(('providers',))}: providers depend on each other in a cycle: {cycle}")
        visiting.append(api)
        for dep in sorted(deps.get(api, ())):
            visit(dep)
        visiting.pop()
        order.append(api)

    for api in apis:
        visit(api)
    return order


def plan(loaded: LoadedConfig, registry: dict[tuple[str, str], RegisteredProvider]) -> Plan:
    """Check everything that can be checked without starting anything.

    Raises ConfigError (or UnknownProviderError) listing every problem found.
    """
    cfg = loaded.config
    known_apis = set(api_names())
    table_apis = set(ROUTINGS)
    problems: list[str] = list(loaded.env_problems)
    unknown_types: list[str] = []

    def host_api(dep: str) -> str | None:
        """The configured API whose start provides ``dep`` (None: always there)."""
        if dep in ALWAYS_SERVED:
            return None
        if dep in ROUTINGS:
            return ROUTINGS[dep].routed_api
        return SERVED_WITH.get(dep, dep)

    for i, api in enumerate(cfg.apis):
        if api not in known_apis:
            problems.append(f"{loaded.where(('apis', i))}: unknown api {api!r}; known: {', '.join(sorted(known_apis))}")
    served = [a for a in dict.fromkeys([*cfg.apis, *cfg.providers])
              if a in known_apis and a not in table_apis and a not in SERVED_WITH]

    planned: dict[str, list[PlannedProvider]] = {}
    deps: dict[str, set[str]] = {}
    for api, entries in cfg.providers.items():
        if api not in known_apis:
            problems.append(f"{loaded.where(('providers', api))}: unknown api {api!r}; known: {', '.join(sorted(known_apis))}")
            continue
        if api in table_apis or api in SERVED_WITH:
            problems.append(f"{loaded.where(('providers', api))}: {api!r} is served by the stack itself, not by providers")
            continue
        seen_ids: set[str] = set()
        for i, entry in enumerate(entries):
            path = ("providers", api, i)
            if entry.provider_id in seen_ids:
                problems.append(f"{loaded.where(path + ('provider_id',))}: provider_id {entry.provider_id!r} is used twice for {api}")
            seen_ids.add(entry.provider_id)
            registered = registry.get((api, entry.provider_type))
            if registered is None:
                known = sorted(t for a, t in registry if a == api)
                unknown_types.append(
                    f"{loaded.where(path + ('provider_type',))}: {entry.provider_type!r} for {api}; "
                    f"available: {', '.join(known) if known else 'none yet'}"
                )
                continue
            try:
                config = registered.spec.config.model_validate(entry.config)
            except ValidationError as exc:
                problems += validation_messages(exc, loaded, path + ("config",))
                continue
            spec = registered.spec
            for dep in spec.api_dependencies:
                host = host_api(dep)
                if host is not None and host not in served:
                    problems.append(f"{loaded.where(path)}: {spec.provider_type} needs the {dep!r} api, which this config does not serve")
            deps.setdefault(api, set()).update(
                h for h in map(host_api, (*spec.api_dependencies, *spec.optional_api_dependencies)) if h in served and h != api
            )
            planned.setdefault(api, []).append(PlannedProvider(api, entry.provider_id, entry.provider_type, registered, config))

    for api in served:
        if api in ALWAYS_SERVED:
            continue
        if api not in cfg.providers or not cfg.providers[api]:
            problems.append(f"{loaded.where(('apis',))}: api {api!r} is listed but has no provider under providers.{api}")
        elif api not in BY_ROUTED_API and len(cfg.providers[api]) > 1:
            problems.append(f"{loaded.where(('providers', api))}: {api} takes exactly one provider")

    problems += _check_resources(loaded)
    if unknown_types:
        message = "provider types not available in this installation:\n  " + "\n  ".join(unknown_types)
        raise UnknownProviderError("\n".join([message, *problems]))
    if problems:
        raise ConfigError("\n".join(problems))

    order = _api_order([a for a in served if a in planned], deps, loaded.where)
    return Plan(loaded, apis=order, providers=[p for api in order for p in planned[api]])


def _check_resources(loaded: LoadedConfig) -> list[str]:
    """Every resource in the run config must be one its table would accept:
    a configured provider, and what the table itself checks (an embedding
    model's dimension, say). The table's own from_input does the checking."""
    cfg = loaded.config
    problems = []
    for routing in ROUTINGS.values():
        ids = [p.provider_id for p in cfg.providers.get(routing.routed_api, [])]
        table = routing.table(None, dict.fromkeys(ids), routed_api=routing.routed_api)
        for i, item in enumerate(getattr(cfg, routing.config_section) if routing.config_section else ()):
            try:
                table.from_input(item)
            except BadRequestError as exc:
                path = (routing.config_section, i, *(exc.field.split(".") if exc.field else ()))
                problems.append(f"{loaded.where(path)}: {exc.reason}")
            except StackError as exc:
                problems.append(f"{loaded.where((routing.config_section, i))}: {exc.message}")
    return problems


def check_provider(impl: Any, api: str, who: str, operations: frozenset[str] | None = None) -> None:
    """Fail start-up when provider ``impl`` does not implement ``api``. An
    inference provider may implement the OpenAI-compatible operations
    instead (the router converts the Llama Stack calls to them); it must have
    one of the two whole."""
    companion = next((c for c, host in SERVED_WITH.items() if host == api), None)
    if companion is None or operations is not None:
        check_protocol(impl, api, who, operations)
        return
    try:
        check_protocol(impl, companion, who)
    except ConfigError as companion_error:
        try:
            check_protocol(impl, api, who)
        except ConfigError as own_error:
            missing = companion_error.message.rsplit(": ", 1)[-1]
            raise ConfigError(f"{own_error.message} (nor the {companion} operations instead: {missing})") from None


def check_protocol(impl: Any, api: str, who: str, operations: frozenset[str] | None = None) -> None:
    """Fail start-up when ``impl`` lacks an operation of ``api``'s Protocol
    (of those in ``operations``, when the provider declares what it serves)."""
    missing, generators = [], []
    for name, _wm, _fn in iter_webmethods(get_protocol(api)):
        if operations is not None and name not in operations:
            continue
        method = getattr(impl, name, None)
        if method is not None and inspect.isasyncgenfunction(method):
            generators.append(name)
        elif method is None or not inspect.iscoroutinefunction(method):
            missing.append(name)
    problems = []
    if missing:
        problems.append(f"missing async {', '.join(missing)}")
    if generators:
        # the stack awaits every operation; a stream is what the coroutine returns
        problems.append(f"{', '.join(generators)} must be 'async def' returning an async iterator, not async generators")
    if problems:
        raise ConfigError(f"{who} does not implement {api}: {'; '.join(problems)}")


def data_dir(image_name: str) -> Path:
    return polystack_home() / image_name
