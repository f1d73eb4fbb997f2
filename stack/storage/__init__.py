"""Key-value and SQL stores with SQLite (default) and PostgreSQL backends.

Callers open a store from its config and use only the `KVStore` and
`SqlStore` methods; no backend-specific SQL leaves this package.

    store = await kvstore_from_config(
        config, default_path=default_db_path(image_name, "registry")
    )
"""

from ._config import (
    Password,
    PostgresStoreConfig,
    SqliteStoreConfig,
    StoreConfig,
    default_db_path,
    polystack_home,
)
from ._errors import RETRY_AFTER, DuplicateKeyError, StorageError, StorageUnavailableError
from ._factory import kvstore_from_config, sqlstore_from_config
from ._kv import KVStore
from ._sql import (
    ColumnType,
    JsonAll,
    JsonAny,
    JsonMatch,
    JsonPredicate,
    JsonTest,
    JsonText,
    SqlStore,
)

__all__ = [
    "ColumnType",
    "DuplicateKeyError",
    "JsonAll",
    "JsonAny",
    "JsonMatch",
    "JsonPredicate",
    "JsonTest",
    "JsonText",
    "KVStore",
    "Password",
    "PostgresStoreConfig",
    "RETRY_AFTER",
    "SqlStore",
    "SqliteStoreConfig",
    "StorageError",
    "StorageUnavailableError",
    "StoreConfig",
    "default_db_path",
    "kvstore_from_config",
    "polystack_home",
    "sqlstore_from_config",
]
