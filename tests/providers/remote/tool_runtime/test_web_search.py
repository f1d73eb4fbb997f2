"""remote::brave-search and remote::tavily-search against a test double of each API on loopback,
answering with the shapes the real services send (trimmed recordings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from providers.remote.tool_runtime import brave_search, tavily_search
from stack.errors import BadRequestError, NotFoundError, UpstreamError
from stack.registry import ProviderContext
from stack.request_context import reset_request, set_request
from tests.support import free_port

BRAVE_RESPONSE = {  # GET /res/v1/web/search, trimmed
    "type": "search",
    "query": {"original": "llama stack", "more_results_available": True},
    "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": False}]},
    "web": {
        "type": "search",
        "family_friendly": True,
        "results": [
            {"title": f"Result {i}", "url": f"https://example.com/{i}", "is_source_local": False,
             "description": f"About <strong>llama stack</strong> {i}", "age": "2 days ago",
             "profile": {"name": "Example", "url": f"https://example.com/{i}"}, "language": "en"}
            for i in range(5)
        ],
    },
}

TAVILY_RESPONSE = {  # POST /search, trimmed
    "query": "llama stack",
    "follow_up_questions": None,
    "answer": None,
    "images": [],
    "results": [
        {"title": f"Result {i}", "url": f"https://example.org/{i}", "content": f"Llama Stack page {i}",
         "score": 0.9 - i / 10, "raw_content": None}
        for i in range(5)
    ],
    "response_time": 1.2,
}

KEY = "test-key-123"


class SearchAPIDouble:
    """Test double of the Brave and Tavily APIs: records requests, answers recorded shapes,
    or the status that ``fail_with`` names."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_with: int | None = None
        app = web.Application()
        app.router.add_get("/res/v1/web/search", self.brave)
        app.router.add_post("/search", self.tavily)
        self.runner = web.AppRunner(app)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def answer(self, request: web.Request, shape: dict, key: str | None) -> web.Response:
        self.requests.append({"path": request.path, "query": dict(request.query), "key": key,
                              "body": await request.json() if request.can_read_body else None})
        if self.fail_with is not None:
            return web.json_response({"error": "upstream trouble"}, status=self.fail_with)
        if key != KEY:
            return web.json_response({"detail": "invalid API key"}, status=401)
        return web.json_response(shape)

    async def brave(self, request: web.Request) -> web.Response:
        return await self.answer(request, BRAVE_RESPONSE, request.headers.get("X-Subscription-Token"))

    async def tavily(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return await self.answer(request, TAVILY_RESPONSE, auth.removeprefix("Bearer ") if auth else None)


@pytest.fixture
async def double():
    api = SearchAPIDouble()
    await api.start()
    yield api
    await api.runner.cleanup()


PROVIDERS = {"brave": brave_search, "tavily": tavily_search}


@pytest.fixture(params=sorted(PROVIDERS))
def kind(request):
    return request.param


async def make(kind: str, **config):
    module = PROVIDERS[kind]
    specs = []
    module.register_providers(specs.append)
    (spec,) = specs
    context = ProviderContext(provider_id=kind, spec=spec, image_name="test", data_dir=Path("."))
    return await spec.factory(spec.config(**config), context)


async def search(runtime, query="llama stack", provider_data=None):
    tokens = set_request("req-1", provider_data)
    try:
        return await runtime.invoke_tool(tool_name="web_search", kwargs={"query": query})
    finally:
        reset_request(tokens)


async def test_lists_the_tool_as_web_search_and_as_brave_search(kind):
    runtime = await make(kind)
    tools = await runtime.list_runtime_tools(tool_group_id="builtin::websearch")
    await runtime.shutdown()
    # brave_search: Llama 3's built-in name, which llama-stack 0.1.0 lists for Brave and Tavily alike
    assert [t.name for t in tools] == ["web_search", "brave_search"]
    for tool in tools:
        assert [(p.name, p.parameter_type, p.required) for p in tool.parameters] == [("query", "string", True)]
    assert tools[1].metadata == {"alias_of": "web_search"}


async def test_brave_search_is_the_same_tool(kind, double):
    runtime = await make(kind, base_url=double.url, api_key=KEY, max_results=2)
    by_name = {}
    for name in ("web_search", "brave_search"):
        by_name[name] = await runtime.invoke_tool(tool_name=name, kwargs={"query": "llama stack"})
    await runtime.shutdown()
    assert by_name["web_search"] == by_name["brave_search"]
    assert len(double.requests) == 2


async def test_searches_with_the_configured_key(kind, double):
    runtime = await make(kind, base_url=double.url, api_key=KEY, max_results=2)
    result = await search(runtime)
    await runtime.shutdown()
    assert result.error_code is None
    data = json.loads(result.content)
    assert data["query"] == "llama stack"
    assert [r["title"] for r in data["top_k"]] == ["Result 0", "Result 1"]
    assert data["top_k"][0]["url"].endswith("/0")
    (sent,) = double.requests
    assert sent["key"] == KEY
    if kind == "brave":
        assert sent["query"] == {"q": "llama stack", "count": "2"}
        assert data["top_k"][0]["description"] == "About <strong>llama stack</strong> 0"
    else:
        assert sent["body"] == {"query": "llama stack", "max_results": 2}
        assert data["top_k"][0]["content"] == "Llama Stack page 0"


async def test_the_provider_data_key_wins(kind, double):
    runtime = await make(kind, base_url=double.url, api_key="stale-config-key")
    field = f"{kind}_search_api_key"
    result = await search(runtime, provider_data={field: KEY, "other_provider_key": "ignored"})
    await runtime.shutdown()
    assert len(json.loads(result.content)["top_k"]) == 3  # the default max_results
    assert double.requests[0]["key"] == KEY


async def test_a_missing_key_is_400_naming_the_header_field(kind, double):
    runtime = await make(kind, base_url=double.url)
    with pytest.raises(BadRequestError) as info:
        await search(runtime)
    await runtime.shutdown()
    assert f"{kind}_search_api_key" in info.value.message
    assert info.value.field == f"X-LlamaStack-Provider-Data.{kind}_search_api_key"
    assert double.requests == []  # nothing was sent without a key


async def test_a_rejected_key_is_502(kind, double):
    runtime = await make(kind, base_url=double.url, api_key="wrong")
    with pytest.raises(UpstreamError, match="rejected the API key"):
        await search(runtime)
    await runtime.shutdown()


async def test_an_upstream_failure_is_502_naming_the_url(kind, double):
    double.fail_with = 500
    runtime = await make(kind, base_url=double.url, api_key=KEY, max_retries=1)
    with pytest.raises(UpstreamError) as info:
        await search(runtime)
    await runtime.shutdown()
    assert double.url in info.value.message and "500" in info.value.message
    assert len(double.requests) == 2  # retried once


async def test_an_unreachable_service_is_502(kind):
    runtime = await make(kind, base_url=f"http://127.0.0.1:{free_port()}", api_key=KEY, max_retries=0)
    with pytest.raises(UpstreamError, match="cannot reach"):
        await search(runtime)
    await runtime.shutdown()


async def test_bad_arguments(kind):
    runtime = await make(kind, api_key=KEY)
    with pytest.raises(BadRequestError) as info:
        await runtime.invoke_tool(tool_name="web_search", kwargs={"q": "x"})
    assert info.value.field == "kwargs.query"
    with pytest.raises(NotFoundError) as missing:
        await runtime.invoke_tool(tool_name="code_interpreter", kwargs={"code": "1"})
    assert "brave_search" in missing.value.message and "web_search" in missing.value.message
    with pytest.raises(BadRequestError) as info:
        await runtime.invoke_tool(tool_name="brave_search", kwargs={"query": ""})
    assert info.value.field == "kwargs.query"
    await runtime.shutdown()


async def test_max_results_of_the_call_wins_over_the_config(kind, double):
    runtime = await make(kind, base_url=double.url, api_key=KEY, max_results=2)
    result = await runtime.invoke_tool(tool_name="web_search", kwargs={"query": "llama stack", "max_results": 1})
    with pytest.raises(BadRequestError, match="kwargs.max_results"):
        await runtime.invoke_tool(tool_name="web_search", kwargs={"query": "x", "max_results": 0})
    await runtime.shutdown()
    assert len(json.loads(result.content)["top_k"]) == 1
    sent = double.requests[0]
    assert (sent["query"]["count"] == "1") if kind == "brave" else (sent["body"]["max_results"] == 1)
