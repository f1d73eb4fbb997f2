"""The ``inline::rag-runtime`` tool runtime: ``knowledge_search`` and the rag-tool insert / query routes."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from stack.apis._content import TextContentItem, content_text
from stack.apis.inference import UserMessage
from stack.apis.tool_groups import ToolDef, ToolParameter
from stack.apis.tool_runtime import (
    DefaultRAGQueryGeneratorConfig,
    LLMRAGQueryGeneratorConfig,
    RAGDocument,
    RAGQueryConfig,
    RAGQueryResult,
    ToolInvocationResult,
)
from stack.apis.vector_io import Chunk
from stack.errors import BadRequestError, NotFoundError, invalid_field
from stack.fetcher import URLFetcher

from . import _documents
from .config import RAGRuntimeConfig

TOOL_NAME = "knowledge_search"
_PLACEHOLDER = re.compile(r"\{\{\s*(query|content|messages)\s*\}\}")


class RAGQueryResultWithMetadata(RAGQueryResult):
    """RAGQueryResult plus ``metadata`` (document_ids, chunks, scores), as newer llama-stack answers."""

    metadata: dict[str, Any] = {}


class RAGToolRuntime:
    def __init__(self, config: RAGRuntimeConfig, vector_io: Any, inference: Any, fetcher: URLFetcher | None = None) -> None:
        self.config = config
        self.vector_io = vector_io
        self.inference = inference
        self.fetcher = fetcher or URLFetcher()

    # -- tools ---------------------------------------------------------------------------------

    def tool_def(self) -> ToolDef:
        return ToolDef(
            name=TOOL_NAME,
            description="Search the documents of the agent's vector databases for information relevant to a query",
            parameters=[ToolParameter(name="query", parameter_type="string",
                                      description="What to search the knowledge base for", required=True)],
        )

    async def list_runtime_tools(self, tool_group_id: str | None = None, mcp_endpoint: Any = None) -> list[ToolDef]:
        if mcp_endpoint is not None:
            raise BadRequestError("inline::rag-runtime serves no MCP endpoint", field="mcp_endpoint")
        return [self.tool_def()]

    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> ToolInvocationResult:
        if tool_name != TOOL_NAME:
            raise NotFoundError("tool", tool_name, [TOOL_NAME])
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError("a non-empty query string is required", field="kwargs.query")
        vector_db_ids = kwargs.get("vector_db_ids")
        if isinstance(vector_db_ids, str):
            vector_db_ids = [vector_db_ids]
        if not vector_db_ids or not all(isinstance(v, str) for v in vector_db_ids):
            raise BadRequestError("knowledge_search needs the vector DBs to search: pass a list of ids",
                                  field="kwargs.vector_db_ids")
        query_config = kwargs.get("query_config")
        if query_config is not None:
            try:
                query_config = RAGQueryConfig.model_validate(query_config)
            except ValidationError as exc:
                raise invalid_field(exc, "kwargs.query_config") from None
        result = await self.rag_tool_query(content=query, vector_db_ids=list(vector_db_ids), query_config=query_config)
        return ToolInvocationResult(content=result.content)

    # -- insert --------------------------------------------------------------------------------

    async def rag_tool_insert(self, documents: list[RAGDocument], vector_db_id: str,
                              chunk_size_in_tokens: int = 512) -> None:
        if chunk_size_in_tokens < 1:
            raise BadRequestError("must be at least 1", field="chunk_size_in_tokens")
        overlap = int(chunk_size_in_tokens * self.config.chunk_overlap_ratio)
        chunks: list[Chunk] = []
        for i, doc in enumerate(documents):
            try:
                text = await _documents.load_document(
                    doc.content, doc.mime_type, self.fetcher, timeout=self.config.fetch_timeout_seconds,
                    max_bytes=self.config.max_document_bytes, allow_files=self.config.allow_file_uris)
            except BadRequestError as exc:
                field = f"documents.{i}.{exc.field}" if exc.field else f"documents.{i}"
                raise BadRequestError(f"{exc.reason} (document_id {doc.document_id!r})", field=field) from None
            for piece in _documents.chunk_text(text, chunk_size_in_tokens, overlap):
                chunks.append(Chunk(content=piece.text, metadata={
                    **doc.metadata, "document_id": doc.document_id, "token_count": piece.token_count}))
        if chunks:
            await self.vector_io.insert_chunks(vector_db_id=vector_db_id, chunks=chunks)

    # -- query ---------------------------------------------------------------------------------

    async def generate_query(self, content: Any, config: Any) -> str:
        if isinstance(config, LLMRAGQueryGeneratorConfig):
            text = content_text(content, " ")
            prompt, n = _PLACEHOLDER.subn(lambda _m: text, config.template)
            if n == 0:
                prompt = f"{config.template}\n\n{text}"
            response = await self.inference.chat_completion(
                model_id=config.model, messages=[UserMessage(content=prompt)], stream=False)
            answer = content_text(response.completion_message.content, " ").strip()
            return answer or text
        separator = config.separator if isinstance(config, DefaultRAGQueryGeneratorConfig) else " "
        items = content if isinstance(content, list) else [content]
        return separator.join(t for t in (content_text(c, " ") for c in items) if t)

    async def rag_tool_query(self, content: Any, vector_db_ids: list[str],
                             query_config: RAGQueryConfig | None = None) -> RAGQueryResult:
        if not vector_db_ids:
            raise BadRequestError("name at least one vector DB", field="vector_db_ids")
        query_config = query_config or RAGQueryConfig(query_generator_config=DefaultRAGQueryGeneratorConfig())
        query = await self.generate_query(content, query_config.query_generator_config)
        if not query.strip():
            raise BadRequestError("the query has no text", field="content")
        scored: list[tuple[float, Chunk]] = []
        for vector_db_id in vector_db_ids:
            response = await self.vector_io.query_chunks(
                vector_db_id=vector_db_id, query=query, params={"max_chunks": query_config.max_chunks})
            scored.extend(zip(response.scores, response.chunks))
        scored.sort(key=lambda pair: pair[0], reverse=True)
        scored = scored[:query_config.max_chunks]

        if not scored:
            return RAGQueryResultWithMetadata(
                content=[TextContentItem(text="No relevant information found.")],
                metadata={"document_ids": [], "chunks": [], "scores": [], "query": query})
        items = [TextContentItem(text=f"knowledge_search tool found {len(scored)} chunks:\n"
                                      "BEGIN of knowledge_search tool results.\n")]
        tokens = 0
        picked: list[tuple[float, Chunk]] = []
        for score, chunk in scored:
            text = content_text(chunk.content, " ")
            count = chunk.metadata.get("token_count")
            count = count if isinstance(count, int) else _documents.count_tokens(text)
            if picked and tokens + count > query_config.max_tokens_in_context:
                break
            tokens += count
            picked.append((score, chunk))
            document_id = chunk.metadata.get("document_id")
            items.append(TextContentItem(text=f"Result {len(picked)} (document_id: {document_id}):\n{text}\n"))
        items[0] = TextContentItem(text=f"knowledge_search tool found {len(picked)} chunks:\n"
                                        "BEGIN of knowledge_search tool results.\n")
        items.append(TextContentItem(text="END of knowledge_search tool results.\n"))
        return RAGQueryResultWithMetadata(content=items, metadata={
            "document_ids": [c.metadata.get("document_id") for _s, c in picked],
            "scores": [s for s, _c in picked],
            "query": query,
        })
