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
from .errors import ConfigError, UnknownProviderError
from .registry import ProviderContext, RegisteredProvider
from .routing import BY_ROUTED_API, ROUTINGS
from .storage import polystack_home

log = logging.getLogger(__name__)

#: served by every stack, whatever the config lists
ALWAYS_SERVED = ("inspect", "models")
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
                if dep not in served and dep not in ALWAYS_SERVED:
                    problems.append(f"{loaded.where(path)}: {spec.provider_type} needs the {dep!r} api, which this config does not serve")
            deps.setdefault(api, set()).update(
                d for d in (*spec.api_dependencies, *spec.optional_api_dependencies) if d in served
            )
            planned.setdefault(api, []).append(PlannedProvider(api, entry.provider_id, entry.provider_type, registered, config))

    for api in served:
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
    """Resources in the run config must name a provider of the API that serves them."""
    cfg = loaded.config
    problems = []
    for routing in ROUTINGS.values():
        ids = {p.provider_id for p in cfg.providers.get(routing.routed_api, [])}
        for i, item in enumerate(getattr(cfg, routing.config_section)):
            provider_id = getattr(item, "provider_id", None)
            if provider_id is not None and provider_id not in ids:
                problems.append(
                    f"{loaded.where((routing.config_section, i, 'provider_id'))}: no {routing.routed_api} provider "
                    f"{provider_id!r}; configured: {', '.join(sorted(ids)) or 'none'}"
                )
            elif provider_id is None and len(ids) != 1:
                problems.append(
                    f"{loaded.where((routing.config_section, i))}: provider_id is required when "
                    f"{len(ids)} {routing.routed_api} providers are configured"
                )
    return problems


def check_protocol(impl: Any, api: str, who: str) -> None:
    """Fail start-up when ``impl`` lacks an operation of ``api``'s Protocol."""
    missing = []
    for name, _wm, _fn in iter_webmethods(get_protocol(api)):
        method = getattr(impl, name, None)
        if method is None or not (inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)):
            missing.append(name)
    if missing:
        raise ConfigError(f"{who} does not implement {api}: missing async {', '.join(missing)}")


def data_dir(image_name: str) -> Path:
    return polystack_home() / image_name
