"""The one storage interface: a flat namespace of immutable-ish objects.

lakefs never needs in-place partial writes (DESIGN §5), so the same format works on a
local directory and on an object store. Keys are ``/``-separated relative paths made of
safe segments; :func:`check_key` refuses anything that could escape the root.
"""

from __future__ import annotations

import abc
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import BinaryIO, TypeVar

from lakefs.errors import (
    CorruptionError,
    FormatVersionError,
    InvalidKeyError,
    LockedError,
    ObjectExistsError,
    ReadOnlyError,
    ShortInputError,
)

T = TypeVar("T")
R = TypeVar("R")

_SEGMENT = re.compile(r"^[A-Za-z0-9._=-]+$")

#: Writer locks live under this reserved key prefix: ``writer_lock(name)`` owns the key
#: ``locks/<name>`` (a flock'd file locally, a lease object on object stores). The key is
#: visible to ``list()``; the format layer must not store anything else there.
LOCK_PREFIX = "locks/"


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe storage key, else raise :class:`InvalidKeyError`."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidKeyError(f"invalid storage key {key!r}")
    for part in key.split("/"):
        if part in ("", ".", "..") or not _SEGMENT.match(part):
            raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


def check_range(start: int, length: int) -> None:
    """Refuse a negative offset or length (a caller bug, not a storage failure)."""
    if start < 0 or length < 0:
        raise ValueError(f"invalid byte range: start={start} length={length}")


PIECE = 8 << 20  # bytes copied at a time by put_from


def read_exactly(f: BinaryIO, size: int) -> bytes:
    """``size`` bytes from ``f``; a shorter file raises :class:`ShortInputError`."""
    data = f.read(size)
    if len(data) != size:
        raise ShortInputError(f"the input ended after {len(data)} of {size} bytes "
                              f"(the file shrank while it was read, or its size was wrong)")
    return data


def pieces(f: BinaryIO, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``f`` in pieces of at most :data:`PIECE` bytes."""
    left = size
    while left:
        piece = read_exactly(f, min(PIECE, left))
        left -= len(piece)
        yield piece


def lock_key(name: str) -> str:
    """The storage key of writer lock ``name`` (a single key segment)."""
    if "/" in name:
        raise InvalidKeyError(f"invalid lock name {name!r}")
    return check_key(LOCK_PREFIX + name)


class Buffers(io.RawIOBase):
    """A binary file that reads a list of buffers one after another: an object kept in
    pieces (a sealed chunk is its samples' own bytes objects) handed to ``put_from``. A
    backend that writes buffers as they are (LocalStorage) takes ``buffers`` uncopied."""

    def __init__(self, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        super().__init__()
        self.buffers = [memoryview(b).cast("B") for b in buffers]
        self.size = sum(len(b) for b in self.buffers)
        self._i = self._at = self._pos = 0  # buffer, offset in it, offset in the whole

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view, got = memoryview(b).cast("B"), 0
        while got < len(view) and self._i < len(self.buffers):
            src = self.buffers[self._i][self._at :]
            n = min(len(src), len(view) - got)
            view[got : got + n] = src[:n]
            got += n
            self._at += n
            if self._at == len(self.buffers[self._i]):
                self._i, self._at = self._i + 1, 0
        self._pos += got
        return got


class WriterLock(AbstractContextManager["WriterLock"]):
    """A held writer lock; ``release()`` (or leaving the ``with``) gives it up."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; calling it twice is harmless."""

    def abandon(self) -> None:
        """Give the lock up without waiting on anything (a finalizer at interpreter exit):
        a local lock is released, a lease is no longer renewed and expires."""
        self.release()

    def retake(self) -> WriterLock:
        """A new hold of this lost lock, if no other writer held it since (else
        ``LockedError``). A local flock cannot be lost, so it has nothing to retake."""
        raise LockedError("this writer lock cannot be taken again")

    def verify(self) -> None:
        """Raise ``LockedError`` if the lock was lost while held.

        A local flock cannot be lost; an object-store lease can (its renewals failed
        for longer than the lease, and another writer took it over). A writer calls
        this before its commit step so it never commits under a lost lock.
        """

    def __exit__(self, *exc: object) -> None:
        self.release()


class Storage(abc.ABC):
    """Objects addressed by key. Implementations: local directory, memory, fsspec.

    Contract every backend's conformance test checks:
    - ``put`` is atomic: a reader sees the old object or the new one, never a mix, and a
      crash during ``put`` leaves the old object (or none).
    - ``put`` is durable when it returns (fsync'd locally).
    - ``get`` of a missing key raises ``ObjectNotFoundError``.
    - ``list(prefix)`` yields every key starting with ``prefix`` (order unspecified),
      and only valid keys: a backend's temp files (a crashed ``put``) are never listed.
    - ``get_range`` past the end returns the bytes that exist (maybe ``b""``).
    - Keys under ``LOCK_PREFIX`` belong to ``writer_lock``.
    - Every write on read-only storage (``writable`` False) raises ``ReadOnlyError``.
    """

    #: False for read-only storage; writes then raise ``ReadOnlyError``.
    writable: bool = True

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object."""

    @abc.abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; short only if the object is shorter."""

    def readinto(self, key: str, start: int, buf: bytearray | memoryview) -> int:
        """Read bytes of ``key`` from ``start`` into the writable ``buf``; the count read,
        short only if the object is shorter.

        Lets a reader keep one buffer per 8 MB tile instead of a new object (and new
        pages) per read. This default copies a ranged get; a backend that can read
        straight into memory (a local file) overrides it.
        """
        view = memoryview(buf).cast("B")
        data = self.get_range(key, start, len(view))
        view[: len(data)] = data
        return len(data)

    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        """Store an object atomically and durably, replacing any previous one.

        ``sync=False``: atomic, but durable only once :meth:`sync` returns. For many
        objects written before one commit (sealed chunks): on a local disk one flush
        per object at commit costs a fraction of flushing each as it is written.
        """

    def put_new(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Like :meth:`put`, but ``ObjectExistsError`` if ``key`` exists: a commit puts
        its manifest this way, so a writer that lost its lease (paused past it while
        another took over) cannot replace the other's commit. Object stores make it one
        conditional request; this default checks first, which is enough where the writer
        lock cannot be lost (a local flock)."""
        if self.exists(key):
            raise ObjectExistsError(f"object {key!r} exists already")
        self.put(key, data)

    def sync(self) -> None:
        """Make every object put with ``sync=False`` so far durable (default: they are)."""

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        """Like :meth:`put`, with the object's ``size`` bytes read from the binary file
        ``f`` (from its position). Backends copy it in pieces, so a multi-GB file (a big
        staged file of the mount) never sits in memory; this default reads it whole."""
        self.put(key, read_exactly(f, size), sync=sync)

    def put_parts(self, key: str, parts: Sequence[bytes | bytearray | memoryview], *, sync: bool = True) -> None:
        """Like :meth:`put` of the concatenation of ``parts``, without making it: a sealed
        chunk is kept as its samples' bytes objects. Goes through :meth:`put_from`, so every
        backend and wrapper takes it; LocalStorage writes the parts as they are."""
        f = Buffers(parts)
        self.put_from(key, f, f.size, sync=sync)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error. The removal is durable once
        :meth:`sync` returns (a crash before may bring the object back, never a mix)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; ``ObjectNotFoundError`` if missing."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``."""

    def mtime_ns(self, key: str) -> int | None:
        """When ``key`` was last written (ns since the epoch); None if it is missing or
        the backend keeps no times (this default). The time a directory with no stored
        one shows: the dataset marker's, its creation (``Dataset.dir_attr``)."""
        return None

    def top_names(self) -> list[str]:
        """The names at the top of the storage, also those :meth:`list` skips because
        they are not valid keys (a user's ``My Photo.jpg``, a symlink): a dataset is
        never created among files that are not its own."""
        return sorted({key.split("/", 1)[0] for key in self.list()})

    @abc.abstractmethod
    def writer_lock(self, name: str) -> WriterLock:
        """Take the exclusive writer lock ``name`` or raise ``LockedError``.

        The lock must vanish when its holder dies (flock locally, a lease on object
        stores), so a killed writer never blocks the next one for long. Locally the
        answer is immediate; an object-store lease held from another machine is watched
        for up to its duration plus a tenth first (docs/FORMAT.md §9), because the two
        machines' clocks cannot be compared.
        """

    def check(self) -> None:
        """Raise ``StorageError`` with one clear line if the storage is unusable.

        Called at open/mount time so an unreachable endpoint, bad credentials or a
        missing bucket is reported before the first real operation.
        """

    def write_protected(self) -> bool:
        """Whether the medium itself refuses every write (a local folder on a read-only
        file system: EROFS), whatever ``writable`` says: nothing can open it for writing,
        not even its writer lock. The default (memory, object stores): False."""
        return False

    def _check_writable(self, key: str) -> None:
        if not self.writable:
            raise ReadOnlyError(f"storage is read-only: cannot write {key!r}")

    def prefetch(self, key: str) -> None:
        """A hint that ``key`` will be read soon, in pieces: fetch it ahead if that helps.

        The default does nothing; it must never raise for a missing key.
        """

    def invalidate(self, key: str) -> bool:
        """The bytes of ``key`` just read from here failed verification (a checksum, a
        length, a header): forget any local copy of it. True if reading ``key`` again may
        give other bytes (a local copy was dropped: the next read goes to the store), so
        the reader retries once; False (this default) if it would read the same bytes:
        the stored object itself is damaged. Readers use :func:`read_verified`.
        """
        return False

    def statfs(self) -> tuple[int, int, int]:
        """(total, free, available) bytes of the storage underneath, for ``df``."""
        return (1 << 50, 1 << 50, 1 << 50)

    def leftover_temps(self, min_age: float = 0.0) -> list[tuple[str, int, float]]:
        """Temp files of puts at least ``min_age`` seconds old, (name under the root,
        bytes, age in seconds): a process killed mid-put leaves its temp file, which
        :meth:`list` never shows (``lakefs fsck`` notes them). A live put's is fresh: it
        is written as it goes. This default has none (a backend with atomic puts)."""
        return []

    def delete_leftover_temps(self, min_age: float) -> list[tuple[str, int, float]]:
        """Delete the :meth:`leftover_temps` at least ``min_age`` seconds old (``lakefs
        compact``); those deleted."""
        return []

    def close(self) -> None:
        """Release resources (connections, file handles)."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def where(self) -> str:
        """Where the objects live, for messages: a directory or a URL."""
        return repr(self)


def read_verified(storage: Storage, key: str, read: Callable[[], T], verify: Callable[[T], R]) -> R:
    """``verify(read())``, where ``read`` reads ``key`` from ``storage`` and ``verify``
    raises ``CorruptionError`` (or ``FormatVersionError``: a damaged version byte) on bad
    bytes. Once more if ``storage.invalidate(key)`` says a fresh read may differ: a
    damaged local copy (the read cache's) is fetched again from the store instead of
    failing every read of it for good; a second failure is the store's copy."""
    try:
        return verify(read())
    except (CorruptionError, FormatVersionError):
        if not storage.invalidate(key):
            raise
    return verify(read())


class StorageWrapper(Storage):
    """A storage that forwards every operation to ``inner``; wrappers (the read cache,
    fault injection) override only what they change."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.writable = inner.writable

    @property
    def where(self) -> str:
        return self.inner.where

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.get_range(key, start, length)

    def readinto(self, key: str, start: int, buf: bytearray | memoryview) -> int:
        return self.inner.readinto(key, start, buf)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        self.inner.put(key, data, sync=sync)

    def put_new(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put_new(key, data)

    def sync(self) -> None:
        self.inner.sync()

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        self.inner.put_from(key, f, size, sync=sync)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def top_names(self) -> list[str]:
        return self.inner.top_names()

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def mtime_ns(self, key: str) -> int | None:
        return self.inner.mtime_ns(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def writer_lock(self, name: str) -> WriterLock:
        return self.inner.writer_lock(name)

    def write_protected(self) -> bool:
        return self.inner.write_protected()

    def prefetch(self, key: str) -> None:
        self.inner.prefetch(key)

    def invalidate(self, key: str) -> bool:
        return self.inner.invalidate(key)

    def check(self) -> None:
        self.inner.check()

    def statfs(self) -> tuple[int, int, int]:
        return self.inner.statfs()

    def leftover_temps(self, min_age: float = 0.0) -> list[tuple[str, int, float]]:
        return self.inner.leftover_temps(min_age)

    def delete_leftover_temps(self, min_age: float) -> list[tuple[str, int, float]]:
        return self.inner.delete_leftover_temps(min_age)

    def close(self) -> None:
        self.inner.close()
