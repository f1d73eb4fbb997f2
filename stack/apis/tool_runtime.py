"""Tool runtime: list and invoke tools, plus the built-in RAG tool's insert and query."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, Field

from ._content import URL, InterleavedContent
from ._webmethod import webmethod
from .tool_groups import ToolDef


class ToolInvocationResult(BaseModel):
    content: InterleavedContent
    error_message: str | None = None
    error_code: int | None = None


class RAGDocument(BaseModel):
    """A document to index: inline content, or a URL to fetch (``data:`` URLs too)."""

    document_id: str
    content: InterleavedContent | URL
    mime_type: str | None = None
    metadata: dict[str, Any]


class DefaultRAGQueryGeneratorConfig(BaseModel):
    """Query = the text of the content items joined by ``separator``."""

    type: Literal["default"] = "default"
    separator: str = " "


class LLMRAGQueryGeneratorConfig(BaseModel):
    """Query = what ``model`` answers to ``template`` filled with the content."""

    type: Literal["llm"] = "llm"
    model: str
    template: str


RAGQueryGeneratorConfig = Annotated[
    Union[DefaultRAGQueryGeneratorConfig, LLMRAGQueryGeneratorConfig],
    Field(discriminator="type"),
]


class RAGQueryConfig(BaseModel):
    query_generator_config: RAGQueryGeneratorConfig
    max_tokens_in_context: int = 4096
    max_chunks: int = 5


class RAGQueryResult(BaseModel):
    content: InterleavedContent | None = None


@runtime_checkable
class ToolRuntime(Protocol):
    """Listing and invoking tools: what every tool provider serves."""

    # The spec answers application/jsonl: one ToolDef a line.
    @webmethod(route="/v1/tool-runtime/list-tools", method="GET", media_type="application/jsonl")
    async def list_runtime_tools(
        self,
        tool_group_id: str | None = None,
        mcp_endpoint: URL | None = None,
    ) -> list[ToolDef]: ...

    @webmethod(route="/v1/tool-runtime/invoke", method="POST")
    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> ToolInvocationResult: ...


@runtime_checkable
class RAGToolRuntime(Protocol):
    """The rag-tool routes: served by the provider of the ``builtin::rag`` tool group."""

    @webmethod(
        route="/v1/tool-runtime/rag-tool/insert", method="POST", request_name="InsertRequest"
    )
    async def rag_tool_insert(
        self,
        documents: list[RAGDocument],
        vector_db_id: str,
        chunk_size_in_tokens: int,
    ) -> None: ...

    @webmethod(
        route="/v1/tool-runtime/rag-tool/query", method="POST", request_name="QueryRequest"
    )
    async def rag_tool_query(
        self,
        content: InterleavedContent,
        vector_db_ids: list[str],
        query_config: RAGQueryConfig | None = None,
    ) -> RAGQueryResult: ...


@runtime_checkable
class ToolRuntimeAPI(ToolRuntime, RAGToolRuntime, Protocol):
    """The whole tool-runtime family; a provider declares the part it serves
    (``ProviderSpec.serves``): tool providers ``ToolRuntime``, RAG providers both."""


PROTOCOL = ToolRuntimeAPI
