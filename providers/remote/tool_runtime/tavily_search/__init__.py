"""``remote::tavily-search``: the ``web_search`` tool on the Tavily Search API (needs network and an API key)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

import stack
from stack.apis.tool_runtime import ToolRuntime
from stack.registry import ProviderContext, ProviderSpec

from providers.utils.web_search import WebSearchConfig, WebSearchToolRuntime, start_client

__all__ = ["TavilySearchConfig", "TavilySearchProviderData", "register_providers"]

DEFAULT_URL = "https://api.tavily.com"


class TavilySearchConfig(WebSearchConfig):
    """``config:`` of ``remote::tavily-search``."""

    base_url: str = Field(DEFAULT_URL, description="Base URL of the Tavily API")


class TavilySearchProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::tavily-search."""

    tavily_search_api_key: str | None = None


class TavilySearchToolRuntime(WebSearchToolRuntime):
    provider_type = "remote::tavily-search"
    key_field = "tavily_search_api_key"

    async def search(self, query: str, api_key: str, limit: int) -> list[dict[str, Any]]:
        request = json.dumps({"query": query, "max_results": limit}).encode()
        body = await self.client.request_bytes(
            "POST", "/search", request,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            what="tavily search")
        data = json.loads(body)
        return [
            {k: item[k] for k in ("title", "url", "content", "score") if item.get(k) is not None}
            for item in data.get("results") or []
        ]


async def create(config: TavilySearchConfig, context: ProviderContext):
    return TavilySearchToolRuntime(config, context, await start_client(config, "remote::tavily-search"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="tool_runtime",
            serves=ToolRuntime,  # no rag-tool routes
            provider_type="remote::tavily-search",
            config=TavilySearchConfig,
            factory=create,
            provider_data_validator=TavilySearchProviderData,
            description="The web_search tool on the Tavily Search API (needs network and an API key)",
        )
    )
