"""The KV store interface; namespacing and prefix scans live here, once."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ._errors import StorageError


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`
    (None when there is none), so a prefix scan is an index range scan."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; skip them
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


class KVStore(ABC):
    """An async string-to-string store.

    With a `namespace`, keys are stored as `<namespace>:<key>`, and callers
    only ever see their own keys.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace
        self._prefix = f"{namespace}:" if namespace else ""
        self._closed = False

    async def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        self._check_open()
        return await self._get(self._key(key))

    async def set(self, key: str, value: str) -> None:
        """Store `value` under `key`; durable once awaited."""
        self._check_open()
        if not isinstance(value, str):
            raise TypeError(f"KV values must be str, got {type(value).__name__}")
        await self._set(self._key(key), value)

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""
        self._check_open()
        await self._delete(self._key(key))

    async def items(self, prefix: str = "") -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with `prefix`, ordered by key."""
        self._check_open()
        start = self._key(prefix)
        rows = await self._scan(start, prefix_upper_bound(start))
        cut = len(self._prefix)
        return [(key[cut:], value) for key, value in rows]

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> KVStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"KV keys must be str, got {type(key).__name__}")
        return self._prefix + key

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the KV store is closed")

    # Backends implement these on full (namespaced) keys.
    @abstractmethod
    async def _get(self, key: str) -> str | None: ...

    @abstractmethod
    async def _set(self, key: str, value: str) -> None: ...

    @abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abstractmethod
    async def _scan(self, start: str, stop: str | None) -> list[tuple[str, str]]:
        """Rows with start <= key < stop (no upper bound when stop is None), by key."""

    @abstractmethod
    async def _close(self) -> None: ...
