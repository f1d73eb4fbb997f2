"""KV store conformance: every test runs on SQLite and on PostgreSQL."""

import asyncio

import pytest

from stack.storage import StorageError


async def test_get_missing_key_is_none(kv):
    assert await kv.get("nope") is None


async def test_set_get_overwrite(kv):
    await kv.set("model:a", '{"x": 1}')
    assert await kv.get("model:a") == '{"x": 1}'
    await kv.set("model:a", "second")
    assert await kv.get("model:a") == "second"


async def test_delete_and_delete_missing(kv):
    await kv.set("k", "v")
    await kv.delete("k")
    assert await kv.get("k") is None
    await kv.delete("k")  # already gone: not an error
    await kv.delete("never-existed")


async def test_items_prefix_and_order(kv):
    keys = ["b:2", "a:3", "b:10", "a:1", "B:0", "b", "ba", "b;x", "c:1", "b:é", "b:z"]
    for key in keys:
        await kv.set(key, f"v-{key}")
    got = await kv.items("b:")
    assert [k for k, _ in got] == ["b:10", "b:2", "b:z", "b:é"]  # code-point order
    assert all(v == f"v-{k}" for k, v in got)
    assert [k for k, _ in await kv.items()] == sorted(keys)
    assert await kv.items("zzz") == []


async def test_items_prefix_with_sql_wildcards(kv):
    for key in ["a%b", "a%c", "axb", "a_b", "a_c", "aXb"]:
        await kv.set(key, "v")
    assert [k for k, _ in await kv.items("a%")] == ["a%b", "a%c"]
    assert [k for k, _ in await kv.items("a_")] == ["a_b", "a_c"]


async def test_values_are_opaque_strings(kv):
    tricky = "it's \"quoted\"; DROP TABLE kvstore; -- ünïcödé \n\t 😀"
    await kv.set(tricky, tricky)
    assert await kv.get(tricky) == tricky
    assert await kv.get("x") is None


async def test_non_string_values_rejected(kv):
    with pytest.raises(TypeError):
        await kv.set("k", {"not": "a string"})
    with pytest.raises(TypeError):
        await kv.get(42)


async def test_namespaces_are_isolated(open_kv):
    plain, a, b = await open_kv(), await open_kv("agents"), await open_kv("registry")
    await a.set("k", "from-a")
    await b.set("k", "from-b")
    assert await a.get("k") == "from-a"
    assert await b.get("k") == "from-b"
    assert await a.items() == [("k", "from-a")]
    assert await b.items("") == [("k", "from-b")]
    await a.delete("k")
    assert await b.get("k") == "from-b"
    assert await plain.get("k") is None  # the namespace is part of the stored key
    assert await plain.items() == [("registry:k", "from-b")]


async def test_second_store_sees_writes(open_kv):
    """Two stores on one database (two server replicas) share state."""
    first, second = await open_kv(), await open_kv()
    await first.set("shared", "1")
    assert await second.get("shared") == "1"
    await second.delete("shared")
    assert await first.get("shared") is None


async def test_data_survives_reopen(kv, open_kv):
    await kv.set("persist", "yes")
    await kv.close()
    assert await (await open_kv()).get("persist") == "yes"


async def test_concurrent_writes_are_all_kept(open_kv):
    first, second = await open_kv(), await open_kv()
    n = 200
    await asyncio.gather(
        *(first.set(f"k{i:04d}", str(i)) for i in range(0, n, 2)),
        *(second.set(f"k{i:04d}", str(i)) for i in range(1, n, 2)),
    )
    items = await first.items("k")
    assert items == [(f"k{i:04d}", str(i)) for i in range(n)]


async def test_closed_store_refuses_calls(kv):
    await kv.close()
    with pytest.raises(StorageError):
        await kv.get("k")
    await kv.close()  # closing twice is fine
