"""The Agents API of ``inline::meta-reference``."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from contextlib import aclosing
from datetime import datetime, timezone
from typing import AsyncIterator

from stack.apis.agents import (
    AgentConfig,
    AgentCreateResponse,
    AgentSessionCreateResponse,
    AgentStepResponse,
    AgentTool,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnCompletePayload,
    Document,
    Session,
    Turn,
)
from stack.apis.models import ModelType
from stack.apis.tool_runtime import RAGDocument
from stack.errors import BadRequestError, NotFoundError
from stack.registry import ProviderContext
from stack.storage import SqliteStoreConfig, kvstore_from_config

from .config import MetaReferenceAgentsConfig
from .documents import SessionFiles, document_text, document_url, file_note
from .store import AgentRecord, AgentStore, SessionRecord
from .tools import Toolbox, build_toolbox
from .turn import AgentDeps, TurnRunner

log = logging.getLogger(__name__)


class MetaReferenceAgents:
    def __init__(self, config: MetaReferenceAgentsConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        deps = context.deps
        self.deps = AgentDeps(inference=deps["inference"], safety=deps.get("safety"), tool_runtime=deps.get("tool_runtime"))
        self.models = deps["models"]
        self.shields = deps.get("shields") if "safety" in deps else None
        self.tool_groups = deps.get("tool_groups") if "tool_runtime" in deps else None
        self.vector_dbs = deps.get("vector_dbs") if "vector_io" in deps else None
        self.store: AgentStore | None = None
        self.files = SessionFiles(context.data_dir / "agent_files", context.fetcher, config.max_document_bytes)
        # One turn at a time per session, so each turn sees the one before it.
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def initialize(self) -> None:
        kv = await kvstore_from_config(
            self.config.persistence_store or SqliteStoreConfig(),
            default_path=self.context.data_dir / "agents_store.db",
        )
        self.store = AgentStore(kv)

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.kv.close()
            self.store = None

    # -- agents ------------------------------------------------------------------

    async def create_agent(self, agent_config: AgentConfig) -> AgentCreateResponse:
        await self._check_config(agent_config)
        agent_id = str(uuid.uuid4())
        await self.store.put_agent(AgentRecord(agent_id=agent_id, agent_config=agent_config, created_at=datetime.now(timezone.utc)))
        return AgentCreateResponse(agent_id=agent_id)

    async def _check_config(self, cfg: AgentConfig) -> None:
        try:
            model = await self.models.get(cfg.model)
        except NotFoundError as exc:
            raise BadRequestError(exc.message, field="agent_config.model") from None
        if model.model_type != ModelType.llm:
            raise BadRequestError(f"{cfg.model!r} is an {model.model_type.value} model, not an llm", field="agent_config.model")
        if cfg.max_infer_iters < 1:
            raise BadRequestError("must be at least 1", field="agent_config.max_infer_iters")
        for name in ("input_shields", "output_shields"):
            for i, shield_id in enumerate(getattr(cfg, name) or []):
                if self.shields is None:
                    raise BadRequestError("this stack serves no safety API", field=f"agent_config.{name}")
                try:
                    await self.shields.get(shield_id)
                except NotFoundError as exc:
                    raise BadRequestError(exc.message, field=f"agent_config.{name}[{i}]") from None
        await self._toolbox(cfg, None)

    async def _toolbox(self, cfg: AgentConfig, turn_toolgroups: list[AgentTool] | None) -> Toolbox:
        """The agent's tools, or for one turn the turn's own tool groups instead of the agent's."""
        groups, where = (cfg.toolgroups or [], "agent_config.toolgroups") if turn_toolgroups is None else (turn_toolgroups, "toolgroups")
        return await build_toolbox(
            self.tool_groups, groups, cfg.client_tools or [], field_name=where, client_field="agent_config.client_tools"
        )

    async def delete_agent(self, agent_id: str) -> None:
        await self.store.get_agent(agent_id)
        for session in await self.store.delete_agent(agent_id):
            await self._drop_documents(session)

    # -- sessions ----------------------------------------------------------------

    async def create_agent_session(self, agent_id: str, session_name: str) -> AgentSessionCreateResponse:
        await self.store.get_agent(agent_id)
        session_id = str(uuid.uuid4())
        await self.store.put_session(SessionRecord(
            agent_id=agent_id, session_id=session_id, session_name=session_name, started_at=datetime.now(timezone.utc)
        ))
        return AgentSessionCreateResponse(session_id=session_id)

    async def get_agents_session(self, session_id: str, agent_id: str, turn_ids: list[str] | None = None) -> Session:
        await self.store.get_agent(agent_id)
        return await self.store.read_session(await self.store.get_session(agent_id, session_id), turn_ids)

    async def delete_agents_session(self, session_id: str, agent_id: str) -> None:
        await self.store.get_agent(agent_id)
        session = await self.store.get_session(agent_id, session_id)
        async with self._lock(session_id):
            await self.store.delete_session(session)
        await self._drop_documents(session)

    async def _drop_documents(self, session: SessionRecord) -> None:
        await self.files.remove(session.session_id)
        if session.documents_vector_db_id and self.vector_dbs is not None:
            try:
                await self.vector_dbs.unregister_vector_db(session.documents_vector_db_id)
            except NotFoundError:
                pass

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = self._session_locks[session_id] = asyncio.Lock()
        return lock

    # -- turns -------------------------------------------------------------------

    async def create_agent_turn(
        self,
        agent_id: str,
        session_id: str,
        messages: list,
        stream: bool | None = False,
        documents: list[Document] | None = None,
        toolgroups: list[AgentTool] | None = None,
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]:
        agent = await self.store.get_agent(agent_id)
        session = await self.store.get_session(agent_id, session_id)
        if not messages:
            raise BadRequestError("a turn needs at least one message", field="messages")
        toolbox = await self._toolbox(agent.agent_config, toolgroups)
        inline_context = None
        if documents:
            inline_context = await self._documents_context(session_id, documents, toolbox)
            if toolbox.has_rag:
                session = await self._index_documents(session, documents)
        if session.documents_vector_db_id and toolbox.has_rag:
            toolbox.with_documents_db(session.documents_vector_db_id)
        if toolbox.runs_code and self.files.folder(session_id).is_dir():
            toolbox.files_dir = self.files.folder(session_id)
        runner = TurnRunner(agent, session_id, self.deps, self.store, toolbox)
        events = self._locked(session_id, runner.run(messages, inline_context=inline_context))
        if stream:
            return events
        async for chunk in events:
            payload = chunk.event.payload
            if isinstance(payload, AgentTurnResponseTurnCompletePayload):
                return payload.turn
        raise RuntimeError("turn ended without turn_complete")  # the runner always ends with it

    async def _locked(self, session_id: str, events: AsyncIterator) -> AsyncIterator:
        async with self._lock(session_id):
            async with aclosing(events):
                async for chunk in events:
                    yield chunk

    async def _documents_context(self, session_id: str, documents: list[Document], toolbox: Toolbox) -> str | None:
        """What the model is told of the turn's documents: where the ones given by URL were downloaded
        (for builtin::code_interpreter) and, without builtin::rag (which indexes them), the inline texts."""
        for i, doc in enumerate(documents):
            if document_url(doc) is not None and not (toolbox.runs_code or toolbox.has_rag):
                raise BadRequestError(
                    "a document given by URL needs builtin::rag (to index it) or builtin::code_interpreter "
                    "(to read it) in the agent's toolgroups", field=f"documents[{i}].content")
        notes, texts = [], []
        for i, doc in enumerate(documents):
            url = document_url(doc)
            if url is not None and toolbox.runs_code:
                path = await self.files.download(session_id, url, doc.mime_type, field=f"documents[{i}].content")
                notes.append(file_note(path))
            elif url is None and not toolbox.has_rag:
                texts.append(document_text(doc))
        if texts:
            notes.append("Documents attached to this message:\n\n" + "\n\n---\n\n".join(texts))
        return "\n\n".join(notes) or None

    async def _index_documents(self, session: SessionRecord, documents: list[Document]) -> SessionRecord:
        """Put the documents into the session's vector DB (made on first use) for knowledge_search."""
        if session.documents_vector_db_id is None:
            if self.vector_dbs is None:
                raise BadRequestError("documents with builtin::rag need a vector_io provider in the stack", field="documents")
            embedding = next((m for m in await self.models.list() if m.model_type == ModelType.embedding), None)
            if embedding is None:
                raise BadRequestError("documents with builtin::rag need a registered embedding model", field="documents")
            vector_db_id = f"agent-session-{session.session_id}"
            await self.vector_dbs.register_vector_db(
                vector_db_id=vector_db_id,
                embedding_model=embedding.identifier,
                embedding_dimension=embedding.metadata.get("embedding_dimension"),
            )
            session = session.model_copy(update={"documents_vector_db_id": vector_db_id})
            await self.store.put_session(session)
        rag_documents = [
            RAGDocument(
                document_id=f"{session.session_id}-{uuid.uuid4().hex[:12]}",
                content=doc.content,
                mime_type=doc.mime_type,
                metadata={"session_id": session.session_id},
            )
            for doc in documents
        ]
        await self.deps.tool_runtime.rag_tool_insert(
            documents=rag_documents,
            vector_db_id=session.documents_vector_db_id,
            chunk_size_in_tokens=self.config.document_chunk_size_in_tokens,
        )
        return session

    async def get_agents_turn(self, agent_id: str, session_id: str, turn_id: str) -> Turn:
        await self.store.get_agent(agent_id)
        await self.store.get_session(agent_id, session_id)
        return await self.store.get_turn(session_id, turn_id)

    async def get_agents_step(self, agent_id: str, session_id: str, turn_id: str, step_id: str) -> AgentStepResponse:
        turn = await self.get_agents_turn(agent_id, session_id, turn_id)
        for step in turn.steps:
            if step.step_id == step_id:
                return AgentStepResponse(step=step)
        raise NotFoundError("step", step_id, [s.step_id for s in turn.steps],
                            message=f"turn {turn_id!r} has no step {step_id!r}")

