"""SQLite backend: WAL, synchronous=FULL, driver calls off the event loop.

Each database gets two single-thread executors, each owning one connection:
writes are serialized on one, reads run on the other so they never queue
behind a write's fsync (WAL lets them proceed side by side).
"""

from __future__ import annotations

import asyncio
import json
import operator
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from . import _jsontext
from ._errors import DuplicateKeyError, StorageError, StorageUnavailableError
from ._kv import KVStore
from ._sql import ColumnType, JsonText, Schema, SqlStore

T = TypeVar("T")

_COLUMN_SQL = {
    ColumnType.INTEGER: "INTEGER",
    ColumnType.REAL: "REAL",
    ColumnType.TEXT: "TEXT",
    # "TEXT" in the declared type gives TEXT affinity, so '5' stays a string
    ColumnType.JSON: "JSON TEXT",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.TIMESTAMP: "TIMESTAMP TEXT",
    ColumnType.BLOB: "BLOB",
}
_DECLARED = {sql: ctype for ctype, sql in _COLUMN_SQL.items()}
#: how long a statement waits for another process's lock before it is a 503
BUSY_TIMEOUT_MS = 10_000


class SqliteDatabase:
    """One SQLite database file with a writer and a reader connection."""

    def __init__(self, path: Path | None) -> None:
        self.label = str(path) if path else ":memory:"
        self._path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="polystack-sqlite-w")
        # an in-memory database exists only on its one connection
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="polystack-sqlite-r") if path else self._writer
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path | None) -> SqliteDatabase:
        db = cls(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            db._wconn = await db._run(db._writer, db._connect, True)
            db._rconn = db._wconn if path is None else await db._run(db._reader, db._connect, False)
        except (OSError, sqlite3.Error) as exc:
            await db.close()
            raise StorageError(f"cannot open SQLite database {db.label}: {exc}") from exc
        return db

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path or ":memory:", isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL on every commit
        else:
            conn.execute("PRAGMA query_only = 1")
        return conn

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` on the writer thread; committed when it returns."""
        return await self._call(self._writer, fn, self._wconn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(self._reader, fn, self._rconn, *args)

    async def _call(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._run(executor, fn, *args)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE constraint failed" in str(exc):
                raise DuplicateKeyError(str(exc)) from exc
            raise StorageError(f"SQLite error on {self.label}: {exc}") from exc
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):  # still so after busy_timeout
                raise StorageUnavailableError(f"SQLite database {self.label} is busy: {exc}") from exc
            raise StorageError(f"SQLite error on {self.label}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.label}: {exc}") from exc

    @staticmethod
    async def _run(executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def close(self) -> None:
        if self._rconn is not None and self._rconn is not self._wconn:
            await self._run(self._reader, self._rconn.close)
        if self._wconn is not None:
            await self._run(self._writer, self._wconn.close)
        self._rconn = self._wconn = None
        self._reader.shutdown(wait=False)
        self._writer.shutdown(wait=False)


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def _fetchone(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple | None:
    return conn.execute(sql, params).fetchone()


def _rowcount(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


class SqliteKVStore(KVStore):
    # table layout shared with llama-stack's SQLite KV store
    _CREATE = "CREATE TABLE IF NOT EXISTS kvstore (key TEXT PRIMARY KEY, value TEXT)"

    def __init__(self, db: SqliteDatabase, namespace: str | None) -> None:
        super().__init__(namespace)
        self._db = db

    @classmethod
    async def open(cls, path: Path | None, namespace: str | None) -> SqliteKVStore:
        db = await SqliteDatabase.open(path)
        try:
            await db.write(_rowcount, cls._CREATE, ())
        except BaseException:
            await db.close()
            raise
        return cls(db, namespace)

    async def _get(self, key: str) -> str | None:
        row = await self._db.read(_fetchone, "SELECT value FROM kvstore WHERE key = ?", (key,))
        return None if row is None else row[0]

    async def _set(self, key: str, value: str) -> None:
        await self._db.write(
            _rowcount,
            "INSERT INTO kvstore (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def _delete(self, key: str) -> None:
        await self._db.write(_rowcount, "DELETE FROM kvstore WHERE key = ?", (key,))

    async def _scan(self, start: str, stop: str | None) -> list[tuple[str, str]]:
        if stop is None:
            sql, params = "SELECT key, value FROM kvstore WHERE key >= ? ORDER BY key", (start,)
        else:
            sql = "SELECT key, value FROM kvstore WHERE key >= ? AND key < ? ORDER BY key"
            params = (start, stop)
        return await self._db.read(_fetchall, sql, params)

    async def _close(self) -> None:
        await self._db.close()


def _introspect(conn: sqlite3.Connection, table: str) -> Schema:
    rows = conn.execute("SELECT name, type FROM pragma_table_info(?)", (table,)).fetchall()
    return {name: _type_of(declared) for name, declared in rows}


def _type_of(declared: str) -> ColumnType | None:
    declared = declared.upper()
    if declared in _DECLARED:
        return _DECLARED[declared]
    if "INT" in declared:  # SQLite's own affinity rules, for tables made elsewhere
        return ColumnType.INTEGER
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return ColumnType.TEXT
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return ColumnType.REAL
    return None


def _create_table(conn: sqlite3.Connection, table: str, create: str, adds: dict[str, str]) -> Schema:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(create)
        existing = _introspect(conn, table)
        for column, sql in adds.items():
            if column not in existing:
                conn.execute(sql)
        schema = _introspect(conn, table)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return schema


def _execute_batch(conn: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _json_path(path: Sequence[int | str]) -> str:
    for key in path:
        if isinstance(key, str) and ('"' in key or "\\" in key):
            raise ValueError(f"a JSON path here cannot hold the key {key!r}")
    return "$" + "".join(f"[{int(k)}]" if isinstance(k, int) else f'."{k}"' for k in path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# JsonText binds as its text (a C attribute getter, called by the driver on the writer thread)
sqlite3.register_adapter(JsonText, operator.attrgetter("text"))


class SqliteSqlStore(SqlStore):
    placeholder = "?"
    # the driver binds these as they are: bool as 0 / 1, as _encode would; int into a REAL column
    # is stored as a real (the column's affinity), as _encode's unchanged value would be
    _binds_as_is: ClassVar[dict[ColumnType, frozenset[type]]] = {
        **SqlStore._binds_as_is, ColumnType.BOOLEAN: frozenset({bool}), ColumnType.REAL: frozenset({int, float}),
        ColumnType.JSON: frozenset({JsonText})}
    _json_types: ClassVar[dict[str, Any]] = {
        "null": "null", "string": "text", "number": ("integer", "real"), "boolean": ("true", "false")}

    def _json_elements(self, column: str) -> tuple[str, str]:
        return f"json_each({column}) AS e", "e.value"

    def _json_at(self, element: str, path: tuple[int | str, ...]) -> tuple[str, dict[str, str]]:
        *parent, last = path
        if isinstance(last, str) and ('"' in last or "\\" in last):
            # a JSON path cannot quote such a key: look it up among its object's members
            member = f"FROM json_each({element}, {_literal(_json_path(parent))}) AS a WHERE a.key = {_literal(last)}"
            kind, value = f"(SELECT a.type {member})", f"(SELECT a.atom {member})"
        else:
            where = _literal(_json_path(path))
            kind, value = f"json_type({element}, {where})", f"json_extract({element}, {where})"
        return kind, {"string": value, "number": value, "boolean": value}

    def _offset_only(self, offset: int) -> str:
        return f"LIMIT -1 OFFSET {offset}"

    def __init__(self, db: SqliteDatabase, namespace: str | None) -> None:
        super().__init__(namespace)
        self._db = db

    @classmethod
    async def open(cls, path: Path | None, namespace: str | None) -> SqliteSqlStore:
        return cls(await SqliteDatabase.open(path), namespace)

    def _column_sql(self, ctype: ColumnType) -> str:
        return _COLUMN_SQL[ctype]

    def _encode(self, ctype: ColumnType, value: Any) -> Any:
        if ctype is ColumnType.JSON:
            return value.text if type(value) is JsonText else _jsontext.dumps(value)
        if ctype is ColumnType.BOOLEAN:
            return int(value)
        if ctype is ColumnType.TIMESTAMP:
            return value.isoformat(timespec="microseconds")  # fixed width: sorts by time
        return value

    def _decode(self, ctype: ColumnType | None, value: Any) -> Any:
        if value is None or ctype is None:
            return value
        if ctype is ColumnType.JSON:
            return json.loads(value)
        if ctype is ColumnType.BOOLEAN:
            return bool(value)
        if ctype is ColumnType.TIMESTAMP:
            return datetime.fromisoformat(value)
        return value

    async def _create_table(self, table: str, create: str, adds: dict[str, str]) -> Schema:
        return await self._db.write(_create_table, table, create, adds)

    async def _introspect(self, table: str) -> Schema:
        return await self._db.read(_introspect, table)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self._db.read(_fetchall, sql, params)

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        return await self._db.write(_rowcount, sql, params)

    async def _execute_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        await self._db.write(_execute_batch, statements)

    async def _close(self) -> None:
        await self._db.close()
