import pytest

from stack.storage import kvstore_from_config, sqlstore_from_config


@pytest.fixture
async def open_kv(store_config):
    """Opens KV stores on the test's database; closes them afterwards."""
    stores = []

    async def open_(namespace=None):
        config = store_config.model_copy(update={"namespace": namespace})
        stores.append(await kvstore_from_config(config))
        return stores[-1]

    yield open_
    for store in stores:
        await store.close()


@pytest.fixture
async def open_sql(store_config):
    """Opens SQL stores on the test's database; closes them afterwards."""
    stores = []

    async def open_(namespace=None):
        config = store_config.model_copy(update={"namespace": namespace})
        stores.append(await sqlstore_from_config(config))
        return stores[-1]

    yield open_
    for store in stores:
        await store.close()


@pytest.fixture
async def kv(open_kv):
    return await open_kv()


@pytest.fixture
async def sql(open_sql):
    return await open_sql()
