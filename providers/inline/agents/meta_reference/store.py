"""Agents, sessions and turns in a KV store.

A turn is written once, when it completes, as one value: a client that goes
away mid-turn leaves nothing half-written, and every turn a client saw
complete is on disk. Keys:

    agent:{agent_id}                      AgentRecord
    session:{agent_id}:{session_id}       SessionRecord
    turn:{session_id}:{turn_id}           Turn
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from stack.apis.agents import AgentConfig, Session, Turn
from stack.errors import NotFoundError
from stack.storage import KVStore


class AgentRecord(BaseModel):
    agent_id: str
    agent_config: AgentConfig
    created_at: datetime


class SessionRecord(BaseModel):
    agent_id: str
    session_id: str
    session_name: str
    started_at: datetime
    # Vector DB holding the documents attached to this session's turns (builtin::rag).
    documents_vector_db_id: str | None = None


class AgentStore:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    # -- agents ----------------------------------------------------------------

    async def put_agent(self, record: AgentRecord) -> None:
        await self.kv.set(f"agent:{record.agent_id}", record.model_dump_json())

    async def get_agent(self, agent_id: str) -> AgentRecord:
        raw = await self.kv.get(f"agent:{agent_id}")
        if raw is None:
            known = [k.removeprefix("agent:") for k, _ in await self.kv.items("agent:")]
            raise NotFoundError("agent", agent_id, known)
        return AgentRecord.model_validate_json(raw)

    async def delete_agent(self, agent_id: str) -> list[SessionRecord]:
        """Delete the agent with its sessions and turns; returns the sessions deleted."""
        sessions = await self.list_sessions(agent_id)
        for session in sessions:
            await self.delete_session(session)
        await self.kv.delete(f"agent:{agent_id}")
        return sessions

    # -- sessions --------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        await self.kv.set(f"session:{record.agent_id}:{record.session_id}", record.model_dump_json())

    async def get_session(self, agent_id: str, session_id: str) -> SessionRecord:
        raw = await self.kv.get(f"session:{agent_id}:{session_id}")
        if raw is None:
            known = [s.session_id for s in await self.list_sessions(agent_id)]
            raise NotFoundError("session", session_id, known,
                                message=f"agent {agent_id!r} has no session {session_id!r}")
        return SessionRecord.model_validate_json(raw)

    async def list_sessions(self, agent_id: str) -> list[SessionRecord]:
        return [SessionRecord.model_validate_json(v) for _, v in await self.kv.items(f"session:{agent_id}:")]

    async def delete_session(self, session: SessionRecord) -> None:
        for key, _ in await self.kv.items(f"turn:{session.session_id}:"):
            await self.kv.delete(key)
        await self.kv.delete(f"session:{session.agent_id}:{session.session_id}")

    async def read_session(self, session: SessionRecord, turn_ids: list[str] | None = None) -> Session:
        turns = await self.list_turns(session.session_id)
        if turn_ids is not None:
            wanted = set(turn_ids)
            turns = [t for t in turns if t.turn_id in wanted]
        return Session(
            session_id=session.session_id,
            session_name=session.session_name,
            turns=turns,
            started_at=session.started_at,
        )

    # -- turns -----------------------------------------------------------------

    async def put_turn(self, turn: Turn) -> None:
        await self.kv.set(f"turn:{turn.session_id}:{turn.turn_id}", turn.model_dump_json())

    async def get_turn(self, session_id: str, turn_id: str) -> Turn:
        raw = await self.kv.get(f"turn:{session_id}:{turn_id}")
        if raw is None:
            known = [t.turn_id for t in await self.list_turns(session_id)]
            raise NotFoundError("turn", turn_id, known, message=f"session {session_id!r} has no turn {turn_id!r}")
        return Turn.model_validate_json(raw)

    async def list_turns(self, session_id: str) -> list[Turn]:
        """The session's turns, oldest first."""
        turns = [Turn.model_validate_json(v) for _, v in await self.kv.items(f"turn:{session_id}:")]
        return sorted(turns, key=lambda t: t.started_at)
