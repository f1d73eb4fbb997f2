"""Storage exceptions; backends translate their driver errors into these."""

from ..errors import ServiceUnavailableError, StackError

#: seconds a client is told to wait before retrying when the database is unavailable
RETRY_AFTER = 5


class StorageError(StackError):
    """A store could not be opened, or a storage operation failed."""


class StorageUnavailableError(ServiceUnavailableError, StorageError):
    """The database cannot be reached (or stays locked) now; a retry may succeed."""

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message, retry_after=retry_after)


class DuplicateKeyError(StorageError):
    """An insert hit a row that already has the same primary key."""
