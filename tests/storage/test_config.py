"""Store configs, default paths and opening errors."""

import socket
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.storage import (
    PostgresStoreConfig,
    SqliteStoreConfig,
    StorageError,
    StoreConfig,
    default_db_path,
    kvstore_from_config,
    polystack_home,
    sqlstore_from_config,
)

parse = TypeAdapter(StoreConfig).validate_python


def test_llama_stack_sqlite_block_loads():
    config = parse({"type": "sqlite", "namespace": None, "db_path": "~/.llama/faiss_store.db"})
    assert isinstance(config, SqliteStoreConfig)
    assert config.resolve_path(None) == Path.home() / ".llama/faiss_store.db"


def test_llama_stack_postgres_block_loads():
    config = parse(
        {
            "type": "postgres", "host": "db.internal", "port": "5433", "db": "stack",
            "user": "me", "password": "s3cret", "table_name": "llamastack_kvstore",
        }
    )
    assert isinstance(config, PostgresStoreConfig)
    assert (config.port, config.db) == (5433, "stack")
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "sqlite", "path": "x.db"}, "path"),
        ({"type": "postgres", "port": "abc"}, "port"),
        ({"type": "postgres", "port": 70000}, "port"),
        ({"type": "postgres", "table_name": "kv; DROP"}, "table_name"),
        ({"type": "sqlite", "namespace": "a b"}, "namespace"),
        ({"type": "redis"}, "type"),
    ],
)
def test_bad_values_fail_naming_the_field(data, field):
    with pytest.raises(ValidationError) as info:
        parse(data)
    assert field in str(info.value)


def test_default_path_under_polystack_home(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    assert polystack_home() == tmp_path / "home"
    assert default_db_path("starter", "registry") == tmp_path / "home/starter/registry.db"
    monkeypatch.delenv("POLYSTACK_HOME")
    assert polystack_home() == Path.home() / ".polystack"
    with pytest.raises(ValueError):
        default_db_path("../etc", "x")


async def test_sqlite_file_created_at_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    path = default_db_path("starter", "registry")
    kv = await kvstore_from_config(SqliteStoreConfig(), default_path=path)
    await kv.set("k", "v")
    await kv.close()
    assert path.is_file()


async def test_sqlite_without_any_path_is_an_error():
    with pytest.raises(ValueError, match="db_path"):
        await kvstore_from_config(SqliteStoreConfig())


async def test_sqlite_in_memory(tmp_path):
    sql = await sqlstore_from_config(SqliteStoreConfig(db_path=":memory:"))
    await sql.create_table("t", {"id": "text"}, primary_key="id")
    await sql.insert("t", {"id": "a"})
    assert await sql.fetch_all("t") == [{"id": "a"}]
    await sql.close()


async def test_sqlite_unopenable_path_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="file/sub"):
        await kvstore_from_config(SqliteStoreConfig(db_path=str(blocker / "sub" / "x.db")))


async def test_postgres_unreachable_names_host_port_db():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = PostgresStoreConfig(type="postgres", host="127.0.0.1", port=port, db="nodb", password="pw")
    with pytest.raises(StorageError) as info:
        await kvstore_from_config(config)
    message = str(info.value)
    assert f"host=127.0.0.1 port={port} db=nodb" in message
    assert "pw" not in message.replace("password", "")


async def test_postgres_dsn_wins(postgres_config):
    dsn = f"host={postgres_config.host} port=5432 dbname={postgres_config.db} user={postgres_config.user}"
    config = PostgresStoreConfig(type="postgres", host="ignored.invalid", dsn=dsn)
    kv = await kvstore_from_config(config)
    await kv.set("k", "v")
    assert await kv.get("k") == "v"
    await kv.close()
