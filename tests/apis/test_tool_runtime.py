"""Tool runtime: invocation results and the RAG tool's documents and query config."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._content import URL, TextContentItem
from stack.apis.tool_runtime import (
    DefaultRAGQueryGeneratorConfig,
    LLMRAGQueryGeneratorConfig,
    RAGDocument,
    RAGToolRuntime,
    RAGQueryConfig,
    RAGQueryGeneratorConfig,
    RAGQueryResult,
    ToolInvocationResult,
    ToolRuntime,
)

generators = TypeAdapter(RAGQueryGeneratorConfig)


@pytest.mark.parametrize(
    "payload,cls",
    [
        ({"type": "default", "separator": "\n"}, DefaultRAGQueryGeneratorConfig),
        ({"type": "llm", "model": "m", "template": "Rewrite as a query: {messages}"}, LLMRAGQueryGeneratorConfig),
    ],
)
def test_each_query_generator_parses_and_round_trips(payload, cls):
    parsed = generators.validate_python(payload)
    assert type(parsed) is cls
    assert parsed.model_dump(mode="json") == payload


def test_bad_query_generator_is_rejected():
    with pytest.raises(ValidationError):
        generators.validate_python({"type": "bm25"})
    with pytest.raises(ValidationError, match="template"):
        generators.validate_python({"type": "llm", "model": "m"})


def test_default_generator_separator_is_a_space():
    assert generators.validate_python({"type": "default"}).separator == " "


def test_query_config_defaults_and_required_generator():
    cfg = RAGQueryConfig.model_validate({"query_generator_config": {"type": "default"}})
    assert (cfg.max_tokens_in_context, cfg.max_chunks) == (4096, 5)
    with pytest.raises(ValidationError, match="query_generator_config"):
        RAGQueryConfig.model_validate({"max_chunks": 3})


@pytest.mark.parametrize(
    "content,kind",
    [
        ("inline text", str),
        ({"type": "text", "text": "an item"}, TextContentItem),
        ([{"type": "text", "text": "a"}], list),
        ({"uri": "https://example.com/doc.pdf"}, URL),
    ],
)
def test_rag_document_content_variants(content, kind):
    doc = RAGDocument.model_validate({"document_id": "d1", "content": content, "metadata": {}})
    assert isinstance(doc.content, kind)
    assert RAGDocument.model_validate(doc.model_dump(mode="json")) == doc


def test_invocation_result_round_trips():
    ok = {"content": "42", "error_message": None, "error_code": None}
    assert ToolInvocationResult.model_validate(ok).model_dump(mode="json") == ok
    failed = ToolInvocationResult(content="", error_message="timeout", error_code=1)
    assert ToolInvocationResult.model_validate(failed.model_dump(mode="json")) == failed
    assert RAGQueryResult().content is None


def test_rag_bodies(body_model):
    insert = body_model(RAGToolRuntime.rag_tool_insert)
    with pytest.raises(ValidationError, match="chunk_size_in_tokens"):
        insert.model_validate({"documents": [], "vector_db_id": "v"})
    query = body_model(RAGToolRuntime.rag_tool_query).model_validate(
        {"content": "what is polystack?", "vector_db_ids": ["v"],
         "query_config": {"query_generator_config": {"type": "default", "separator": " "}, "max_chunks": 2}}
    )
    assert query.query_config.max_chunks == 2


def test_invoke_body_takes_free_form_kwargs(body_model):
    model = body_model(ToolRuntime.invoke_tool)
    body = model.model_validate({"tool_name": "web_search", "kwargs": {"query": "x", "n": [1, 2]}})
    assert body.kwargs["n"] == [1, 2]
    with pytest.raises(ValidationError, match="kwargs"):
        model.model_validate({"tool_name": "web_search"})
