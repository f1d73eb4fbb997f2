"""RAG end to end: the real starter, driven by llama-stack-client 0.1.0: rag-tool
insert of a Markdown, an HTML and a PDF document made here, then queries."""

import base64

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.providers.inline.tool_runtime.test_rag_runtime import make_pdf
from tests.support import ServerProcess, starter_with_server


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("docs")


@pytest.fixture(scope="module")
def client(tmp_path_factory, docs_dir):
    home = tmp_path_factory.mktemp("rag-home")
    config = starter_with_server(home / "run.yaml", fetch={"allow_dirs": [str(docs_dir)]})
    with ServerProcess(str(config), home=home) as proc:
        yield LlamaStackClient(base_url=proc.base_url, timeout=120)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_insert_documents_then_query_finds_the_right_source(client, docs_dir):
    client.vector_dbs.register(vector_db_id="kb", embedding_model="all-MiniLM-L6-v2", embedding_dimension=384)
    html_file = docs_dir / "rivers.html"
    html_file.write_text("<html><head><title>Rivers</title></head><body><p>The Nile is the longest river "
                         "in Africa and flows north into the Mediterranean Sea.</p></body></html>")
    client.tool_runtime.rag_tool.insert(
        vector_db_id="kb",
        chunk_size_in_tokens=64,
        documents=[
            {"document_id": "nn.md", "mime_type": "text/markdown", "metadata": {},
             "content": "# Neural networks\n\nBrain-inspired computing: artificial neurons learn weights from data."},
            {"document_id": "rivers.html", "metadata": {}, "content": f"file://{html_file}"},
            {"document_id": "leaf.pdf", "metadata": {},
             "content": data_url(make_pdf("Photosynthesis in green leaves turns sunlight into sugar"), "application/pdf")},
        ],
    )
    for question, source in [
        ("How do machines learn like a brain?", "nn.md"),
        ("Which river flows into the Mediterranean?", "rivers.html"),
        ("How do plants make sugar from light?", "leaf.pdf"),
    ]:
        result = client.tool_runtime.rag_tool.query(content=question, vector_db_ids=["kb"])
        text = "".join(item.text for item in result.content)
        assert text.index(f"document_id: {source}") == min(
            text.index(f"document_id: {d}") for d in ("nn.md", "rivers.html", "leaf.pdf") if f"document_id: {d}" in text
        ), text


def test_knowledge_search_tool_is_listed(client):
    tools = {t.identifier: t for t in client.tools.list(toolgroup_id="builtin::rag")}
    assert tools["knowledge_search"].parameters[0].name == "query"


def test_unknown_vector_db_is_404(client):
    with pytest.raises(APIStatusError) as info:
        client.tool_runtime.rag_tool.query(content="x", vector_db_ids=["no-such-db"])
    assert info.value.status_code == 404
