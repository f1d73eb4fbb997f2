"""register_apis: a plugin adds a routed API family — its module of models and
Protocol, one routing declaration, a provider — and the stack serves it."""

from __future__ import annotations

from typing import Literal, Protocol

import pytest
from pydantic import BaseModel

import stack
from stack.apis import api_names, remove_api, webmethod
from stack.apis._resource import Resource
from stack.errors import ConfigError
from stack.plugins import collect_apis, get_plugin_manager
from stack.registry import ApiSpec, ProviderSpec
from stack.routing import BY_ROUTED_API, ResourceTable, Routing, remove_routing
from tests.support import app_from_yaml, serve_app

# -- the family a plugin adds: widgets (the registry) and widget_io (routed by widget_id) --------


class Widget(Resource):
    type: Literal["widget"] = "widget"


class ListWidgetsResponse(BaseModel):
    data: list[Widget]


class Widgets(Protocol):
    @webmethod(route="/v1/widgets", method="POST")
    async def register_widget(self, widget_id: str, provider_widget_id: str | None = None) -> Widget: ...

    @webmethod(route="/v1/widgets", method="GET")
    async def list_widgets(self) -> ListWidgetsResponse: ...


class PokeResponse(BaseModel):
    provider_id: str
    widget: str
    strength: int


class WidgetIO(Protocol):
    @webmethod(route="/v1/widget-io/poke", method="POST")
    async def poke(self, widget_id: str, strength: int = 1) -> PokeResponse: ...


class WidgetsTable(ResourceTable[Widget]):
    kind = "widget"
    resource_cls = Widget

    async def register_widget(self, widget_id: str, provider_widget_id: str | None = None) -> Widget:
        return await self.register(Widget(identifier=widget_id, provider_resource_id=provider_widget_id or widget_id,
                                          provider_id=self.pick_provider(None)))

    async def list_widgets(self) -> ListWidgetsResponse:
        return ListWidgetsResponse(data=await self.list())


class EmptyConfig(BaseModel):
    pass


class RecordingWidgetProvider:
    """Test double provider of widget_io: answers with what it was called with."""

    def __init__(self, provider_id: str) -> None:
        self.provider_id = provider_id

    async def poke(self, widget_id: str, strength: int = 1) -> PokeResponse:
        return PokeResponse(provider_id=self.provider_id, widget=widget_id, strength=strength)


async def create_widget_provider(config: EmptyConfig, context) -> RecordingWidgetProvider:
    return RecordingWidgetProvider(context.provider_id)


WIDGET_ROUTING = Routing("widget_io", "widgets", None, WidgetsTable, key="widget_id")


class WidgetPlugin:
    """A throwaway plugin: the widget family and one provider of it."""

    @stack.hookimpl
    def register_apis(self, register):
        register(ApiSpec("widgets", Widgets))
        register(ApiSpec("widget_io", WidgetIO, routing=WIDGET_ROUTING))

    @stack.hookimpl
    def register_providers(self, register):
        register(ProviderSpec(api="widget_io", provider_type="inline::widgets-test", config=EmptyConfig,
                              factory=create_widget_provider))


RUN_CONFIG = """\
    version: '2'
    image_name: widgets
    apis: [widget_io]
    providers:
      widget_io:
      - {provider_id: shop, provider_type: inline::widgets-test, config: {}}
    """


@pytest.fixture
def pm():
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(WidgetPlugin(), name="widgets-test")
    yield pm
    remove_routing("widgets")
    for name in ("widgets", "widget_io"):
        remove_api(name)


async def test_a_plugin_family_is_served_through_one_routing_declaration(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    app = app_from_yaml(tmp_path, RUN_CONFIG, pm)
    assert {"widgets", "widget_io"} <= set(api_names())
    assert BY_ROUTED_API["widget_io"] is WIDGET_ROUTING
    async with serve_app(app) as client:
        registered = await client.post("/v1/widgets", json={"widget_id": "w1", "provider_widget_id": "shop-w1"})
        poked = await client.post("/v1/widget-io/poke", json={"widget_id": "w1", "strength": 3})
        missing = await client.post("/v1/widget-io/poke", json={"widget_id": "nope"})
        routes = (await client.get("/v1/inspect/routes")).json()["data"]
    assert registered.status_code == 200, registered.text
    assert poked.json() == {"provider_id": "shop", "widget": "shop-w1", "strength": 3}
    assert missing.status_code == 404 and "'nope' not found" in missing.json()["detail"]
    assert {"route": "/v1/widget-io/poke", "method": "POST", "provider_types": ["inline::widgets-test"]} in routes


async def test_a_router_that_cannot_serve_its_protocol_fails_at_start(pm, tmp_path, monkeypatch):
    # keyed by a parameter poke() does not take: nothing would serve poke
    monkeypatch.setattr(WidgetPlugin, "register_apis", stack.hookimpl(lambda self, register: [
        register(ApiSpec("widgets", Widgets)),
        register(ApiSpec("widget_io", WidgetIO, routing=Routing("widget_io", "widgets", None, WidgetsTable, key="gadget_id"))),
    ]))
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(WidgetPlugin(), name="widgets-test")
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    app = app_from_yaml(tmp_path, RUN_CONFIG, pm)
    with pytest.raises(ConfigError, match="the widget_io router does not implement widget_io: missing async poke"):
        async with app.router.lifespan_context(app):
            pass


def test_the_same_family_twice_with_another_protocol_is_an_error(pm):
    class Impostor:
        @stack.hookimpl
        def register_apis(self, register):
            register(ApiSpec("widgets", WidgetIO))

    pm.register(Impostor(), name="impostor")
    with pytest.raises(ValueError, match="'widgets' registered twice"):
        collect_apis(pm)


@pytest.mark.parametrize("spec, error", [
    (lambda: ApiSpec("Widgets", Widgets), "must be lower_snake_case"),
    (lambda: ApiSpec("widget_io", WidgetIO, routing=Routing("other", "widgets", None, WidgetsTable, "widget_id")),
     "its routing is for 'other'"),
])
def test_api_spec_validates_itself(spec, error):
    with pytest.raises(ValueError, match=error):
        spec()
