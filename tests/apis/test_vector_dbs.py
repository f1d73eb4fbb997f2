"""Vector DBs: the resource, the run-config input and registration defaults."""

import pytest
from pydantic import ValidationError

from stack.apis.vector_dbs import ListVectorDBsResponse, VectorDB, VectorDBInput, VectorDBs

VDB = {
    "identifier": "docs",
    "provider_resource_id": "docs",
    "provider_id": "faiss",
    "type": "vector_db",
    "embedding_model": "all-MiniLM-L6-v2",
    "embedding_dimension": 384,
}


def test_vector_db_round_trips():
    vdb = VectorDB.model_validate(VDB)
    assert vdb.vector_db_id == "docs"
    assert ListVectorDBsResponse(data=[vdb]).model_dump(mode="json") == {"data": [VDB]}


def test_vector_db_requires_embedding_fields():
    with pytest.raises(ValidationError, match="embedding_dimension"):
        VectorDB.model_validate({k: v for k, v in VDB.items() if k != "embedding_dimension"})


def test_vector_db_input_defaults_and_forbids_typos():
    entry = VectorDBInput.model_validate({"vector_db_id": "docs", "embedding_model": "all-MiniLM-L6-v2"})
    assert entry.embedding_dimension == 384 and entry.provider_id is None
    with pytest.raises(ValidationError, match="embeding_model"):
        VectorDBInput.model_validate({"vector_db_id": "d", "embedding_model": "m", "embeding_model": "m"})


def test_register_body_defaults_dimension(body_model):
    model = body_model(VectorDBs.register_vector_db)
    body = model.model_validate({"vector_db_id": "d", "embedding_model": "all-MiniLM-L6-v2"})
    assert body.embedding_dimension == 384
    with pytest.raises(ValidationError, match="embedding_model"):
        model.model_validate({"vector_db_id": "d"})
