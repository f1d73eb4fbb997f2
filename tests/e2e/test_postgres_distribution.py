"""The embedded ``postgres`` distribution end to end: every piece of state in
PostgreSQL (pgserver), so a server started on a fresh, empty local home
finds the registry, vector DBs and agent sessions of the one before it."""

from __future__ import annotations

import pytest
from llama_stack_client import LlamaStackClient

from tests.support import ServerProcess


@pytest.fixture
def pg_env(postgres_config) -> dict[str, str]:
    return {
        "POSTGRES_HOST": postgres_config.host,
        "POSTGRES_PORT": str(postgres_config.port),
        "POSTGRES_DB": postgres_config.db,
        "POSTGRES_USER": postgres_config.user or "",
    }


def test_state_lives_in_postgres_not_on_local_disk(pg_env, tmp_path):
    with ServerProcess("postgres", home=tmp_path / "first-home", env=pg_env) as first:
        client = LlamaStackClient(base_url=first.base_url, timeout=120)
        providers = {p.provider_id: p.provider_type for p in client.providers.list()}
        assert providers["pgvector"] == "remote::pgvector"
        client.vector_dbs.register(vector_db_id="kb", embedding_model="all-MiniLM-L6-v2", embedding_dimension=384)
        client.vector_io.insert(vector_db_id="kb", chunks=[
            {"content": "Neural networks are computing systems inspired by the brain.", "metadata": {"document_id": "nn"}},
            {"content": "Sourdough bread rises thanks to wild yeast.", "metadata": {"document_id": "bread"}},
        ])
        before = client.vector_io.query(vector_db_id="kb", query="brain-inspired computing")
        assert before.chunks[0].metadata["document_id"] == "nn"
        agent_id = client.agents.create(agent_config={
            "model": "SmolLM2-135M-Instruct", "instructions": "Be brief.", "enable_session_persistence": True,
            "input_shields": ["pattern-guard"], "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16},
        }).agent_id
        session_id = client.agents.session.create(agent_id=agent_id, session_name="kept").session_id
        client.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=False,
                                  messages=[{"role": "user", "content": "Hello."}])
        session_before = client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)

    # a second server on an empty home directory: only PostgreSQL connects the two
    second_home = tmp_path / "second-home"
    with ServerProcess("postgres", home=second_home, env=pg_env) as second:
        client = LlamaStackClient(base_url=second.base_url, timeout=120)
        assert "kb" in [db.identifier for db in client.vector_dbs.list()]
        after = client.vector_io.query(vector_db_id="kb", query="brain-inspired computing")
        assert [c.metadata["document_id"] for c in after.chunks] == [c.metadata["document_id"] for c in before.chunks]
        session_after = client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)
        assert session_after.model_dump() == session_before.model_dump()
        assert "pattern-guard" in [s.identifier for s in client.shields.list()]
    assert not any(p.suffix == ".db" for p in second_home.rglob("*")), "a SQLite store was written locally"
