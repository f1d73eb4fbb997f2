"""JSON column text on SQLite: orjson where it means the same as json.dumps, json.dumps elsewhere."""

import enum
import json
import math
import uuid
from datetime import datetime, timezone

import pytest

from stack.storage import ColumnType as C
from stack.storage import sqlstore_from_config
from stack.storage._config import SqliteStoreConfig
from stack.storage._jsontext import dumps


class Colour(enum.Enum):
    RED = 1


@pytest.mark.parametrize("value", [
    {"nested": {"list": [1, 2.5, None, True], "ü": "😀"}},
    [(1, 2), {"three": 3.0}],
    {1: "int key", "big": 10**30},
    "text", 7, None, False,
])
def test_plain_values_read_back_as_the_standard_library_writes_them(value):
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


def test_non_finite_floats_keep_their_meaning():
    text = dumps({"spans": [[1, {"score": math.nan, "hi": math.inf}]]})
    read = json.loads(text)["spans"][0][1]
    assert math.isnan(read["score"]) and read["hi"] == math.inf


@pytest.mark.parametrize("value", [Colour.RED, uuid.uuid4(), datetime.now(timezone.utc), {"a": [object()]}])
def test_values_the_standard_library_refuses_are_still_refused(value):
    with pytest.raises(TypeError):
        dumps(value)


async def test_a_sqlite_json_column_round_trips_nan(tmp_path):
    sql = await sqlstore_from_config(SqliteStoreConfig(db_path=str(tmp_path / "s.db")))
    try:
        await sql.create_table("t", {"id": C.INTEGER, "body": C.JSON}, primary_key="id")
        await sql.upsert_many("t", [{"id": 1, "body": {"x": math.nan, "é": [1.5]}}], ("id",))
        row = await sql.fetch_one("t", {"id": 1})
        assert math.isnan(row["body"]["x"]) and row["body"]["é"] == [1.5]
    finally:
        await sql.close()
