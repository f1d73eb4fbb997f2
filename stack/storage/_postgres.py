"""PostgreSQL backend: psycopg 3 with an async connection pool.

Many server replicas may share one database: tables are created under an
advisory lock, and every write is a single autocommitted statement.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timezone
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ._config import PostgresStoreConfig
from ._errors import RETRY_AFTER, DuplicateKeyError, StorageError, StorageUnavailableError
from ._kv import KVStore
from ._sql import ColumnType, JsonText, Schema, SqlStore, quote

_COLUMN_SQL = {
    ColumnType.INTEGER: "BIGINT",
    ColumnType.REAL: "DOUBLE PRECISION",
    ColumnType.TEXT: 'TEXT COLLATE "C"',  # byte order, the same order SQLite uses
    ColumnType.JSON: "JSONB",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.TIMESTAMP: "TIMESTAMPTZ",
    ColumnType.BLOB: "BYTEA",
}
_INTROSPECTED = {
    "bigint": ColumnType.INTEGER,
    "integer": ColumnType.INTEGER,
    "smallint": ColumnType.INTEGER,
    "double precision": ColumnType.REAL,
    "real": ColumnType.REAL,
    "text": ColumnType.TEXT,
    "character varying": ColumnType.TEXT,
    "jsonb": ColumnType.JSON,
    "json": ColumnType.JSON,
    "boolean": ColumnType.BOOLEAN,
    "timestamp with time zone": ColumnType.TIMESTAMP,
    "timestamp without time zone": ColumnType.TIMESTAMP,
    "bytea": ColumnType.BLOB,
}
_INTROSPECT = (
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position"
)


#: what jsonb keeps of a float it has no number for
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_text(value: Any) -> str:
    """``value`` as JSON text jsonb takes: a NaN or infinity (which jsonb has no number for, and
    which would fail the whole write) becomes its name as a string, as in protobuf's JSON."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_names_for_non_finite(value), allow_nan=False)


def _names_for_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {k: _names_for_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_names_for_non_finite(v) for v in value]
    return value


def _as_is(text: str) -> str:
    return text


def _conninfo(config: PostgresStoreConfig) -> str:
    if config.dsn:
        return config.dsn
    params = {"host": config.host, "port": config.port, "dbname": config.db}
    params.update(user=config.user, password=config.password)
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def _where(config: PostgresStoreConfig) -> str:
    """host:port/db for error messages (never the password)."""
    try:
        params = conninfo_to_dict(_conninfo(config))
    except psycopg.Error:
        return "the configured dsn (unparseable)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or 5432
    return f"host={host} port={port} db={params.get('dbname') or '(default)'}"


class PostgresDatabase:
    """A connection pool plus the error translation every call shares."""

    def __init__(self, pool: AsyncConnectionPool, label: str) -> None:
        self.pool = pool
        self.label = label

    @classmethod
    async def open(cls, config: PostgresStoreConfig) -> PostgresDatabase:
        conninfo, label = _conninfo(config), _where(config)
        try:
            # one direct connection first: its error says why (refused, auth, no db)
            conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=config.connect_timeout)
            await conn.close()
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {label}: {exc}".strip()) from exc
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=config.pool_max_size,
            kwargs={"autocommit": True},
            # its reconnect attempts back off (1, 2, 4 s ...); give up after
            # about a Retry-After, so the next request tries again at once
            reconnect_timeout=RETRY_AFTER,
            timeout=config.connect_timeout,
            open=False,
            name="polystack",
        )
        try:
            await pool.open(wait=True, timeout=config.connect_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise StorageError(f"cannot connect to PostgreSQL at {label}: {exc}") from exc
        return cls(pool, label)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateKeyError(str(exc)) from exc
        except psycopg.OperationalError as exc:  # refused, dropped, shut down, pool timeout
            # the other idle connections likely died too: drop them now, so
            # requests succeed again as soon as PostgreSQL is back (checking
            # every connection before use instead would cost a round trip each)
            await self.pool.check()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailableError(f"PostgreSQL at {self.label} is unavailable: {first}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error at {self.label}: {exc}") from exc

    async def fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return cur.rowcount

    @asynccontextmanager
    async def locked(self, name: str) -> AsyncIterator[psycopg.AsyncConnection]:
        """A transaction holding an advisory lock on `name`, so replicas that
        start together do not race on CREATE TABLE."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
            yield conn

    async def close(self) -> None:
        await self.pool.close()


class PostgresKVStore(KVStore):
    def __init__(self, db: PostgresDatabase, table: str, namespace: str | None) -> None:
        super().__init__(namespace)
        self._db = db
        self._table = quote(table)

    @classmethod
    async def open(cls, config: PostgresStoreConfig) -> PostgresKVStore:
        db = await PostgresDatabase.open(config)
        table = quote(config.table_name)
        try:
            async with db.locked(config.table_name) as conn:
                await conn.execute(
                    f'CREATE TABLE IF NOT EXISTS {table} (key TEXT COLLATE "C" PRIMARY KEY, value TEXT)'
                )
        except BaseException:
            await db.close()
            raise
        return cls(db, config.table_name, config.namespace)

    async def _get(self, key: str) -> str | None:
        rows = await self._db.fetchall(f"SELECT value FROM {self._table} WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    async def _set(self, key: str, value: str) -> None:
        await self._db.execute(
            f"INSERT INTO {self._table} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def _delete(self, key: str) -> None:
        await self._db.execute(f"DELETE FROM {self._table} WHERE key = %s", (key,))

    async def _scan(self, start: str, stop: str | None) -> list[tuple[str, str]]:
        # explicit "C": correct even on a table created with another collation
        sql = f'SELECT key, value FROM {self._table} WHERE key COLLATE "C" >= %s'
        params: tuple[str, ...] = (start,)
        if stop is not None:
            sql += ' AND key COLLATE "C" < %s'
            params = (start, stop)
        return await self._db.fetchall(sql + ' ORDER BY key COLLATE "C"', params)

    async def _close(self) -> None:
        await self._db.close()


class PostgresSqlStore(SqlStore):
    placeholder = "%s"
    _json_types: ClassVar[dict[str, Any]] = {
        "null": "null", "string": "string", "number": ("number",), "boolean": ("boolean",)}
    _text_order = ' COLLATE "C"'  # byte order, as SQLite compares

    def _json_elements(self, column: str) -> tuple[str, str]:
        return f"jsonb_array_elements({column}) AS e(value)", "e.value"

    def _json_at(self, element: str, path: tuple[int | str, ...]) -> tuple[str, dict[str, str]]:
        # keys as literals ('' escaped; %% since psycopg reads % as a placeholder)
        at = element + "".join(
            f" -> {int(k)}" if isinstance(k, int) else " -> '" + k.replace("'", "''").replace("%", "%%") + "'"
            for k in path)
        return f"jsonb_typeof({at})", {"string": f"({at} #>> '{{}}')", "number": f"({at})::numeric",
                                       "boolean": f"(({at})::boolean)::int"}

    def __init__(self, db: PostgresDatabase, namespace: str | None) -> None:
        super().__init__(namespace)
        self._db = db

    @classmethod
    async def open(cls, config: PostgresStoreConfig) -> PostgresSqlStore:
        return cls(await PostgresDatabase.open(config), config.namespace)

    def _column_sql(self, ctype: ColumnType) -> str:
        return _COLUMN_SQL[ctype]

    def _encode(self, ctype: ColumnType, value: Any) -> Any:
        if ctype is ColumnType.JSON:
            return Jsonb(value.text if type(value) is JsonText else _json_text(value), dumps=_as_is)
        if ctype is ColumnType.REAL:
            return float(value)
        return value

    def _decode(self, ctype: ColumnType | None, value: Any) -> Any:
        if ctype is ColumnType.TIMESTAMP and value is not None:
            if value.tzinfo is None:  # a TIMESTAMP column made elsewhere
                return value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
        return value

    async def _create_table(self, table: str, create: str, adds: dict[str, str]) -> Schema:
        async with self._db.locked(table) as conn:
            await conn.execute(create)
            existing = await self._columns(conn, table)
            for column, sql in adds.items():
                if column not in existing:
                    await conn.execute(sql)
            return await self._columns(conn, table)

    async def _create_index(self, table: str, create: str) -> None:
        # IF NOT EXISTS is not safe against a concurrent CREATE INDEX of the same
        # name (a unique violation in pg_class), so replicas take the table's lock
        async with self._db.locked(table) as conn:
            await conn.execute(create)

    @staticmethod
    async def _columns(conn: psycopg.AsyncConnection, table: str) -> Schema:
        cur = await conn.execute(_INTROSPECT, (table,))
        return {name: _INTROSPECTED.get(kind) for name, kind in await cur.fetchall()}

    async def _introspect(self, table: str) -> Schema:
        async with self._db.connection() as conn:
            return await self._columns(conn, table)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self._db.fetchall(sql, params)

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        return await self._db.execute(sql, params)

    async def _execute_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        async with self._db.connection() as conn, conn.transaction():
            for sql, params in statements:
                await conn.execute(sql, params)

    async def _close(self) -> None:
        await self._db.close()
