"""Open a store from its config; the only place that picks a backend."""

from __future__ import annotations

from pathlib import Path

from ._config import PostgresStoreConfig, SqliteStoreConfig
from ._kv import KVStore
from ._sql import SqlStore


async def kvstore_from_config(
    config: SqliteStoreConfig | PostgresStoreConfig,
    *,
    default_path: Path | str | None = None,
) -> KVStore:
    """Open the KV store `config` describes. `default_path` is the SQLite file
    to use when `db_path` is unset (see `default_db_path`)."""
    if isinstance(config, SqliteStoreConfig):
        from ._sqlite import SqliteKVStore

        return await SqliteKVStore.open(config.resolve_path(default_path), config.namespace)
    if isinstance(config, PostgresStoreConfig):
        from ._postgres import PostgresKVStore

        return await PostgresKVStore.open(config)
    raise TypeError(f"not a store config: {config!r}")


async def sqlstore_from_config(
    config: SqliteStoreConfig | PostgresStoreConfig,
    *,
    default_path: Path | str | None = None,
) -> SqlStore:
    """Open the SQL store `config` describes; `default_path` as for KV stores."""
    if isinstance(config, SqliteStoreConfig):
        from ._sqlite import SqliteSqlStore

        return await SqliteSqlStore.open(config.resolve_path(default_path), config.namespace)
    if isinstance(config, PostgresStoreConfig):
        from ._postgres import PostgresSqlStore

        return await PostgresSqlStore.open(config)
    raise TypeError(f"not a store config: {config!r}")
