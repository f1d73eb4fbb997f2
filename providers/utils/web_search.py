"""What the web search adapters share: the ``web_search`` tool, config fields, the API key lookup.

The tool answers to two names: ``web_search``, and ``brave_search``, the name of Llama 3's built-in
search tool, which llama-stack 0.1.0 lists (for Brave and Tavily alike) and which its clients and
Llama models call.

Each adapter sends one HTTP request a search through ``providers.utils.http.UpstreamClient``
(retries, and upstream failures mapped to 502/504) and answers, as llama-stack does, the
JSON text ``{"query": ..., "top_k": [results]}``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from stack.apis.tool_groups import ToolDef, ToolParameter
from stack.apis.tool_runtime import ToolInvocationResult
from stack.errors import BadRequestError, NotFoundError
from stack.registry import ProviderContext

TOOL_NAME = "web_search"
BUILTIN_NAME = "brave_search"
TOOL_NAMES = (TOOL_NAME, BUILTIN_NAME)


class WebSearchConfig(BaseModel):
    """Fields every web search adapter's ``config:`` has; ``base_url`` gets a vendor default."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(
        None, description="API key of the search service; a key sent in X-LlamaStack-Provider-Data wins"
    )
    max_results: int = Field(3, ge=1, le=50, description="Most results one search returns")
    base_url: str = Field(description="Base URL of the search API (point it at a test double in tests)")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the search service's answer")
    max_retries: int = Field(2, ge=0, le=10, description="Retries after connect errors, 429 and 5xx answers")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return None if value in (None, "") else value  # '' is what an unset ${env.X:} gives

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")


def web_search_tool_defs() -> list[ToolDef]:
    """The tool under both its names."""
    query = [ToolParameter(name="query", parameter_type="string", description="The query to search for")]
    return [
        ToolDef(name=TOOL_NAME, description="Search the web for information", parameters=query),
        ToolDef(name=BUILTIN_NAME, description=f"Search the web for information (Llama 3's built-in name of {TOOL_NAME})",
                parameters=query, metadata={"alias_of": TOOL_NAME}),
    ]


class WebSearchToolRuntime(ABC):
    """Base of the adapters: subclasses set ``provider_type``/``key_field`` and implement ``search``."""

    provider_type = ""
    key_field = ""  # the X-LlamaStack-Provider-Data field with the key

    def __init__(self, config: WebSearchConfig, context: ProviderContext, client: Any) -> None:
        self.config = config
        self.context = context
        self.client = client

    async def shutdown(self) -> None:
        await self.client.close()

    def api_key(self) -> str:
        data = self.context.provider_data()
        key = getattr(data, self.key_field, None) if data is not None else None
        if key:
            return key
        if self.config.api_key is not None:
            return self.config.api_key.get_secret_value()
        raise BadRequestError(
            f"{self.provider_type} needs an API key: send {self.key_field!r} in the X-LlamaStack-Provider-Data "
            f"header, or set api_key in the provider's config",
            field=f"X-LlamaStack-Provider-Data.{self.key_field}",
        )

    async def list_runtime_tools(self, tool_group_id: str | None = None, mcp_endpoint: Any = None) -> list[ToolDef]:
        return web_search_tool_defs()

    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> ToolInvocationResult:
        if tool_name not in TOOL_NAMES:
            raise NotFoundError("tool", tool_name, TOOL_NAMES)
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError("a non-empty search query string is required", field="kwargs.query")
        limit = kwargs.get("max_results", self.config.max_results)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
            raise BadRequestError(f"an integer from 1 to 50 is required, got {limit!r}", field="kwargs.max_results")
        results = await self.search(query, self.api_key(), limit)
        return ToolInvocationResult(content=json.dumps({"query": query, "top_k": results[:limit]}))

    @abstractmethod
    async def search(self, query: str, api_key: str, limit: int) -> list[dict[str, Any]]:
        """At most ``limit`` of the search engine's results for ``query``."""




async def start_client(config: WebSearchConfig, name: str) -> Any:
    """A started UpstreamClient for ``config.base_url``."""
    from providers.utils.http import HTTPSettings, UpstreamClient

    settings = HTTPSettings(connect_timeout=min(10.0, config.timeout), read_timeout=config.timeout,
                            max_retries=config.max_retries)
    client = UpstreamClient(config.base_url, settings, name=name)
    await client.start()
    return client
