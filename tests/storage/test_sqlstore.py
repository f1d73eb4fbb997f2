"""SQL store conformance: every test runs on SQLite and on PostgreSQL."""

import asyncio
import math
from datetime import datetime, timedelta, timezone

import pytest

from stack.storage import ColumnType, DuplicateKeyError, JsonMatch, JsonTest, JsonText, StorageError

C = ColumnType
MODELS = {"id": C.TEXT, "provider": C.TEXT, "size": C.INTEGER, "score": C.REAL}


@pytest.fixture
async def models(sql):
    await sql.create_table("models", MODELS, primary_key="id")
    rows = [
        ("llama", "vllm", 8, 0.5),
        ("smol", "local", 1, 0.9),
        ("qwen", "vllm", 7, 0.7),
        ("mini", "local", 1, 0.1),
    ]
    for id_, provider, size, score in rows:
        await sql.insert("models", {"id": id_, "provider": provider, "size": size, "score": score})
    return sql


async def test_create_table_is_idempotent_and_keeps_rows(models):
    await models.create_table("models", MODELS, primary_key="id")
    assert len(await models.fetch_all("models")) == 4


async def test_fetch_all_where_order_limit(models):
    rows = await models.fetch_all("models", where={"provider": "vllm"}, order_by=[("size", "asc")])
    assert rows == [
        {"id": "qwen", "provider": "vllm", "size": 7, "score": 0.7},
        {"id": "llama", "provider": "vllm", "size": 8, "score": 0.5},
    ]
    rows = await models.fetch_all("models", order_by=[("size", "desc"), ("id", "asc")], limit=3)
    assert [r["id"] for r in rows] == ["llama", "qwen", "mini"]
    assert await models.fetch_all("models", where={"provider": "none"}) == []
    assert await models.fetch_all("models", limit=0) == []
    both = await models.fetch_all("models", where={"provider": "local", "size": 1}, order_by=[("id", "desc")])
    assert [r["id"] for r in both] == ["smol", "mini"]


async def test_fetch_one(models):
    assert (await models.fetch_one("models", where={"id": "smol"}))["score"] == 0.9
    assert await models.fetch_one("models", where={"id": "missing"}) is None
    top = await models.fetch_one("models", order_by=[("score", "desc")])
    assert top["id"] == "smol"


async def test_update_returns_count(models):
    assert await models.update("models", {"provider": "ollama"}, where={"provider": "local"}) == 2
    assert await models.update("models", {"size": 9}, where={"id": "missing"}) == 0
    ids = [r["id"] for r in await models.fetch_all("models", where={"provider": "ollama"}, order_by=[("id", "asc")])]
    assert ids == ["mini", "smol"]


async def test_delete_returns_count(models):
    assert await models.delete("models", where={"provider": "vllm"}) == 2
    assert await models.delete("models", where={"id": "llama"}) == 0
    assert sorted(r["id"] for r in await models.fetch_all("models")) == ["mini", "smol"]
    assert await models.delete("models", where={}) == 2
    assert await models.fetch_all("models") == []


async def test_delete_in_deletes_the_rows_holding_one_of_the_values(models):
    assert await models.delete_in("models", "id", ["llama", "qwen", "missing"]) == 2
    assert await models.delete_in("models", "id", []) == 0
    assert sorted(r["id"] for r in await models.fetch_all("models")) == ["mini", "smol"]
    with pytest.raises(ValueError, match="no column 'nope'"):
        await models.delete_in("models", "nope", ["mini"])
    with pytest.raises(TypeError, match="column 'size' is INTEGER"):
        await models.delete_in("models", "size", ["1"])


async def test_insert_duplicate_key_raises(models):
    with pytest.raises(DuplicateKeyError):
        await models.insert("models", {"id": "llama", "provider": "x", "size": 1, "score": 0.0})
    assert (await models.fetch_one("models", where={"id": "llama"}))["provider"] == "vllm"


async def test_upsert_inserts_then_updates(models):
    await models.upsert("models", {"id": "new", "provider": "p", "size": 2, "score": 0.2}, key_columns=["id"])
    await models.upsert("models", {"id": "new", "provider": "q", "size": 3, "score": 0.3}, key_columns=["id"])
    await models.upsert("models", {"id": "llama", "size": 70}, key_columns=["id"])
    assert await models.fetch_one("models", where={"id": "new"}) == {
        "id": "new", "provider": "q", "size": 3, "score": 0.3,
    }
    llama = await models.fetch_one("models", where={"id": "llama"})
    assert llama == {"id": "llama", "provider": "vllm", "size": 70, "score": 0.5}  # others kept


async def test_upsert_many_inserts_and_updates_in_one_batch(models):
    await models.upsert_many("models", [
        {"id": "smol", "provider": "local", "size": 2, "score": 0.95},
        {"id": "phi", "provider": "vllm", "size": 4, "score": 0.6},
    ], ["id"])
    await models.upsert_many("models", [], ["id"])
    rows = {r["id"]: r for r in await models.fetch_all("models")}
    assert len(rows) == 5
    assert rows["smol"]["size"] == 2 and rows["phi"]["score"] == 0.6
    with pytest.raises(ValueError):
        await models.upsert_many("models", [{"id": "a", "size": 1}, {"id": "b"}], ["id"])
    with pytest.raises(ValueError):
        await models.upsert_many("models", [{"id": "a", "size": 1}], ["provider"])
    assert len(await models.fetch_all("models")) == 5


async def test_upsert_values_takes_rows_as_values_in_the_columns_order(models):
    columns = ("id", "provider", "size", "score")
    await models.upsert_values("models", columns, [("smol", "local", 2, 0.95), ("new", "q", 3, 0.3)], ["id"])
    await models.upsert_values("models", columns, [("new", "q", 4, 0.4), ("new", "q", 5, 0.5)], ["id"])  # last wins
    await models.upsert_values("models", columns, [], ["id"])
    rows = {r["id"]: r for r in await models.fetch_all("models")}
    assert len(rows) == 5 and rows["smol"]["size"] == 2 and rows["new"] == {
        "id": "new", "provider": "q", "size": 5, "score": 0.5}
    with pytest.raises(ValueError, match="4 values"):
        await models.upsert_values("models", columns, [("a", "p", 1)], ["id"])
    with pytest.raises(ValueError, match="key columns"):
        await models.upsert_values("models", columns, [("a", "p", 1, 0.1)], ["name"])
    with pytest.raises(ValueError, match="tuples of values"):
        await models.upsert_values("models", columns, [dict(zip(columns, ("a", "p", 1, 0.1)))], ["id"])
    assert len(await models.fetch_all("models")) == 5


async def test_upsert_many_takes_the_last_row_of_a_key_and_batches_past_a_statement(models):
    await models.upsert_many("models", [{"id": "dup", "size": 1}, {"id": "dup", "size": 2}], ["id"])
    assert (await models.fetch_one("models", where={"id": "dup"}))["size"] == 2
    many = [{"id": f"m{i}", "provider": "p", "size": i, "score": 0.5} for i in range(8000)]  # > 30,000 parameters
    await models.upsert_many("models", many, ["id"])
    assert len(await models.fetch_all("models", where={"provider": "p"})) == 8000
    assert (await models.fetch_one("models", where={"id": "m7999"}))["size"] == 7999


async def test_composite_primary_key(sql):
    await sql.create_table("logs", {"run": C.TEXT, "step": C.INTEGER, "loss": C.REAL}, primary_key=("run", "step"))
    await sql.insert("logs", {"run": "a", "step": 1, "loss": 2.0})
    await sql.insert("logs", {"run": "b", "step": 1, "loss": 3.0})
    await sql.upsert("logs", {"run": "a", "step": 1, "loss": 1.5}, key_columns=("run", "step"))
    with pytest.raises(DuplicateKeyError):
        await sql.insert("logs", {"run": "b", "step": 1, "loss": 0.0})
    rows = await sql.fetch_all("logs", order_by=[("run", "asc")])
    assert [(r["run"], r["loss"]) for r in rows] == [("a", 1.5), ("b", 3.0)]


async def test_json_boolean_and_null_round_trip(sql):
    await sql.create_table(
        "docs", {"id": C.INTEGER, "body": C.JSON, "ok": C.BOOLEAN, "note": C.TEXT}, primary_key="id"
    )
    values = [
        {"nested": {"list": [1, 2.5, None, True], "ü": "😀"}},
        [1, "two", {"three": 3}],
        "5",
        5,
        None,
    ]
    for i, body in enumerate(values):
        await sql.insert("docs", {"id": i, "body": body, "ok": i % 2 == 0, "note": None})
    rows = await sql.fetch_all("docs", order_by=[("id", "asc")])
    assert [r["body"] for r in rows] == values
    assert [r["ok"] for r in rows] == [True, False, True, False, True]
    assert all(r["note"] is None for r in rows)
    assert len(await sql.fetch_all("docs", where={"ok": True})) == 3
    assert [r["id"] for r in await sql.fetch_all("docs", where={"body": None})] == [4]


async def test_json_with_nan_and_infinities_is_written_on_every_backend(sql, store_config):
    await sql.create_table("scores", {"id": C.INTEGER, "body": C.JSON}, primary_key="id")
    await sql.insert("scores", {"id": 1, "body": {"nan": math.nan, "runs": [math.inf, -math.inf, 0.5]}})
    body = (await sql.fetch_one("scores", where={"id": 1}))["body"]
    if store_config.type == "postgres":  # jsonb has no such numbers: their names
        assert body == {"nan": "NaN", "runs": ["Infinity", "-Infinity", 0.5]}
    else:
        assert math.isnan(body["nan"]) and body["runs"] == [math.inf, -math.inf, 0.5]


async def test_timestamp_round_trip_and_order(sql):
    await sql.create_table("events", {"id": C.INTEGER, "at": C.TIMESTAMP}, primary_key="id")
    tz = timezone(timedelta(hours=-5))
    aware = datetime(2024, 5, 1, 7, 30, 15, 123456, tzinfo=tz)
    naive = datetime(2024, 5, 1, 12, 0, 0)  # taken as UTC
    earliest = datetime(1999, 12, 31, 23, 59, tzinfo=timezone.utc)
    for i, at in enumerate([aware, naive, earliest]):
        await sql.insert("events", {"id": i, "at": at})
    rows = await sql.fetch_all("events", order_by=[("at", "asc")])
    assert [r["id"] for r in rows] == [2, 1, 0]  # 12:00 UTC < 12:30:15 UTC
    by_id = {r["id"]: r["at"] for r in rows}
    assert by_id[0] == aware and by_id[0].utcoffset() == timedelta(0)
    assert by_id[1] == naive.replace(tzinfo=timezone.utc)
    assert (await sql.fetch_one("events", where={"at": aware}))["id"] == 0


async def test_values_are_bound_not_spliced(sql):
    await sql.create_table("t", {"id": C.TEXT, "v": C.TEXT}, primary_key="id")
    evil = "x'); DROP TABLE t; --"
    await sql.insert("t", {"id": evil, "v": '"; DELETE FROM t; --'})
    assert (await sql.fetch_one("t", where={"id": evil}))["v"] == '"; DELETE FROM t; --'


@pytest.mark.parametrize(
    "bad", ["1abc", "a-b", "a b", 'x"; DROP TABLE t; --', "", "naïve", "t.x", "a" * 64]
)
async def test_bad_identifiers_rejected(sql, bad):
    with pytest.raises(ValueError, match="invalid"):
        await sql.create_table(bad, {"id": C.TEXT}, primary_key="id")
    with pytest.raises(ValueError, match="invalid"):
        await sql.create_table("t", {bad: C.TEXT, "id": C.TEXT}, primary_key="id")
    await sql.create_table("t", {"id": C.TEXT}, primary_key="id")
    with pytest.raises(ValueError, match="invalid"):
        await sql.insert("t", {"id": "1", bad: "x"})
    with pytest.raises(ValueError, match="invalid"):
        await sql.fetch_all("t", where={bad: "x"})
    with pytest.raises(ValueError, match="invalid"):
        await sql.fetch_all("t", order_by=[(bad, "asc")])
    with pytest.raises(ValueError, match="invalid"):
        await sql.fetch_all(bad)


async def test_bad_arguments_rejected(models):
    with pytest.raises(ValueError, match="no column 'nope'"):
        await models.insert("models", {"id": "z", "nope": 1})
    with pytest.raises(ValueError, match="asc"):
        await models.fetch_all("models", order_by=[("id", "ASC; DROP TABLE models")])
    with pytest.raises(ValueError):
        await models.fetch_all("models", limit=-1)
    with pytest.raises(TypeError, match="'size' is INTEGER"):
        await models.insert("models", {"id": "z", "size": "big"})
    with pytest.raises(ValueError, match="primary key"):
        await models.create_table("x", {"a": C.TEXT}, primary_key="b")
    with pytest.raises(StorageError, match="no table named 'ghost'"):
        await models.fetch_all("ghost")
    assert len(await models.fetch_all("models")) == 4


async def test_create_table_adds_new_columns(sql):
    await sql.create_table("t", {"id": C.TEXT}, primary_key="id")
    await sql.insert("t", {"id": "old"})
    await sql.create_table("t", {"id": C.TEXT, "extra": C.JSON}, primary_key="id")
    await sql.insert("t", {"id": "new", "extra": {"a": 1}})
    rows = await sql.fetch_all("t", order_by=[("id", "desc")])
    assert rows == [{"id": "old", "extra": None}, {"id": "new", "extra": {"a": 1}}]


async def test_blob_round_trip_and_schema_learnt_by_another_store(sql, open_sql):
    payload = bytes(range(256)) * 3  # every byte value, NUL included
    await sql.create_table("blobs", {"id": C.INTEGER, "payload": C.BLOB}, primary_key="id")
    await sql.upsert_values("blobs", ["id", "payload"], [(1, payload), (2, b""), (3, None)], ["id"])
    rows = await (await open_sql()).fetch_all("blobs", order_by=[("id", "asc")])
    assert [(r["id"], r["payload"]) for r in rows] == [(1, payload), (2, b""), (3, None)]
    assert all(type(r["payload"]) is bytes for r in rows[:2])
    with pytest.raises(TypeError, match="column 'payload' is BLOB; got str"):
        await sql.insert("blobs", {"id": 4, "payload": "text"})


async def test_second_store_reads_existing_table(models, open_sql):
    other = await open_sql()  # never called create_table: learns the schema itself
    row = await other.fetch_one("models", where={"id": "llama"})
    assert row == {"id": "llama", "provider": "vllm", "size": 8, "score": 0.5}


async def test_namespaces_are_isolated(open_sql):
    a, b = await open_sql("agents"), await open_sql("evals")
    for store, name in ((a, "a"), (b, "b")):
        await store.create_table("runs", {"id": C.TEXT}, primary_key="id")
        await store.insert("runs", {"id": name})
    assert await a.fetch_all("runs") == [{"id": "a"}]
    assert await b.fetch_all("runs") == [{"id": "b"}]


async def test_concurrent_inserts_are_all_kept(sql):
    await sql.create_table("n", {"id": C.INTEGER, "v": C.TEXT}, primary_key="id")
    await asyncio.gather(*(sql.insert("n", {"id": i, "v": str(i)}) for i in range(200)))
    await asyncio.gather(*(sql.upsert("n", {"id": i, "v": "u"}, key_columns=["id"]) for i in range(0, 200, 2)))
    rows = await sql.fetch_all("n", order_by=[("id", "asc")])
    assert [r["id"] for r in rows] == list(range(200))
    assert [r["v"] for r in rows] == ["u" if i % 2 == 0 else str(i) for i in range(200)]


async def test_sqlite_locked_past_busy_timeout_is_unavailable(tmp_path, monkeypatch):
    import sqlite3

    from stack.errors import status_code_for
    from stack.storage import SqliteStoreConfig, StorageUnavailableError, sqlstore_from_config
    from stack.storage import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "locked.db"
    async with await sqlstore_from_config(SqliteStoreConfig(db_path=str(path))) as store:
        await store.create_table("t", {"k": ColumnType.TEXT}, "k")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            with pytest.raises(StorageUnavailableError, match="locked") as info:
                await store.insert("t", {"k": "a"})
            assert status_code_for(info.value) == 503 and info.value.retry_after > 0
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.insert("t", {"k": "a"})  # free again: works
        assert await store.fetch_all("t") == [{"k": "a"}]


async def test_stores_starting_together_make_each_index_once(open_sql):
    """Replicas that start at once all create the same tables and indexes; none may fail."""
    stores = [await open_sql() for _ in range(6)]

    async def start(store):
        await store.create_table("logs", {"id": C.TEXT, "prompt": C.TEXT}, primary_key="id")
        await store.create_index("logs", "of_prompt", ["prompt"])

    for attempt in range(5):  # a race needs a few tries to show up
        await asyncio.gather(*(start(s) for s in stores))
        await asyncio.gather(*(s.create_index("logs", f"of_prompt_{attempt}", ["prompt"]) for s in stores))
    await stores[0].insert("logs", {"id": "1", "prompt": "p"})
    assert await stores[-1].fetch_all("logs", where={"prompt": "p"}) == [{"id": "1", "prompt": "p"}]


async def test_pre_encoded_json_text_reads_back_as_json_and_filters_like_it(sql):
    await sql.create_table("docs", {"id": C.TEXT, "body": C.JSON}, primary_key="id")
    await sql.upsert_many("docs", [{"id": "a", "body": JsonText('[["x", {"n": 2}]]')},
                                   {"id": "b", "body": [["y", {"n": 3}]]}], ["id"])
    await sql.insert("docs", {"id": "c", "body": JsonText('[{"k": [1, 2.5, null, true]}]')})
    rows = {r["id"]: r["body"] for r in await sql.fetch_all("docs")}
    assert rows == {"a": [["x", {"n": 2}]], "b": [["y", {"n": 3}]], "c": [{"k": [1, 2.5, None, True]}]}
    found = await sql.select("docs", columns=["id"], match=JsonMatch("body", JsonTest((1, "n"), "gt", 2)))
    assert found == [{"id": "b"}]
    found = await sql.select("docs", columns=["id"], match=JsonMatch("body", JsonTest((0,), "eq", "x")))
    assert found == [{"id": "a"}]


async def test_pre_encoded_json_text_is_refused_by_other_columns(models):
    with pytest.raises(TypeError, match="column 'provider' is TEXT; got JsonText"):
        await models.insert("models", {"id": "z", "provider": JsonText('"vllm"')})
