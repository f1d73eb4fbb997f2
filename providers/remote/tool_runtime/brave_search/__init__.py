"""``remote::brave-search``: the ``web_search`` tool on the Brave Search API (needs network and an API key)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field

import stack
from stack.apis.tool_runtime import ToolRuntime
from stack.registry import ProviderContext, ProviderSpec

from providers.utils.web_search import WebSearchConfig, WebSearchToolRuntime, start_client

__all__ = ["BraveSearchConfig", "BraveSearchProviderData", "register_providers"]

DEFAULT_URL = "https://api.search.brave.com"


class BraveSearchConfig(WebSearchConfig):
    """``config:`` of ``remote::brave-search``."""

    base_url: str = Field(DEFAULT_URL, description="Base URL of the Brave Search API")


class BraveSearchProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::brave-search."""

    brave_search_api_key: str | None = None


class BraveSearchToolRuntime(WebSearchToolRuntime):
    provider_type = "remote::brave-search"
    key_field = "brave_search_api_key"

    async def search(self, query: str, api_key: str, limit: int) -> list[dict[str, Any]]:
        path = "/res/v1/web/search?" + urlencode({"q": query, "count": limit})
        body = await self.client.request_bytes(
            "GET", path, headers={"X-Subscription-Token": api_key, "Accept": "application/json"},
            what="brave search")
        data = json.loads(body)
        return [
            {k: item[k] for k in ("title", "url", "description", "age", "extra_snippets") if item.get(k) is not None}
            for item in (data.get("web") or {}).get("results") or []
        ]


async def create(config: BraveSearchConfig, context: ProviderContext):
    return BraveSearchToolRuntime(config, context, await start_client(config, "remote::brave-search"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="tool_runtime",
            serves=ToolRuntime,  # no rag-tool routes
            provider_type="remote::brave-search",
            config=BraveSearchConfig,
            factory=create,
            provider_data_validator=BraveSearchProviderData,
            description="The web_search tool on the Brave Search API (needs network and an API key)",
        )
    )
