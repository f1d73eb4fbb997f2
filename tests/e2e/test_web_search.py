"""Web search end to end: a real `polystack run` of the starter plus remote::tavily-search,
pointed at a test double of the Tavily API on loopback, driven by llama-stack-client 0.1.0,
whose users look for the tool under llama-stack 0.1.0's name, brave_search."""

from __future__ import annotations

import json

import pytest
import yaml
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.providers.remote.tool_runtime.test_web_search import KEY, TAVILY_RESPONSE
from tests.support import REPO, QuietHandler, ServerProcess, serving


class _Tavily(QuietHandler):
    """Test double of Tavily's POST /search: records (Authorization, body), answers a recorded shape."""

    searches: list[tuple[str | None, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.searches.append((self.headers.get("Authorization"),
                              json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.reply(json.dumps(TAVILY_RESPONSE).encode(), "application/json")


@pytest.fixture(scope="module")
def tavily():
    with serving(_Tavily) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(tavily, tmp_path_factory):
    home = tmp_path_factory.mktemp("web-search-home")
    config = yaml.safe_load((REPO / "distributions/starter/run.yaml").read_text())
    config["providers"]["tool_runtime"].append({"provider_id": "tavily-search", "provider_type": "remote::tavily-search",
                                                "config": {"api_key": KEY, "base_url": tavily}})
    config["tool_groups"].append({"toolgroup_id": "builtin::websearch", "provider_id": "tavily-search"})
    (home / "run.yaml").write_text(yaml.safe_dump(config))
    with ServerProcess(str(home / "run.yaml"), home=home) as proc:
        yield LlamaStackClient(base_url=proc.base_url)


def test_the_group_lists_web_search_and_brave_search(client):
    tools = {t.identifier: t for t in client.tools.list(toolgroup_id="builtin::websearch")}
    assert sorted(tools) == ["brave_search", "web_search"]
    assert tools["brave_search"].metadata == {"alias_of": "web_search"}
    assert [(p.name, p.required) for p in tools["brave_search"].parameters] == [("query", True)]
    runtime = [t.name for t in client.tool_runtime.list_tools(tool_group_id="builtin::websearch")]
    assert runtime == ["web_search", "brave_search"]


def test_both_names_search(client):
    _Tavily.searches.clear()
    answers = [client.tool_runtime.invoke_tool(tool_name=name, kwargs={"query": "llama stack"})
               for name in ("brave_search", "web_search")]
    assert answers[0].content == answers[1].content
    found = json.loads(answers[0].content)
    assert found["query"] == "llama stack"
    assert [r["url"] for r in found["top_k"]] == [f"https://example.org/{i}" for i in range(3)]
    assert _Tavily.searches == [(f"Bearer {KEY}", {"query": "llama stack", "max_results": 3})] * 2


def test_a_brave_search_without_a_query_is_a_400_naming_it(client):
    with pytest.raises(APIStatusError) as info:
        client.tool_runtime.invoke_tool(tool_name="brave_search", kwargs={"q": "llama"})
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("kwargs.query: ")
