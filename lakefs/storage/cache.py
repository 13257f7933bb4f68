"""CachingStorage: a bounded on-disk read cache in front of a slow (object) store.

Only *immutable* objects are cached — keys the caller's ``cacheable`` predicate
accepts, by default any key with a ``chunks`` directory segment (chunks are written
once and never rewritten; DESIGN §5). Every other key passes straight through, so
mutable objects (HEAD, manifests, locks) are never served stale.

A cached object is one whole file ``<cache_dir>/<h[:2]>/<h>`` with ``h`` the SHA-256 of
its key. A miss fetches the whole object (one GET, or parallel 8 MB ranged GETs when
it is large) and then serves the requested range, so the next reads of the same chunk
are local. Eviction is LRU by access within a process; after a restart the index is
rebuilt from the directory, ordered by file mtime (the fill time). Cache files are
fsync'd before they are renamed into place, so a power cut leaves whole files or none.
The cache directory must belong to one dataset: keys are not namespaced per store.
Several processes may share it (two mounts of one dataset): a file another process
cached is adopted on first use; each process bounds the fills it knows of.

A cached file damaged on the local disk (a flipped bit, a file cut short) is found by
the reader's checksums, which report it through :meth:`CachingStorage.invalidate`: the
file is dropped and the object fetched again, once, so a bad cache disk never makes a
sample fail for good; only a store copy that is damaged too is an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import BinaryIO

from lakefs.errors import StorageError
from lakefs.storage.base import (
    Storage,
    StorageWrapper,
    check_key,
    check_range,
)

log = logging.getLogger(__name__)

PART_SIZE = 8 << 20
_TMP_MARK = ".tmp~"
_STALE_TMP_SECONDS = 600


def default_cacheable(key: str) -> bool:
    """True for keys inside a ``chunks/`` directory (immutable once written)."""
    return "chunks" in key.split("/")[:-1]


def parallel_get(
    storage: Storage,
    key: str,
    size: int,
    *,
    start: int = 0,
    part_size: int = PART_SIZE,
    executor: Executor | None = None,
    max_workers: int = 8,
) -> bytes:
    """Bytes ``[start, size)`` of ``key`` fetched as parallel ranged GETs of ``part_size``.

    A short part means the object changed under us (it is meant for immutable objects):
    that is reported as ``StorageError`` rather than returning torn bytes.
    """
    offsets = list(range(start, size, part_size))
    if not offsets:
        return b""

    def part(offset: int) -> bytes:
        want = min(part_size, size - offset)
        got = storage.get_range(key, offset, want)
        if len(got) != want:
            raise StorageError(f"object {key!r} changed while being read in parts")
        return got

    if len(offsets) == 1:
        return part(offsets[0])
    if executor is not None:
        return b"".join(executor.map(part, offsets))
    with ThreadPoolExecutor(max_workers=min(max_workers, len(offsets))) as pool:
        return b"".join(pool.map(part, offsets))


class CacheDirError(StorageError):
    """The cache directory cannot be made or used (not a directory, no permission, a
    read-only filesystem): a caller for which the cache is optional goes on without it."""

    def __init__(self, cache_dir: str, reason: str) -> None:
        super().__init__(f"cannot use the cache directory {cache_dir}: {reason}"
                         " (set cache_dir elsewhere, or cache_size: 0)")
        self.cache_dir = cache_dir
        self.reason = reason


class CachingStorage(StorageWrapper):
    """``inner`` with a read cache of at most ``max_bytes`` in ``cache_dir``."""

    def __init__(
        self,
        inner: Storage,
        cache_dir: str | os.PathLike[str],
        max_bytes: int,
        *,
        cacheable: Callable[[str], bool] = default_cacheable,
        part_size: int = PART_SIZE,
        max_workers: int = 8,
    ) -> None:
        super().__init__(inner)
        self.cache_dir = os.fspath(cache_dir)
        self.max_bytes = int(max_bytes)
        self.cacheable = cacheable
        self.part_size = part_size
        self.hits = 0
        self.misses = 0
        self._index: OrderedDict[str, int] = OrderedDict()  # name → size, LRU first
        self._used = 0
        self._mutex = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}  # name → set when its fill ends
        self._too_big: set[str] = set()  # names of objects the cache can never hold
        self._dropped: dict[str, bytes] = {}  # name → digest of a damaged file dropped, until refetched
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None  # made at first use, again after close()
        self._pool_lock = threading.Lock()
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            self._rebuild()
        except OSError as e:
            # (makedirs over a file says "File exists", which named no fault)
            why = "a file is there, not a directory" if isinstance(e, FileExistsError) else e.strerror or str(e)
            raise CacheDirError(self.cache_dir, why) from e

    def __repr__(self) -> str:
        return f"CachingStorage({self.inner!r}, {self.cache_dir!r}, {self.max_bytes})"

    @property
    def used_bytes(self) -> int:
        return self._used

    # --- the on-disk index -----------------------------------------------------------

    def _name(self, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def _file(self, name: str) -> str:
        return os.path.join(self.cache_dir, name[:2], name)

    def _rebuild(self) -> None:
        found = []
        for sub in os.scandir(self.cache_dir):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                if _TMP_MARK in entry.name:
                    # Left by a crash mid-fill, unless another live process (a second
                    # mount sharing the directory) is filling it right now.
                    try:
                        if time.time() - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                            os.unlink(entry.path)
                    except FileNotFoundError:
                        pass
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat()
                    found.append((st.st_mtime_ns, entry.name, st.st_size))
        with self._mutex:
            for _, name, size in sorted(found):
                self._index[name] = size
                self._used += size
            self._evict_locked()

    def _evict_locked(self) -> None:
        while self._used > self.max_bytes and self._index:
            name, size = self._index.popitem(last=False)
            self._used -= size
            try:
                os.unlink(self._file(name))
            except FileNotFoundError:
                pass

    def _forget(self, name: str) -> None:
        with self._mutex:
            size = self._index.pop(name, None)
            if size is not None:
                self._used -= size
                try:
                    os.unlink(self._file(name))
                except FileNotFoundError:
                    pass

    def _adopt(self, name: str) -> int | None:
        """Take into the index a file another process (a second mount) cached; its size.

        Files appear only whole (fsync + rename), so one that exists is complete.
        """
        try:
            size = os.stat(self._file(name)).st_size
        except OSError:
            return None
        with self._mutex:
            if name not in self._index:
                self._index[name] = size
                self._used += size
                self._evict_locked()
                if name not in self._index:
                    return None
        return size

    def _store(self, name: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        path = self._file(name)
        tmp = f"{path}{_TMP_MARK}{secrets.token_hex(4)}"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:  # a full or broken cache disk only costs speed
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        with self._mutex:
            old = self._index.pop(name, None)
            self._used += len(data) - (old or 0)
            self._index[name] = len(data)
            self._evict_locked()

    def _read_cached(self, name: str, start: int, length: int | None) -> bytes | None:
        """Bytes from the cached file, or None on a miss (marking the hit as used)."""
        with self._mutex:
            size = self._index.get(name)
            if size is not None:
                self._index.move_to_end(name)
        if size is None:
            size = self._adopt(name)
            if size is None:
                return None
        if length is None:
            length = size
        try:
            fd = os.open(self._file(name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # evicted under us (or a broken cache disk: only costs speed)
            self._forget(name)
            return None
        try:
            return os.pread(fd, max(0, min(length, size - start)), start)
        finally:
            os.close(fd)

    def _fill(self, key: str, name: str) -> bytes | None:
        """The whole object, fetched and cached once even when many threads miss it at
        the same time (every sample read of a cold chunk misses it); None if too big."""
        with self._mutex:
            leader = self._inflight.get(name)
            if leader is None:
                self._inflight[name] = mine = threading.Event()
        if leader is not None:
            leader.wait()
            data = self._read_cached(name, 0, None)
            if data is not None:
                return data
            return self._fetch(key, name)  # the leader failed, or the object is not cached
        try:
            data = self._fetch(key, name)
            if data is not None:
                self._note_refetch(key, name, data)
                self._store(name, data)
            return data
        finally:
            with self._mutex:
                del self._inflight[name]
            mine.set()

    def _drop(self, name: str) -> None:
        """Delete the cached file of ``name``, remembering a digest of what it held: the
        refetch then tells whether the file was damaged (:meth:`_note_refetch`)."""
        path = self._file(name)
        try:
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).digest()
        except OSError:
            digest = None  # dropped already (another reader of the same bad copy)
        with self._mutex:
            size = self._index.pop(name, None)
            if size is not None:
                self._used -= size
            if digest is not None:
                self._dropped[name] = digest
            try:
                os.unlink(path)
            except OSError:
                pass

    def _note_refetch(self, key: str, name: str, data: bytes) -> None:
        """One WARNING when the store's copy of a dropped file differs from it: that cache
        file was damaged. The same bytes mean the store's copy is the damaged one, which
        the reader reports."""
        with self._mutex:
            digest = self._dropped.pop(name, None)
        if digest is not None and hashlib.sha256(data).digest() != digest:
            log.warning("read cache: cache file %s (a copy of %s) was damaged; dropped it and read the "
                        "object from the store again", self._file(name), key)

    def _fetch(self, key: str, name: str) -> bytes | None:
        """The whole object from ``inner`` (parallel parts if large); None if it is too
        big to cache (the caller then reads just the range it needs). A cache smaller
        than one part asks the object's size first: fetching a whole 8 MB chunk for each
        sample of it, only to throw it away, cost 100x the bytes read."""
        if name in self._too_big:
            return None
        if self.max_bytes < self.part_size and self.inner.size(key) > self.max_bytes:
            self._too_big.add(name)
            return None
        first = self.inner.get_range(key, 0, self.part_size)
        if len(first) < self.part_size:
            return first
        total = self.inner.size(key)
        if total > self.max_bytes:
            self._too_big.add(name)
            return None
        rest = parallel_get(self.inner, key, total, start=len(first),
                            part_size=self.part_size, executor=self._executor())
        return first + rest

    # --- Storage ---------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        if not self.cacheable(check_key(key)):
            return self.inner.get(key)
        name = self._name(key)
        data = self._read_cached(name, 0, None)
        if data is not None:
            self.hits += 1
            return data
        self.misses += 1
        data = self._fill(key, name)
        if data is None:
            return self.inner.get(key)
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        if not self.cacheable(check_key(key)):
            return self.inner.get_range(key, start, length)
        name = self._name(key)
        data = self._read_cached(name, start, length)
        if data is not None:
            self.hits += 1
            return data
        self.misses += 1
        whole = self._fill(key, name)
        if whole is None:
            return self.inner.get_range(key, start, length)
        return whole[start : start + length]

    def readinto(self, key: str, start: int, buf: bytearray | memoryview) -> int:
        return Storage.readinto(self, key, start, buf)  # through the cache (get_range)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        self.inner.put(key, data, sync=sync)
        if self.cacheable(key):
            self._forget(self._name(key))

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        self.inner.put_from(key, f, size, sync=sync)
        if self.cacheable(key):
            self._forget(self._name(key))

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        if self.cacheable(key):
            self._forget(self._name(key))

    def exists(self, key: str) -> bool:
        if self.cacheable(check_key(key)) and self._name(key) in self._index:
            return True
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        if self.cacheable(check_key(key)):
            size = self._index.get(self._name(key))
            if size is not None:
                return size
        return self.inner.size(key)

    def prefetch(self, key: str) -> None:
        """Nothing to do: a miss already fetches the whole object into the cache."""

    def invalidate(self, key: str) -> bool:
        """A reader found the copy of ``key`` it got damaged: drop the cached file (the
        next read fetches the object again) and say a fresh read may differ. When the
        copy came from the store itself, the refetch gives the same bytes and the reader
        reports them; the cost is one more fetch, on a path that fails anyway."""
        if not self.cacheable(check_key(key)) or self._name(key) in self._too_big:
            return self.inner.invalidate(key)  # never cached: not ours to retry
        self._drop(self._name(key))
        self.inner.invalidate(key)
        return True

    def _executor(self) -> ThreadPoolExecutor:
        """The pool fetching a big object's parts. A dataset read after its close()
        (which shuts the pool down) gets a new one, as a closed LocalStorage reopens
        its files, rather than "cannot schedule new futures after shutdown"."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="lakefs-cache")
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        self.inner.close()


__all__ = ["CachingStorage", "default_cacheable", "parallel_get"]
