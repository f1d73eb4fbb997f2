"""Vector DBs: the registry of vector stores and the embedding model each one uses."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._resource import Resource
from ._webmethod import webmethod


class VectorDB(Resource):
    type: Literal["vector_db"] = "vector_db"
    embedding_model: str
    embedding_dimension: int

    @property
    def vector_db_id(self) -> str:
        return self.identifier

    @property
    def provider_vector_db_id(self) -> str:
        return self.provider_resource_id


class ListVectorDBsResponse(BaseModel):
    data: list[VectorDB]


class VectorDBInput(BaseModel):
    """A vector DB as listed under ``vector_dbs:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    vector_db_id: str
    embedding_model: str
    # 384 is all-MiniLM-L6-v2, llama-stack's default embedding model.
    embedding_dimension: int = 384
    provider_id: str | None = None
    provider_vector_db_id: str | None = None


@runtime_checkable
class VectorDBs(Protocol):
    @webmethod(route="/v1/vector-dbs", method="GET")
    async def list_vector_dbs(self) -> ListVectorDBsResponse: ...

    @webmethod(route="/v1/vector-dbs/{vector_db_id}", method="GET")
    async def get_vector_db(self, vector_db_id: str) -> VectorDB | None: ...

    @webmethod(route="/v1/vector-dbs", method="POST", request_name="RegisterVectorDbRequest")
    async def register_vector_db(
        self,
        vector_db_id: str,
        embedding_model: str,
        embedding_dimension: int | None = 384,
        provider_id: str | None = None,
        provider_vector_db_id: str | None = None,
    ) -> VectorDB: ...

    @webmethod(route="/v1/vector-dbs/{vector_db_id}", method="DELETE")
    async def unregister_vector_db(self, vector_db_id: str) -> None: ...


PROTOCOL = VectorDBs
