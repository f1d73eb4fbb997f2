"""VectorIO: chunks carry any interleaved content; query results pair chunks and scores."""

import pytest
from pydantic import ValidationError

from stack.apis._content import ImageContentItem, TextContentItem
from stack.apis.vector_io import Chunk, QueryChunksResponse, VectorIO


@pytest.mark.parametrize(
    "content,kind",
    [
        ("plain text", str),
        ({"type": "text", "text": "an item"}, TextContentItem),
        ([{"type": "text", "text": "a"}, {"type": "image", "image": {"url": {"uri": "https://x/y.png"}}}], list),
    ],
)
def test_chunk_content_variants_round_trip(content, kind):
    chunk = Chunk.model_validate({"content": content, "metadata": {"document_id": "doc-1", "token_count": 3}})
    assert isinstance(chunk.content, kind)
    assert chunk.model_dump(mode="json", exclude_none=True) == {
        "content": content,
        "metadata": {"document_id": "doc-1", "token_count": 3},
    }


def test_chunk_list_items_are_discriminated():
    chunk = Chunk.model_validate({"content": [{"type": "image", "image": {"data": "AAAA"}}], "metadata": {}})
    assert isinstance(chunk.content[0], ImageContentItem)
    with pytest.raises(ValidationError):
        Chunk.model_validate({"content": [{"type": "video", "video": "x"}], "metadata": {}})


def test_query_response_round_trips():
    payload = {"chunks": [{"content": "a", "metadata": {}}], "scores": [0.9]}
    assert QueryChunksResponse.model_validate(payload).model_dump(mode="json") == payload


def test_insert_and_query_bodies(body_model):
    insert = body_model(VectorIO.insert_chunks).model_validate(
        {"vector_db_id": "d", "chunks": [{"content": "x", "metadata": {"document_id": "1"}}]}
    )
    assert insert.ttl_seconds is None and isinstance(insert.chunks[0], Chunk)
    query_model = body_model(VectorIO.query_chunks)
    query = query_model.model_validate({"vector_db_id": "d", "query": "what?", "params": {"max_chunks": 3}})
    assert query.params == {"max_chunks": 3}
    with pytest.raises(ValidationError, match="query"):
        query_model.model_validate({"vector_db_id": "d"})
