"""SqlStore.select: JSON array matches, first row per group, order / limit / offset, indexes and
expiry deletes. Every test runs on SQLite and on PostgreSQL: both must answer alike."""

import pytest

from stack.storage import ColumnType, JsonAll, JsonAny, JsonMatch, JsonTest

C = ColumnType
COLUMNS = {"id": C.TEXT, "grp": C.TEXT, "rank": C.INTEGER, "ends": C.INTEGER, "items": C.JSON}
# items: [name, attributes]
ROWS = [
    ("a1", "a", 1, 10, [["x", {"model": "m1", "tokens": 5, "flag": True, "dotted.key": "d", 'q"k': "quoted"}]]),
    ("a2", "a", 2, None, [["y", {"tokens": 2.5, "note": None, "percent%": "p"}]]),
    ("b1", "b", 3, 30, [["z", {"model": "m2", "tokens": "many", "name": "override"}], ["w", {"tokens": 7}]]),
    ("c1", "c", 4, None, [["v", {"model": "M1", "list": [1, 2]}]]),
]


@pytest.fixture
async def table(sql):
    await sql.create_table("t", COLUMNS, primary_key="id")
    await sql.upsert_many("t", [dict(zip(COLUMNS, row)) for row in ROWS], ("id",))
    return sql


async def ids(store, predicate, **kwargs):
    rows = await store.select("t", columns=["id"], match=JsonMatch("items", predicate), order_by=[("id", "asc")],
                              **kwargs)
    return [row["id"] for row in rows]


def attr(key, op, value=None):
    return JsonTest((1, key), op, value)


@pytest.mark.parametrize("predicate, expected", [
    (attr("model", "eq", "m1"), ["a1"]),  # strings match exactly (case too)
    (attr("model", "ne", "m1"), ["a2", "b1", "c1"]),  # ne holds where the key is absent
    (attr("tokens", "eq", 5), ["a1"]),
    (attr("tokens", "eq", 5.0), ["a1"]),  # 5 == 5.0, as in Python
    (attr("tokens", "gt", 4), ["a1", "b1"]),  # "many" is a string: not compared with a number
    (attr("tokens", "lt", 3), ["a2"]),
    (attr("tokens", "gt", "a"), ["b1"]),  # strings against strings only
    (attr("flag", "eq", True), ["a1"]),
    (attr("flag", "eq", 1), ["a1"]),  # True == 1, as in Python
    (attr("flag", "gt", 0), ["a1"]),
    (attr("note", "eq", None), ["a2"]),  # a JSON null is present and equals None
    (attr("note", "present"), ["a2"]),
    (attr("model", "absent"), ["a2", "b1"]),  # some element lacks it (b1's "w")
    (attr("dotted.key", "eq", "d"), ["a1"]),  # a dot is part of the key, not a path
    (attr('q"k', "eq", "quoted"), ["a1"]),
    (attr("percent%", "eq", "p"), ["a2"]),
    (attr("model", "gt", "m"), ["a1", "b1"]),  # code point order: "M1" < "m"
    (JsonTest((0,), "eq", "w"), ["b1"]),
    (JsonAll((attr("model", "eq", "m2"), attr("tokens", "eq", 7))), []),  # both on one element
    (JsonAny((attr("model", "eq", "m2"), attr("tokens", "eq", 7))), ["b1"]),
])
async def test_json_tests_pick_the_rows_python_would(table, predicate, expected):
    assert await ids(table, predicate) == expected


async def test_a_shared_column_brings_the_whole_group(table):
    rows = await table.select("t", columns=["id"], match=JsonMatch("items", attr("tokens", "eq", 5), share="grp"),
                              order_by=[("id", "asc")])
    assert [r["id"] for r in rows] == ["a1", "a2"]


async def test_first_per_group_in_order_with_limit_and_offset(table):
    rows = await table.select("t", columns=["grp", "rank"], first_per="grp", order_by=[("rank", "desc")])
    assert rows == [{"grp": "c", "rank": 4}, {"grp": "b", "rank": 3}, {"grp": "a", "rank": 2}]
    paged = await table.select("t", columns=["grp"], first_per="grp", order_by=[("rank", "desc")], limit=1, offset=1)
    assert paged == [{"grp": "b"}]
    assert await table.select("t", columns=["id"], order_by=[("id", "asc")], offset=3) == [{"id": "c1"}]


async def test_nulls_are_placed_where_asked(table):
    first = await table.select("t", columns=["id"], order_by=[("ends", "asc", "first"), ("id", "asc")])
    last = await table.select("t", columns=["id"], order_by=[("ends", "asc", "last"), ("id", "asc")])
    assert [r["id"] for r in first] == ["a2", "c1", "a1", "b1"]
    assert [r["id"] for r in last] == ["a1", "b1", "a2", "c1"]


async def test_an_index_is_made_once_and_expired_rows_are_deleted(table):
    await table.create_index("t", "by_ends", ["ends"])
    await table.create_index("t", "by_ends", ["ends"])  # again: kept
    assert await table.delete_where("t", "ends", below=20) == 1  # NULLs stay
    assert [r["id"] for r in await table.select("t", columns=["id"], order_by=[("id", "asc")])] == ["a2", "b1", "c1"]


async def test_bad_arguments_are_value_errors(table):
    with pytest.raises(ValueError, match="no column"):
        await table.select("t", columns=["nope"])
    with pytest.raises(TypeError, match="compare"):
        await ids(table, attr("list", "eq", [1, 2]))
    with pytest.raises(ValueError, match="numbers"):
        await table.delete_where("t", "id", below=1)
