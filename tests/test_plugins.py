"""Plugin loading: built-ins through the hook, throwaway plugins, entry points, allow-list."""

import subprocess
import sys

import pytest
from pydantic import BaseModel

import stack
from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderSpec


class EmptyConfig(BaseModel):
    pass


async def make(config, context):
    return object()


class ThrowawayPlugin:
    """A plugin object registered for one test and unregistered after."""

    @stack.hookimpl
    def register_providers(self, register):
        register(ProviderSpec(api="telemetry", provider_type="inline::throwaway", config=EmptyConfig, factory=make))


@pytest.fixture
def pm():
    return get_plugin_manager(load_entry_points=False)


def test_throwaway_plugin_registers_through_the_hook(pm):
    plugin = ThrowawayPlugin()
    pm.register(plugin, name="throwaway")
    try:
        found = collect_providers(pm)
        assert found[("telemetry", "inline::throwaway")].spec.config is EmptyConfig
        assert found[("telemetry", "inline::throwaway")].package == "polystack"
    finally:
        pm.unregister(plugin)
    assert ("telemetry", "inline::throwaway") not in collect_providers(pm)


def test_same_provider_twice_is_an_error_naming_both(pm):
    class Twin(ThrowawayPlugin):
        pass

    first, second = ThrowawayPlugin(), Twin()
    pm.register(first, name="first")
    pm.register(second, name="second")
    try:
        with pytest.raises(ValueError, match="registered twice"):
            collect_providers(pm)
    finally:
        pm.unregister(first)
        pm.unregister(second)


def test_register_rejects_what_is_not_a_spec(pm):
    class Bad:
        @stack.hookimpl
        def register_providers(self, register):
            register({"api": "inference"})

    bad = Bad()
    pm.register(bad, name="bad")
    try:
        with pytest.raises(TypeError, match="not a ProviderSpec"):
            collect_providers(pm)
    finally:
        pm.unregister(bad)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"provider_type": "acme"}, "must look like 'inline::name' or 'remote::name'"),
        ({"provider_type": "cloud::x"}, "must look like"),
        ({"provider_type": "remote::hf::"}, "must look like"),
        ({"config": dict}, "config must be a pydantic model class"),
    ],
)
def test_provider_spec_validates_itself(kwargs, error):
    base = dict(api="inference", provider_type="remote::x", config=EmptyConfig, factory=make)
    with pytest.raises((ValueError, TypeError), match=error):
        ProviderSpec(**{**base, **kwargs})


def test_provider_types_may_nest_names_as_llama_stack_does():
    spec = ProviderSpec(api="inference", provider_type="remote::hf::endpoint", config=EmptyConfig, factory=make)
    assert spec.provider_type == "remote::hf::endpoint"


def run_python(code, env_extra, pythonpath):
    import os

    env = {**os.environ, "PYTHONPATH": str(pythonpath), **env_extra}
    env.pop("POLYSTACK_PLUGINS", None) if "POLYSTACK_PLUGINS" not in env_extra else None
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


LIST_TYPES = (
    "from stack.plugins import get_plugin_manager, collect_providers;"
    "print(sorted((t, r.package) for (a, t), r in collect_providers(get_plugin_manager()).items()))"
)


def test_installed_plugin_loads_from_its_entry_point(acme_plugin_path):
    out = run_python(LIST_TYPES, {}, acme_plugin_path)
    assert "('remote::acme', 'polystack-acme')" in out


@pytest.mark.parametrize("allow, loaded", [("acme", True), ("", False), ("other", False)])
def test_allow_list_limits_entry_points(acme_plugin_path, allow, loaded):
    out = run_python(LIST_TYPES, {"POLYSTACK_PLUGINS": allow}, acme_plugin_path)
    assert ("remote::acme" in out) is loaded


def test_providers_command_names_the_package(acme_plugin_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(acme_plugin_path)}
    env.pop("POLYSTACK_PLUGINS", None)
    out = subprocess.run([sys.executable, "-m", "stack", "providers"], env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "remote::acme" in line)
    assert line.split() == ["inference", "remote::acme", "polystack-acme"]
