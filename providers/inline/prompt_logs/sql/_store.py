"""Tables of the prompt-logs provider and the reads and writes the API needs.

Prompts, versions and reference-named sessions get ids derived from what names
them, so replicas sharing one database create each exactly once (an insert
that hits the existing row is the "already there" answer).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from stack.storage import ColumnType, DuplicateKeyError, SqlStore

T, J, TS = ColumnType.TEXT, ColumnType.JSON, ColumnType.TIMESTAMP
TABLES: dict[str, tuple[dict[str, ColumnType], str]] = {
    "prompts": ({"id": T, "path": T, "created_at": TS}, "id"),
    "versions": ({"id": T, "prompt_id": T, "kernel": J, "created_at": TS}, "id"),
    "sessions": ({"id": T, "project_id": T, "reference_id": T, "created_at": TS}, "id"),
    "logs": ({"id": T, "prompt_id": T, "version_id": T, "session_id": T, "parent_id": T, "reference_id": T,
              "created_at": TS, "updated_at": TS, "data": J}, "id"),
    # one row per reference_id: a second log with the same one is refused
    "log_refs": ({"reference_id": T, "log_id": T}, "reference_id"),
    "feedback": ({"id": T, "log_id": T, "created_at": TS, "data": J}, "id"),
}

INDEXES = [
    ("logs", "newest", ("created_at", "id")),
    ("logs", "of_prompt", ("prompt_id", "created_at")),
    ("logs", "of_session", ("session_id", "created_at")),
    ("prompts", "newest", ("created_at",)),
]


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def derived_id(prefix: str, *parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:24]}"


class PromptLogStore:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    async def create_tables(self) -> None:
        for name, (columns, key) in TABLES.items():
            await self.sql.create_table(name, columns, key)
        # list pages (newest first, of a project or session) read an index in order, never sort every log
        for table, index, columns in INDEXES:
            await self.sql.create_index(table, index, columns)

    async def close(self) -> None:
        await self.sql.close()

    async def _insert_once(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """Insert ``row`` unless its id exists; the stored row either way."""
        try:
            await self.sql.insert(table, row)
        except DuplicateKeyError:
            pass
        return await self.sql.fetch_one(table, {"id": row["id"]})

    async def get(self, table: str, id: str) -> dict[str, Any] | None:
        return await self.sql.fetch_one(table, {"id": id})

    # -- prompts (v4 projects) and versions ---------------------------------

    async def prompt_for_path(self, path: str) -> dict[str, Any]:
        return await self._insert_once("prompts", {"id": derived_id("pr", path), "path": path, "created_at": now()})

    async def version_for(self, prompt_id: str, kernel: dict[str, Any]) -> dict[str, Any]:
        row = {"id": derived_id("prv", prompt_id, kernel), "prompt_id": prompt_id, "kernel": kernel, "created_at": now()}
        return await self._insert_once("versions", row)

    async def latest_version(self, prompt_id: str) -> dict[str, Any] | None:
        return await self.sql.fetch_one("versions", {"prompt_id": prompt_id}, order_by=[("created_at", "desc")])

    # -- sessions -------------------------------------------------------------

    async def session_for_reference(self, reference_id: str, project_id: str) -> dict[str, Any]:
        row = {"id": derived_id("sesh", reference_id), "project_id": project_id, "reference_id": reference_id,
               "created_at": now()}
        return await self._insert_once("sessions", row)

    async def new_session(self, project_id: str) -> dict[str, Any]:
        row = {"id": new_id("sesh"), "project_id": project_id, "reference_id": None, "created_at": now()}
        await self.sql.insert("sessions", row)
        return row

    async def sessions_of(self, project_id: str) -> list[dict[str, Any]]:
        return await self.sql.fetch_all("sessions", {"project_id": project_id}, order_by=[("created_at", "desc")])

    # -- logs -----------------------------------------------------------------

    async def claim_reference(self, reference_id: str, log_id: str) -> bool:
        """Tie ``reference_id`` to ``log_id``; False when another log holds it."""
        try:
            await self.sql.insert("log_refs", {"reference_id": reference_id, "log_id": log_id})
        except DuplicateKeyError:
            return False
        return True

    async def log_by_reference(self, reference_id: str) -> dict[str, Any] | None:
        ref = await self.sql.fetch_one("log_refs", {"reference_id": reference_id})
        return await self.get("logs", ref["log_id"]) if ref else None

    async def insert_log(self, row: dict[str, Any]) -> bool:
        """Store a new log; False when its id exists."""
        try:
            await self.sql.insert("logs", row)
        except DuplicateKeyError:
            return False
        return True

    async def update_log(self, log_id: str, data: dict[str, Any]) -> None:
        await self.sql.update("logs", {"data": data, "updated_at": now()}, {"id": log_id})

    async def logs_where(self, **where: Any) -> list[dict[str, Any]]:
        return await self.sql.fetch_all("logs", where, order_by=[("created_at", "desc"), ("id", "asc")])

    async def logs_page(self, where: dict[str, Any], limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.sql.select("logs", where=where, order_by=[("created_at", "desc"), ("id", "asc")],
                                     limit=limit, offset=offset)

    async def prompts_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.sql.select("prompts", order_by=[("created_at", "desc"), ("id", "asc")],
                                     limit=limit, offset=offset)

    # -- feedback -------------------------------------------------------------

    async def add_feedback(self, log_id: str, data: dict[str, Any], created_at: datetime) -> dict[str, Any]:
        row = {"id": new_id("fbk"), "log_id": log_id, "created_at": created_at, "data": data}
        await self.sql.insert("feedback", row)
        return row

    async def feedback_of(self, log_id: str) -> list[dict[str, Any]]:
        return await self.sql.fetch_all("feedback", {"log_id": log_id}, order_by=[("created_at", "asc")])
