"""Plugin hook specifications. Each hook is documented in docs/plugin_hooks.md."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("polystack")


@hookspec
def register_apis(register):
    """Register API families by calling ``register(ApiSpec(...))`` once per family."""


@hookspec
def register_providers(register):
    """Register provider specs by calling ``register(ProviderSpec(...))`` once per provider."""
