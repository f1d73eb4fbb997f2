"""The plugin manager: built-in providers and third-party entry points."""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import partial

import pluggy

from . import hookspecs
from .registry import ApiSpec, ProviderSpec, RegisteredProvider

ENTRY_POINT_GROUP = "polystack"
BUILTIN_PACKAGE = "polystack"


def _builtin_provider_modules() -> list[str]:
    """Every provider package under providers/inline/<api>/ and providers/remote/<api>/."""
    import providers

    names = []
    for kind in ("inline", "remote"):
        kind_pkg = importlib.import_module(f"providers.{kind}")
        for api in pkgutil.iter_modules(kind_pkg.__path__):
            if not api.ispkg:
                continue
            api_pkg = importlib.import_module(f"providers.{kind}.{api.name}")
            names += [
                f"{api_pkg.__name__}.{p.name}"
                for p in pkgutil.iter_modules(api_pkg.__path__)
                if p.ispkg and not p.name.startswith("_")
            ]
    del providers
    return sorted(names)


def _allowed_plugins() -> set[str] | None:
    value = os.environ.get("POLYSTACK_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def get_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager holding the built-in providers and installed plugins.

    Built-ins always load. Third-party plugins come from the ``polystack``
    entry-point group; ``POLYSTACK_PLUGINS=a,b`` loads only those entry points
    (by entry-point name), and an empty value loads none.
    """
    pm = pluggy.PluginManager("polystack")
    pm.add_hookspecs(hookspecs)
    for name in _builtin_provider_modules():
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        allowed = _allowed_plugins()
        if allowed is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in sorted(allowed):
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    return pm


def _package_of(pm: pluggy.PluginManager) -> dict[int, str]:
    packages = {id(plugin): dist.project_name for plugin, dist in pm.list_plugin_distinfo()}
    return packages


def collect_apis(pm: pluggy.PluginManager) -> dict[str, ApiSpec]:
    """Call every ``register_apis`` hook and serve what they register, keyed by name.

    The same name from two plugins with different Protocols is an error naming both.
    """
    from .apis import add_api
    from .routing import add_routing

    packages = _package_of(pm)
    found: dict[str, tuple[ApiSpec, str]] = {}

    def register(package: str, spec: ApiSpec) -> None:
        if not isinstance(spec, ApiSpec):
            raise TypeError(f"plugin {package!r} registered {spec!r}, not an ApiSpec")
        if spec.name in found and found[spec.name][0] != spec:
            raise ValueError(f"API {spec.name!r} registered twice: by {found[spec.name][1]!r} and by {package!r}")
        add_api(spec.name, spec.protocol)
        if spec.routing is not None:
            add_routing(spec.routing)
        found[spec.name] = (spec, package)

    for impl in pm.hook.register_apis.get_hookimpls():
        impl.function(register=partial(register, packages.get(id(impl.plugin), BUILTIN_PACKAGE)))
    return {name: spec for name, (spec, _package) in found.items()}


def collect_providers(pm: pluggy.PluginManager) -> dict[tuple[str, str], RegisteredProvider]:
    """Call every ``register_apis`` hook (``collect_apis``), then every
    ``register_providers`` hook; key the provider specs by (api, provider_type).

    The same (api, provider_type) from two plugins is an error naming both.
    """
    collect_apis(pm)
    packages = _package_of(pm)
    found: dict[tuple[str, str], RegisteredProvider] = {}

    def register(package: str, spec: ProviderSpec) -> None:
        if not isinstance(spec, ProviderSpec):
            raise TypeError(f"plugin {package!r} registered {spec!r}, not a ProviderSpec")
        key = (spec.api, spec.provider_type)
        if key in found:
            raise ValueError(
                f"provider {spec.provider_type!r} for api {spec.api!r} registered twice: "
                f"by {found[key].package!r} and by {package!r}"
            )
        found[key] = RegisteredProvider(spec, package)

    for impl in pm.hook.register_providers.get_hookimpls():
        package = packages.get(id(impl.plugin), BUILTIN_PACKAGE)
        impl.function(register=partial(register, package))
    return found
