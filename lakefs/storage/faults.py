"""FaultyStorage: inject a storage failure at the Nth operation (reliability tests).

    store = FaultyStorage(LocalStorage(tmp), fail_at=3, mode="torn")

counts the operations named in ``ops`` (writes by default) and fails the ``fail_at``-th
one (1-based):

- ``"raise"``  — ``StorageError`` (a generic backend failure), nothing written;
- ``"eio"``    — ``StorageError`` carrying EIO, nothing written;
- ``"enospc"`` — ``StorageFullError``, nothing written;
- ``"torn"``   — a ``put`` first stores the first half of the object, then raises
  ``StorageError``: a backend that broke its atomicity promise, which checksums and
  the commit protocol must catch. (For non-put ops it behaves like ``"raise"``.)

With ``sticky=True`` every counted operation after the fault fails too, like a disk
that died or a process that crashed: nothing more reaches the inner store.

``SmallStorage(inner, capacity)`` is a disk that fills up: a put that would take the
objects' total past ``capacity`` bytes fails with ``StorageFullError`` and stores
nothing, while smaller puts still fit, and a delete frees its object's bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from typing import BinaryIO, Literal

from lakefs.errors import ObjectNotFoundError, StorageError, StorageFullError
from lakefs.storage.base import Storage, StorageWrapper, WriterLock

Mode = Literal["raise", "eio", "enospc", "torn"]
WRITE_OPS = frozenset({"put", "delete"})
ALL_OPS = frozenset({"get", "get_range", "put", "delete", "exists", "size", "list",
                     "writer_lock"})


class FaultyStorage(StorageWrapper):
    """``inner`` that fails its ``fail_at``-th counted operation; see the module doc."""

    def __init__(
        self,
        inner: Storage,
        fail_at: int,
        mode: Mode = "raise",
        *,
        ops: Collection[str] = WRITE_OPS,
        sticky: bool = False,
    ) -> None:
        if mode not in ("raise", "eio", "enospc", "torn"):
            raise ValueError(f"unknown fault mode {mode!r}")
        unknown = set(ops) - ALL_OPS
        if unknown:
            raise ValueError(f"unknown storage operations {sorted(unknown)}")
        super().__init__(inner)
        self.fail_at = fail_at
        self.mode = mode
        self.ops = frozenset(ops)
        self.sticky = sticky
        self.count = 0  #: counted operations so far (including the failed one)
        self.failed: list[tuple[str, str]] = []  #: (op, key) of each injected fault
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r}, fail_at={self.fail_at}, mode={self.mode!r})"

    @property
    def tripped(self) -> bool:
        """True once a fault has been injected."""
        return bool(self.failed)

    def _tick(self, op: str, key: str) -> bool:
        """Count ``op``; True if this call must fail."""
        if op not in self.ops:
            return False
        with self._mutex:
            self.count += 1
            fail = self.count == self.fail_at or (self.sticky and self.count > self.fail_at)
            if fail:
                self.failed.append((op, key))
        return fail

    def _fault(self, op: str, key: str) -> StorageError:
        what = f"injected fault #{self.count} ({self.mode}) in {op} {key!r}"
        if self.mode == "enospc":
            return StorageFullError(f"storage full: {what}")
        if self.mode == "eio":
            return StorageError(f"I/O error (EIO): {what}")  # StorageError.errno is EIO
        return StorageError(what)

    def get(self, key: str) -> bytes:
        if self._tick("get", key):
            raise self._fault("get", key)
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if self._tick("get_range", key):
            raise self._fault("get_range", key)
        return self.inner.get_range(key, start, length)

    def readinto(self, key: str, start: int, buf: bytearray | memoryview) -> int:
        if self._tick("get_range", key):  # a ranged get into a buffer: counted as one
            raise self._fault("get_range", key)
        return self.inner.readinto(key, start, buf)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        if self._tick("put", key):
            if self.mode == "torn":
                view = memoryview(data).cast("B")
                self.inner.put(key, view[: len(view) // 2], sync=sync)
            raise self._fault("put", key)
        self.inner.put(key, data, sync=sync)

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        if self._tick("put", key):
            raise self._fault("put", key)
        self.inner.put_from(key, f, size, sync=sync)

    def sync(self) -> None:
        if self._tick("sync", ""):
            raise self._fault("sync", "")
        self.inner.sync()

    def delete(self, key: str) -> None:
        if self._tick("delete", key):
            raise self._fault("delete", key)
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        if self._tick("exists", key):
            raise self._fault("exists", key)
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        if self._tick("size", key):
            raise self._fault("size", key)
        return self.inner.size(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        if self._tick("list", prefix):
            raise self._fault("list", prefix)
        return self.inner.list(prefix)

    def writer_lock(self, name: str) -> WriterLock:
        if self._tick("writer_lock", name):
            raise self._fault("writer_lock", name)
        return self.inner.writer_lock(name)


class SmallStorage(StorageWrapper):
    """``inner`` holding at most ``capacity`` bytes of objects; see the module doc."""

    def __init__(self, inner: Storage, capacity: int) -> None:
        super().__init__(inner)
        self.capacity = capacity
        self._mutex = threading.Lock()

    def used(self) -> int:
        """Bytes the objects take now."""
        return sum(self.inner.size(k) for k in self.inner.list())

    def _make_room(self, key: str, size: int) -> None:
        try:
            old = self.inner.size(key)
        except ObjectNotFoundError:
            old = 0
        if self.used() - old + size > self.capacity:
            raise StorageFullError(f"storage full: write {key!r}: No space left on device")

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        with self._mutex:
            self._make_room(key, memoryview(data).nbytes)
            self.inner.put(key, data, sync=sync)

    def put_new(self, key: str, data: bytes | bytearray | memoryview) -> None:
        with self._mutex:
            self._make_room(key, memoryview(data).nbytes)
            self.inner.put_new(key, data)

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        with self._mutex:
            self._make_room(key, size)
            self.inner.put_from(key, f, size, sync=sync)

    def statfs(self) -> tuple[int, int, int]:
        free = max(0, self.capacity - self.used())
        return self.capacity, free, free
