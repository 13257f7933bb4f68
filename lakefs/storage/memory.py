"""MemoryStorage: a dict of objects, for tests and speed.

Same contract as every backend (the conformance suite checks it). Stores opened by
name (``memory://name`` through ``open_storage``, or :meth:`MemoryStorage.named`) share
their objects and writer locks within the process, like one directory opened twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from lakefs.errors import LockedError, ObjectNotFoundError
from lakefs.storage.base import Storage, WriterLock, check_key, check_range, lock_key


class _State:
    """The objects and held locks behind one or more MemoryStorage views."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.locks: set[str] = set()
        self.mutex = threading.Lock()


_named: dict[str, _State] = {}
_named_mutex = threading.Lock()


class MemoryStorage(Storage):
    """Objects in a dict; thread-safe. ``MemoryStorage()`` is a fresh private store."""

    def __init__(self, *, read_only: bool = False, _state: _State | None = None) -> None:
        self._s = _state if _state is not None else _State()
        self.writable = not read_only
        self.name: str | None = None

    @classmethod
    def named(cls, name: str, *, read_only: bool = False) -> MemoryStorage:
        """The process-wide store called ``name`` (created empty on first use)."""
        with _named_mutex:
            state = _named.setdefault(name, _State())
        store = cls(read_only=read_only, _state=state)
        store.name = name
        return store

    def __repr__(self) -> str:
        return f"MemoryStorage(name={self.name!r}, read_only={not self.writable})"

    def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return self._s.objects[key]
        except KeyError:
            raise ObjectNotFoundError(f"no such object {key!r}") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        return self.get(key)[start : start + length]

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        check_key(key)
        self._check_writable(key)
        value = bytes(data)
        with self._s.mutex:
            self._s.objects[key] = value

    def delete(self, key: str) -> None:
        check_key(key)
        self._check_writable(key)
        with self._s.mutex:
            self._s.objects.pop(key, None)

    def exists(self, key: str) -> bool:
        check_key(key)
        return key in self._s.objects

    def size(self, key: str) -> int:
        return len(self.get(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._s.mutex:
            keys = [k for k in self._s.objects if k.startswith(prefix)]
        return iter(keys)

    def writer_lock(self, name: str) -> WriterLock:
        key = lock_key(name)
        self._check_writable(key)
        with self._s.mutex:
            if key in self._s.locks:
                raise LockedError(f"dataset is locked by another writer: {self!r}", in_this_process=True)
            self._s.locks.add(key)
            self._s.objects[key] = b"memory lock\n"
        return _MemoryLock(self._s, key)


class _MemoryLock(WriterLock):
    def __init__(self, state: _State, key: str) -> None:
        self._s = state
        self._key: str | None = key

    def verify(self) -> None:
        if self._key is None:
            raise LockedError("writer lock was released")

    def release(self) -> None:
        with self._s.mutex:
            if self._key is None:
                return
            self._s.locks.discard(self._key)
            self._s.objects.pop(self._key, None)
            self._key = None
