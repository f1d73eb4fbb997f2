"""plan() checks a run config before anything starts; Stack starts providers in
dependency order, checks them against their API's Protocol and shuts them down.

Providers come from a throwaway plugin registered on a fresh plugin manager.
"""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel, ConfigDict, Field

import stack
from stack.config import load_run_config
from stack.errors import ConfigError, UnknownProviderError
from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderSpec
from stack.resolver import plan
from stack.routing.routers import InferenceRouter, Router
from stack.runtime import Stack


class FakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: int = Field(5, description="seconds")
    fail_shutdown: bool = Field(False, description="make shutdown() raise (test double switch)")


class FakeProvider:
    """Test double base: records start-up and shutdown in the plugin's event list."""

    def __init__(self, config: FakeConfig, context, events: list) -> None:
        self.config = config
        self.context = context
        self.provider_id = context.provider_id
        self.events = events
        self.calls: list = []

    async def shutdown(self) -> None:
        self.events.append(("shutdown", self.provider_id))
        if self.config.fail_shutdown:
            raise RuntimeError(f"{self.provider_id} failed to close")

    def after_start(self) -> None:
        self.events.append(("after_start", self.provider_id))


class FakeInference(FakeProvider):
    async def chat_completion(self, model_id, messages, **kwargs):
        self.calls.append(("chat_completion", model_id))
        return "ok"

    async def completion(self, model_id, content, **kwargs):
        return "ok"

    async def embeddings(self, model_id, contents):
        return "ok"


class FakeIncompleteInference(FakeProvider):
    """Test double that lacks completion and has a sync embeddings: not an inference provider."""

    async def chat_completion(self, model_id, messages, **kwargs):
        return "ok"

    def embeddings(self, model_id, contents):
        return "ok"


class FakeSafety(FakeProvider):
    async def run_shield(self, shield_id, messages, params=None):
        return None


class FakeTelemetry(FakeProvider):
    async def log_event(self, **kw): ...
    async def get_span(self, **kw): ...
    async def get_span_tree(self, **kw): ...
    async def get_trace(self, **kw): ...
    async def query_spans(self, **kw): ...
    async def query_traces(self, **kw): ...
    async def save_spans_to_dataset(self, **kw): ...


class FakeProvidersPlugin:
    """Throwaway plugin: test-double providers of several APIs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def _factory(self, cls):
        async def create(config, context):
            self.events.append(("start", context.provider_id))
            return cls(config, context, self.events)

        return create

    @stack.hookimpl
    def register_providers(self, register):
        def spec(api, provider_type, cls, **kw):
            register(ProviderSpec(api=api, provider_type=provider_type, config=FakeConfig,
                                  factory=self._factory(cls), **kw))

        spec("inference", "remote::fake-llm", FakeInference)
        spec("inference", "inline::fake-local", FakeInference)
        spec("inference", "inline::fake-incomplete", FakeIncompleteInference)
        spec("safety", "inline::fake-guard", FakeSafety, api_dependencies=("inference",))
        spec("telemetry", "inline::fake-telemetry", FakeTelemetry)
        # two providers that need each other's API
        spec("eval", "inline::fake-eval", FakeProvider, api_dependencies=("scoring",))
        spec("scoring", "inline::fake-scoring", FakeProvider, api_dependencies=("eval",))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def plugin():
    pm = get_plugin_manager(load_entry_points=False)
    plugin = FakeProvidersPlugin()
    pm.register(plugin, name="fake-providers")
    # only this test's providers: the "available" lists must not change when
    # built-in providers are added
    plugin.registry = {key: r for key, r in collect_providers(pm).items() if r.spec.provider_type.split("::")[1].startswith("fake")}
    yield plugin
    pm.unregister(plugin)


def load(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return load_run_config(path)


def line_of(loaded, needle: str) -> int:
    """1-based line of the first line containing ``needle`` in the run config."""
    lines = open(loaded.source).read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


# -- plan(): problems found before anything starts ---------------------------------------------------


def test_unknown_provider_types_are_reported_together_with_the_available_ones(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference, safety]
        providers:
          inference:
          - provider_id: a
            provider_type: remote::nope
          - provider_id: b
            provider_type: inline::also-nope
          safety:
          - provider_id: guard
            provider_type: inline::missing-guard
    """)

    with pytest.raises(UnknownProviderError) as info:
        plan(loaded, plugin.registry)

    message = info.value.message
    inference_types = "available: inline::fake-incomplete, inline::fake-local, remote::fake-llm"
    assert f"{loaded.source}:{line_of(loaded, 'remote::nope')} at providers.inference[0].provider_type: " \
           f"'remote::nope' for inference; {inference_types}" in message
    assert f"'inline::also-nope' for inference; {inference_types}" in message
    assert "'inline::missing-guard' for safety; available: inline::fake-guard" in message


def test_unknown_provider_type_error_also_lists_the_other_problems(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference, nonsense]
        providers:
          inference:
          - provider_id: a
            provider_type: remote::nope
    """)
    with pytest.raises(UnknownProviderError) as info:
        plan(loaded, plugin.registry)
    assert "'remote::nope' for inference" in info.value.message
    assert "unknown api 'nonsense'" in info.value.message


def test_provider_config_errors_name_file_line_and_field(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference]
        providers:
          inference:
          - provider_id: llm
            provider_type: remote::fake-llm
            config:
              timeout: soon
              colour: red
    """)

    with pytest.raises(ConfigError) as info:
        plan(loaded, plugin.registry)

    assert not isinstance(info.value, UnknownProviderError)
    lines = info.value.message.splitlines()
    assert any(line.startswith(f"{loaded.source}:{line_of(loaded, 'timeout: soon')} at "
                               "providers.inference[0].config.timeout: ") and "integer" in line for line in lines)
    assert f"{loaded.source}:{line_of(loaded, 'colour: red')} at providers.inference[0].config.colour: unknown field" \
        in lines


def test_unknown_api_in_apis(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference, nonsense]
        providers:
          inference:
          - {provider_id: llm, provider_type: remote::fake-llm}
    """)
    with pytest.raises(ConfigError, match=r"at apis\[1\]: unknown api 'nonsense'; known: agents, "):
        plan(loaded, plugin.registry)


def test_api_listed_without_providers(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference, telemetry]
        providers:
          inference:
          - {provider_id: llm, provider_type: remote::fake-llm}
    """)
    with pytest.raises(ConfigError, match="api 'telemetry' is listed but has no provider under providers.telemetry"):
        plan(loaded, plugin.registry)


def test_duplicate_provider_id(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference]
        providers:
          inference:
          - {provider_id: dup, provider_type: remote::fake-llm}
          - {provider_id: dup, provider_type: inline::fake-local}
    """)
    with pytest.raises(ConfigError) as info:
        plan(loaded, plugin.registry)
    assert "providers.inference[1].provider_id: provider_id 'dup' is used twice for inference" in info.value.message


def test_dependency_on_an_api_the_config_does_not_serve(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [safety]
        providers:
          safety:
          - {provider_id: guard, provider_type: inline::fake-guard}
    """)
    with pytest.raises(ConfigError) as info:
        plan(loaded, plugin.registry)
    assert "providers.safety[0]: inline::fake-guard needs the 'inference' api, which this config does not serve" \
        in info.value.message


def test_dependency_cycle_is_reported(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [eval, scoring]
        providers:
          eval:
          - {provider_id: ev, provider_type: inline::fake-eval}
          scoring:
          - {provider_id: sc, provider_type: inline::fake-scoring}
    """)
    with pytest.raises(ConfigError, match="providers depend on each other in a cycle: eval -> scoring -> eval"):
        plan(loaded, plugin.registry)


def test_resource_naming_an_unknown_provider_id(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference]
        providers:
          inference:
          - {provider_id: llm, provider_type: remote::fake-llm}
        models:
        - model_id: m
          provider_id: nope
    """)
    with pytest.raises(ConfigError) as info:
        plan(loaded, plugin.registry)
    assert f"{loaded.source}:{line_of(loaded, 'provider_id: nope')} at models[0].provider_id: " \
           "no inference provider 'nope'; configured: llm" in info.value.message


def test_resource_without_provider_id_when_several_serve_its_api(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [inference]
        providers:
          inference:
          - {provider_id: a, provider_type: remote::fake-llm}
          - {provider_id: b, provider_type: inline::fake-local}
        models:
        - model_id: m
    """)
    with pytest.raises(ConfigError, match=r"at models\[0\]\.provider_id: required when several inference providers are configured: a, b"):
        plan(loaded, plugin.registry)


def test_unrouted_api_takes_one_provider_and_table_apis_take_none(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [telemetry]
        providers:
          telemetry:
          - {provider_id: t1, provider_type: inline::fake-telemetry}
          - {provider_id: t2, provider_type: inline::fake-telemetry}
          models:
          - {provider_id: m, provider_type: remote::fake-llm}
    """)
    with pytest.raises(ConfigError) as info:
        plan(loaded, plugin.registry)
    assert "telemetry takes exactly one provider" in info.value.message
    assert "'models' is served by the stack itself" in info.value.message


def test_a_good_config_plans_dependencies_first(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [safety, telemetry, inference]
        providers:
          safety:
          - {provider_id: guard, provider_type: inline::fake-guard}
          telemetry:
          - {provider_id: tel, provider_type: inline::fake-telemetry}
          inference:
          - {provider_id: llm, provider_type: remote::fake-llm, config: {timeout: 9}}
    """)

    planned = plan(loaded, plugin.registry)

    assert planned.apis.index("inference") < planned.apis.index("safety")
    assert [p.provider_id for p in planned.providers] == [
        {"safety": "guard", "telemetry": "tel", "inference": "llm"}[api] for api in planned.apis
    ]
    assert next(p for p in planned.providers if p.provider_id == "llm").config == FakeConfig(timeout=9)


# -- Stack: start order, protocol check, shutdown ---------------------------------------------------


CHAIN = """
    version: '2'
    image_name: chain
    apis: [safety, telemetry, inference]
    providers:
      safety:
      - {provider_id: guard, provider_type: inline::fake-guard}
      telemetry:
      - {provider_id: tel, provider_type: inline::fake-telemetry, config: {fail_shutdown: %s}}
      inference:
      - {provider_id: llm, provider_type: remote::fake-llm}
    models:
    - {model_id: chat, provider_model_id: upstream-chat}
"""


async def test_stack_starts_a_dependency_after_what_it_depends_on(tmp_path, plugin, home):
    planned = plan(load(tmp_path, CHAIN % "false"), plugin.registry)
    running = Stack(planned)

    await running.start()
    try:
        started = [e for e in plugin.events if e[0] == "start"]
        assert started.index(("start", "llm")) < started.index(("start", "guard"))
        assert [p.provider_id for p in running.providers] == [e[1] for e in started]
        guard = next(p.impl for p in running.providers if p.provider_id == "guard")
        # the safety provider gets the inference router, not a bare provider
        assert isinstance(guard.context.deps["inference"], InferenceRouter)
        assert type(running.impls["safety"]) is Router and running.impls["safety"].key == "shield_id"
        # run-config models are registered and routed under the provider's name
        await running.impls["inference"].chat_completion(model_id="chat", messages=[])
        llm = next(p.impl for p in running.providers if p.provider_id == "llm")
        assert llm.calls == [("chat_completion", "upstream-chat")]
        assert (home / "chain" / "registry.db").is_file()  # state stays under POLYSTACK_HOME
    finally:
        await running.shutdown()


async def test_background_work_begins_once_every_provider_started(tmp_path, plugin):
    running = Stack(plan(load(tmp_path, CHAIN % "false"), plugin.registry))
    await running.start(begin_background=False)  # as `polystack run` does, until its port is open
    try:
        assert not [e for e in plugin.events if e[0] == "after_start"]
        running.begin_background()
        kinds = [kind for kind, _ in plugin.events]
        assert kinds == ["start"] * 3 + ["after_start"] * 3
    finally:
        await running.shutdown()


async def test_shutdown_runs_in_reverse_start_order_and_survives_a_failing_provider(tmp_path, plugin):
    running = Stack(plan(load(tmp_path, CHAIN % "true"), plugin.registry))
    await running.start()
    start_order = [pid for kind, pid in plugin.events if kind == "start"]

    await running.shutdown()  # telemetry raises in its shutdown(); the others still close

    assert [pid for kind, pid in plugin.events if kind == "shutdown"] == start_order[::-1]
    assert running.providers == []
    assert running.metadata_store is None


async def test_provider_missing_protocol_methods_fails_start_and_closes_the_started_ones(tmp_path, plugin):
    loaded = load(tmp_path, """
        version: '2'
        image_name: t
        apis: [telemetry, inference]
        providers:
          telemetry:
          - {provider_id: tel, provider_type: inline::fake-telemetry}
          inference:
          - {provider_id: llm, provider_type: inline::fake-incomplete}
    """)
    running = Stack(plan(loaded, plugin.registry))

    with pytest.raises(ConfigError) as info:
        await running.start()

    assert info.value.message == (
        "provider 'llm' (inline::fake-incomplete) does not implement inference: missing async completion, embeddings"
        " (nor the openai operations instead: missing async openai_chat_completion, openai_completion, openai_embeddings)"
    )
    assert ("start", "tel") in plugin.events
    assert ("shutdown", "tel") in plugin.events
    assert running.metadata_store is None
