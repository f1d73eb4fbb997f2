"""Storage exceptions; backends translate their driver errors into these."""


class StorageError(Exception):
    """A store could not be opened, or a storage operation failed."""


class DuplicateKeyError(StorageError):
    """An insert hit a row that already has the same primary key."""
