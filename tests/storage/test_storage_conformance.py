"""The one conformance suite every Storage backend passes (zarr testing/store.py style).

Each backend class supplies an ``env`` fixture: the store under test, a way to open the
same location again (read-only or as a second writer), and a back door that reads and
writes raw objects without going through the store, so the store cannot fool itself.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from backdoors import DictBackdoor, FsspecMemoryBackdoor, LocalBackdoor, S3Backdoor
from s3server import BUCKET, s3_options

from lakefs.errors import (
    InvalidKeyError,
    LockedError,
    ObjectNotFoundError,
    ReadOnlyError,
)
from lakefs.storage import LocalStorage, MemoryStorage, Storage, open_storage
from lakefs.storage.memory import _named

pytestmark = pytest.mark.timeout(60)


@dataclass
class Env:
    store: Storage
    reopen: Callable[..., Storage]  # reopen(read_only=False) -> a second store, same place
    raw: Any  # back door: put(key, data), get(key) -> bytes | None, keys() -> set


INVALID_KEYS = [
    "",
    "/abs",
    "/",
    "a/../b",
    "..",
    ".",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "x" * 1025,
    "sp ace",
    "caf\u00e9",
]

KEYS = ["a/b/c", "a/b/d", "a/bc", "ab", "x/y/z", "v.1/k=v-w_x.json"]


class StorageTests:
    """Subclasses provide an ``env`` fixture."""

    #: False where no outside writer can create a name that is not a valid key
    stray_names_possible = True
    #: False where the backend keeps no object times (``mtime_ns`` says None)
    keeps_times = True

    @pytest.fixture
    def store(self, env: Env) -> Storage:
        return env.store

    # --- get / put -------------------------------------------------------------------

    def test_put_then_backdoor_get(self, env: Env) -> None:
        env.store.put("a/b/c", b"hello")
        assert env.raw.get("a/b/c") == b"hello"

    def test_backdoor_put_then_get(self, env: Env) -> None:
        env.raw.put("k/v", b"\x00\xffdata")
        assert env.store.get("k/v") == b"\x00\xffdata"
        assert env.store.exists("k/v")
        assert env.store.size("k/v") == 6

    @pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 13], ids=len)
    def test_roundtrip(self, store: Storage, data: bytes) -> None:
        store.put("obj", data)
        assert store.get("obj") == data
        assert store.size("obj") == len(data)

    def test_top_names(self, env: Env) -> None:
        assert env.store.top_names() == []
        env.store.put("a/b/c", b"1")
        env.store.put("z", b"2")
        assert env.store.top_names() == ["a", "z"]

    def test_put_new_creates_only(self, env: Env) -> None:
        from lakefs.errors import ObjectExistsError

        env.store.put_new("m/1", b"first")
        with pytest.raises(ObjectExistsError):
            env.store.put_new("m/1", b"second")
        assert env.store.get("m/1") == b"first" and env.raw.get("m/1") == b"first"

    def test_put_bytearray_and_memoryview(self, env: Env) -> None:
        env.store.put("ba", bytearray(b"abc"))
        env.store.put("mv", memoryview(b"xxdefxx")[2:5])
        assert env.raw.get("ba") == b"abc"
        assert env.raw.get("mv") == b"def"

    def test_put_without_sync_is_visible_at_once_and_synced_later(self, env: Env) -> None:
        env.store.put("u/a", b"first", sync=False)
        env.store.put("u/b", b"second", sync=False)
        assert env.store.get("u/a") == b"first" and env.raw.get("u/b") == b"second"
        env.store.delete("u/b")  # deleted before the sync: nothing to flush, no error
        env.store.sync()
        env.store.sync()  # nothing pending: harmless
        assert env.store.get("u/a") == b"first" and not env.store.exists("u/b")

    @pytest.mark.parametrize("size", [0, 5, (8 << 20) * 2 + 3], ids=["empty", "small", "3-pieces"])
    def test_put_from_a_file_in_pieces(self, env: Env, tmp_path: Any, size: int) -> None:
        data = os.urandom(size)
        with open(tmp_path / "src", "w+b") as f:
            f.write(b"skip" + data + b"after")
            f.seek(4)
            env.store.put_from("from/file", f, size)
        assert env.store.get("from/file") == data and env.raw.get("from/file") == data
        with open(tmp_path / "src", "rb") as f:
            f.seek(4)
            env.store.put_from("from/unsynced", f, size, sync=False)  # durable at sync()
        env.store.sync()
        assert env.raw.get("from/unsynced") == data
        with open(tmp_path / "src", "rb") as f, pytest.raises(ValueError, match="ended"):
            env.store.put_from("from/short", f, size + 100)  # the file is shorter: nothing stored
        assert not env.store.exists("from/short")

    @pytest.mark.parametrize("sizes", [[0], [5, 0, 7], [3 << 20, 1, 6 << 20]])
    def test_put_parts(self, env: Env, sizes: list[int]) -> None:
        """A sealed chunk is put as its samples' bytes objects, in order."""
        parts = [os.urandom(n) for n in sizes]
        env.store.put_parts("parts/one", [parts[0], bytearray(b"-"), *parts[1:]], sync=False)
        env.store.sync()
        whole = parts[0] + b"-" + b"".join(parts[1:])
        assert env.store.get("parts/one") == whole and env.raw.get("parts/one") == whole
        assert env.store.get_range("parts/one", len(parts[0]), 1) == b"-"

    def test_large_object(self, store: Storage) -> None:
        data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB
        store.put("big/obj", data)
        assert store.get("big/obj") == data
        assert store.get_range("big/obj", 1_000_003, 777_777) == data[1_000_003:1_777_780]

    def test_get_missing(self, store: Storage) -> None:
        with pytest.raises(ObjectNotFoundError):
            store.get("nope")
        with pytest.raises(FileNotFoundError):  # the built-in it resembles
            store.get("no/such/key")

    @pytest.mark.parametrize(
        ("start", "length"),
        [(0, 5), (1, 3), (3, 100), (0, 0), (2, 0), (5, 0), (5, 1), (10, 5), (100, 1), (4, 1)],
    )
    def test_get_range(self, store: Storage, start: int, length: int) -> None:
        store.put("r", b"hello")
        assert store.get_range("r", start, length) == b"hello"[start : start + length]

    def test_get_range_missing(self, store: Storage) -> None:
        with pytest.raises(ObjectNotFoundError):
            store.get_range("nope", 0, 10)
        with pytest.raises(ObjectNotFoundError):
            store.get_range("nope", 0, 0)

    def test_get_range_negative(self, store: Storage) -> None:
        store.put("r", b"hello")
        with pytest.raises(ValueError):
            store.get_range("r", -1, 2)
        with pytest.raises(ValueError):
            store.get_range("r", 0, -2)

    @pytest.mark.parametrize(("start", "size"), [(0, 5), (1, 3), (3, 100), (0, 0), (5, 4), (10, 5)])
    def test_readinto(self, store: Storage, start: int, size: int) -> None:
        store.put("r", b"hello")
        buf = bytearray(b"#" * size)
        n = store.readinto("r", start, buf)
        want = b"hello"[start : start + size]
        assert n == len(want)
        assert bytes(buf[:n]) == want and bytes(buf[n:]) == b"#" * (size - n)  # nothing past the end

    def test_readinto_large_object_and_a_view(self, store: Storage) -> None:
        data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB: more than one read syscall may give
        store.put("big/obj", data)
        buf = bytearray(len(data) + 10)
        assert store.readinto("big/obj", 0, memoryview(buf)[5:]) == len(data)
        assert bytes(buf[5 : 5 + len(data)]) == data

    def test_readinto_missing_and_negative(self, store: Storage) -> None:
        with pytest.raises(ObjectNotFoundError):
            store.readinto("nope", 0, bytearray(4))
        store.put("r", b"hello")
        with pytest.raises(ValueError):
            store.readinto("r", -1, bytearray(4))

    def test_overwrite(self, env: Env) -> None:
        env.store.put("o", b"first version")
        env.store.put("o", b"second")
        assert env.store.get("o") == b"second"
        assert env.raw.get("o") == b"second"
        assert env.store.size("o") == 6
        assert sorted(env.store.list("o")) == ["o"]

    # --- delete / exists / size ------------------------------------------------------

    def test_delete(self, env: Env) -> None:
        env.store.put("d/x", b"1")
        env.store.delete("d/x")
        assert env.raw.get("d/x") is None
        assert not env.store.exists("d/x")
        with pytest.raises(ObjectNotFoundError):
            env.store.get("d/x")

    def test_delete_missing_is_not_an_error(self, store: Storage) -> None:
        store.delete("never/was")
        store.delete("never")

    def test_exists_and_size(self, store: Storage) -> None:
        assert not store.exists("e")
        store.put("e/f", b"12345")
        assert store.exists("e/f")
        assert not store.exists("e")  # a "directory" is not an object
        assert store.size("e/f") == 5
        with pytest.raises(ObjectNotFoundError):
            store.size("e/g")
        with pytest.raises(ObjectNotFoundError):
            store.size("e")

    def test_mtime_ns(self, store: Storage) -> None:
        """When an object was written (a directory with no stored time shows the dataset
        marker's), or None where the backend keeps no times; None for a missing one."""
        before = time.time_ns()
        store.put("m/k", b"x")
        after = time.time_ns()
        t = store.mtime_ns("m/k")
        if self.keeps_times:
            assert before - 2 * 10**9 <= t <= after + 10**9, (before, t, after)  # (S3's: to the second)
        else:
            assert t is None
        assert store.mtime_ns("m/none") is None and store.mtime_ns("m") is None

    # --- list ------------------------------------------------------------------------

    def test_list_prefixes(self, store: Storage) -> None:
        for k in KEYS:
            store.put(k, k.encode())
        assert sorted(store.list()) == sorted(KEYS)
        assert sorted(store.list("")) == sorted(KEYS)
        assert sorted(store.list("a/")) == ["a/b/c", "a/b/d", "a/bc"]
        assert sorted(store.list("a/b")) == ["a/b/c", "a/b/d", "a/bc"]
        assert sorted(store.list("a/b/")) == ["a/b/c", "a/b/d"]
        assert sorted(store.list("a")) == ["a/b/c", "a/b/d", "a/bc", "ab"]
        assert sorted(store.list("a/b/c")) == ["a/b/c"]
        assert sorted(store.list("v.1/")) == ["v.1/k=v-w_x.json"]
        assert list(store.list("nope/")) == []
        assert list(store.list("x/y/z/")) == []

    def test_list_empty_store(self, store: Storage) -> None:
        assert list(store.list()) == []

    def test_list_skips_names_that_are_not_keys(self, env: Env) -> None:
        env.store.put("t/real", b"1")
        if not self.stray_names_possible:  # only put() writes into this backend
            assert sorted(env.store.list()) == ["t/real"]
            return
        env.raw.put("t/.real.tmp~deadbeef", b"half a write")  # a crashed put's temp file
        env.raw.put("t/with space", b"?")
        assert sorted(env.store.list()) == ["t/real"]
        assert sorted(env.store.list("t/")) == ["t/real"]

    def test_list_after_delete(self, store: Storage) -> None:
        store.put("l/a", b"1")
        store.put("l/b", b"2")
        store.delete("l/a")
        assert sorted(store.list("l/")) == ["l/b"]

    # --- keys ------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
    def test_invalid_keys(self, env: Env, key: str) -> None:
        store = env.store
        for op in (
            lambda: store.get(key),
            lambda: store.get_range(key, 0, 1),
            lambda: store.put(key, b"x"),
            lambda: store.delete(key),
            lambda: store.exists(key),
            lambda: store.size(key),
        ):
            with pytest.raises(InvalidKeyError):
                op()
        assert env.raw.keys() == set()

    def test_longest_key_is_accepted(self, store: Storage) -> None:
        key = "/".join(["k" * 200] * 5) + "/" + "z" * 19  # 1024 characters
        assert len(key) == 1024
        store.put(key, b"long")
        assert store.get(key) == b"long"

    # --- read-only -------------------------------------------------------------------

    def test_read_only(self, env: Env) -> None:
        env.store.put("ro/x", b"data")
        ro = env.reopen(read_only=True)
        assert not ro.writable
        assert ro.get("ro/x") == b"data"
        assert ro.get_range("ro/x", 1, 2) == b"at"
        assert sorted(ro.list()) == ["ro/x"]
        for op in (
            lambda: ro.put("ro/x", b"new"),
            lambda: ro.put("ro/y", b"new"),
            lambda: ro.delete("ro/x"),
            lambda: ro.writer_lock("writer"),
        ):
            with pytest.raises(ReadOnlyError):
                op()
        with pytest.raises(PermissionError):
            ro.put("ro/x", b"new")
        assert env.raw.get("ro/x") == b"data"
        assert env.raw.get("ro/y") is None

    # --- writer lock -----------------------------------------------------------------

    def test_writer_lock_is_exclusive(self, env: Env) -> None:
        lock = env.store.writer_lock("writer")
        try:
            lock.verify()
            with pytest.raises(LockedError, match="locked by another writer"):
                env.reopen().writer_lock("writer")
            with pytest.raises(LockedError):
                env.store.writer_lock("writer")  # same store, same process
            with pytest.raises(BlockingIOError):  # the built-in it resembles
                env.store.writer_lock("writer")
            other = env.store.writer_lock("other")  # another name is independent
            other.release()
        finally:
            lock.release()
        lock.release()  # twice is harmless
        with pytest.raises(LockedError):
            lock.verify()
        again = env.reopen().writer_lock("writer")
        again.release()

    def test_writer_lock_context_manager(self, env: Env) -> None:
        with env.store.writer_lock("writer") as lock:
            assert lock is not None
            with pytest.raises(LockedError):
                env.reopen().writer_lock("writer")
        with env.reopen().writer_lock("writer"):
            pass

    def test_writer_lock_lives_under_locks_prefix(self, env: Env) -> None:
        with env.store.writer_lock("writer"):
            keys = set(env.store.list())
            assert keys <= {"locks/writer"}
            assert all(k.startswith("locks/") for k in env.raw.keys())

    @pytest.mark.parametrize("name", ["", "a/b", "..", "bad name"])
    def test_writer_lock_invalid_name(self, store: Storage, name: str) -> None:
        with pytest.raises(InvalidKeyError):
            store.writer_lock(name)

    def test_writer_lock_race_between_threads(self, env: Env) -> None:
        stores = [env.reopen() for _ in range(6)]
        won: list[Any] = []
        lost: list[Exception] = []
        barrier = threading.Barrier(len(stores))

        def take(s: Storage) -> None:
            barrier.wait()
            try:
                won.append(s.writer_lock("writer"))
            except LockedError as e:
                lost.append(e)

        threads = [threading.Thread(target=take, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert len(won) == 1, won
            assert len(lost) == len(stores) - 1
        finally:
            for lock in won:
                lock.release()

    # --- concurrency -----------------------------------------------------------------

    def test_concurrent_puts(self, env: Env) -> None:
        store = env.store
        errors: list[BaseException] = []
        values = {i: bytes([i]) * (1000 + i) for i in range(8)}

        def work(i: int) -> None:
            try:
                for j in range(10):
                    store.put(f"c/{i}/{j}", f"{i}-{j}".encode())
                    store.put("c/shared", values[i])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len([k for k in store.list("c/") if k != "c/shared"]) == 80
        assert store.get("c/3/7") == b"3-7"
        assert store.get("c/shared") in values.values()  # one whole value, never a mix
        assert env.raw.get("c/shared") in values.values()

    def test_check_passes(self, store: Storage) -> None:
        store.check()
        total, free, avail = store.statfs()
        assert total >= free >= 0 and avail >= 0


# --- the backends ---------------------------------------------------------------------


class TestLocalStorage(StorageTests):
    @pytest.fixture
    def env(self, tmp_path: Any) -> Env:
        root = str(tmp_path / "ds")
        return Env(
            LocalStorage(root),
            lambda read_only=False: LocalStorage(root, read_only=read_only),
            LocalBackdoor(root),
        )


class TestLocalStorageViaOpenStorage(StorageTests):
    @pytest.fixture
    def env(self, tmp_path: Any) -> Env:
        root = tmp_path / "ds"
        root.mkdir()
        return Env(
            open_storage(f"file://{root}"),
            lambda read_only=False: open_storage(str(root), read_only=read_only),
            LocalBackdoor(str(root)),
        )


class TestMemoryStorage(StorageTests):
    stray_names_possible = False
    keeps_times = False

    @pytest.fixture
    def env(self) -> Iterator[Env]:
        name = f"conf-{uuid.uuid4().hex}"
        store = open_storage(f"memory://{name}")
        assert isinstance(store, MemoryStorage)
        yield Env(
            store,
            lambda read_only=False: open_storage(f"memory://{name}", read_only=read_only),
            DictBackdoor(_named[name].objects),
        )
        del _named[name]


class TestFsspecS3Storage(StorageTests):
    @pytest.fixture
    def env(self, s3_endpoint: str, s3_prefix: str) -> Env:
        url = f"s3://{BUCKET}/{s3_prefix}"
        opts = s3_options(s3_endpoint)
        return Env(
            open_storage(url, options=opts),
            lambda read_only=False: open_storage(url, read_only=read_only, options=opts),
            S3Backdoor(s3_endpoint, s3_prefix),
        )


class TestFsspecMemoryStorage(StorageTests):
    """A filesystem without conditional writes: the write-and-read-back lease path."""

    @pytest.fixture
    def env(self) -> Iterator[Env]:
        from lakefs.storage.fsspec_store import FsspecStorage

        root = f"memory://conf-{uuid.uuid4().hex}"
        yield Env(
            FsspecStorage(root),
            lambda read_only=False: FsspecStorage(root, read_only=read_only),
            FsspecMemoryBackdoor(root),
        )
        raw = FsspecMemoryBackdoor(root)
        if raw.fs.exists(root):
            raw.fs.rm(root, recursive=True)


class TestCachingS3Storage(StorageTests):
    """The read cache in front of S3, caching every key it is allowed to."""

    @pytest.fixture
    def env(self, s3_endpoint: str, s3_prefix: str, tmp_path: Any) -> Env:
        from lakefs.storage.cache import CachingStorage
        from lakefs.storage.fsspec_store import FsspecStorage

        url = f"s3://{BUCKET}/{s3_prefix}"
        opts = s3_options(s3_endpoint)

        def make(read_only: bool = False) -> Storage:
            inner = FsspecStorage(url, opts, read_only=read_only)
            return CachingStorage(inner, tmp_path / "cache", 1 << 20,
                                  cacheable=lambda k: not k.startswith("locks/"),
                                  part_size=64 << 10)

        return Env(make(), make, S3Backdoor(s3_endpoint, s3_prefix))
