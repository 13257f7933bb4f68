"""CachingStorage: hits stay local, the cache is bounded, it survives a restart."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakefs.errors import ObjectNotFoundError, StorageError
from lakefs.storage import MemoryStorage, Storage, WriterLock
from lakefs.storage.cache import CachingStorage, default_cacheable, parallel_get

pytestmark = pytest.mark.timeout(30)


class Counting(Storage):
    """Counts the calls that reach the inner store."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self._mutex = threading.Lock()

    def _count(self, op: str) -> None:
        with self._mutex:
            self.calls[op] += 1

    @property
    def reads(self) -> int:
        return self.calls["get"] + self.calls["get_range"]

    def get(self, key: str) -> bytes:
        self._count("get")
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self._count("get_range")
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        self.inner.put(key, data, sync=sync)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        self._count("exists")
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        self._count("size")
        return self.inner.size(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def writer_lock(self, name: str) -> WriterLock:
        return self.inner.writer_lock(name)


@pytest.fixture
def inner() -> Counting:
    return Counting(MemoryStorage())


def cache_files(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if p.is_file()]


def test_default_predicate() -> None:
    assert default_cacheable("tensors/t1/chunks/000000000000000a")
    assert default_cacheable("chunks/0")
    assert not default_cacheable("HEAD")
    assert not default_cacheable("manifests/0000000000000001.json")
    assert not default_cacheable("tensors/chunks")  # a file named chunks is no directory


def test_hits_do_not_reach_the_inner_store(inner: Counting, tmp_path: Path) -> None:
    data = os.urandom(5000)
    inner.put("t/chunks/1", data)
    cache = CachingStorage(inner, tmp_path, 1 << 24)  # (not smaller than a part: no size asked)
    assert cache.get_range("t/chunks/1", 100, 10) == data[100:110]
    reads = inner.reads
    assert reads == 1  # the whole chunk came in one GET
    assert cache.get("t/chunks/1") == data
    assert cache.get_range("t/chunks/1", 4990, 100) == data[4990:]
    assert cache.get_range("t/chunks/1", 6000, 10) == b""
    assert cache.size("t/chunks/1") == 5000
    assert cache.exists("t/chunks/1")
    assert inner.reads == reads and inner.calls["size"] == 0 and inner.calls["exists"] == 0
    assert cache.hits == 3 and cache.misses == 1


def test_readinto_is_served_by_the_cache(inner: Counting, tmp_path: Path) -> None:
    data = os.urandom(5000)
    inner.put("t/chunks/1", data)
    cache = CachingStorage(inner, tmp_path, 1 << 20)
    buf = bytearray(6000)
    assert cache.readinto("t/chunks/1", 0, buf) == 5000 and bytes(buf[:5000]) == data
    reads = inner.reads
    assert cache.readinto("t/chunks/1", 100, memoryview(buf)[:10]) == 10 and bytes(buf[:10]) == data[100:110]
    assert inner.reads == reads  # the second read came from the cache


def test_uncacheable_keys_pass_through(inner: Counting, tmp_path: Path) -> None:
    cache = CachingStorage(inner, tmp_path, 1 << 20)
    cache.put("HEAD", b"1")
    assert cache.get("HEAD") == b"1"
    inner.put("HEAD", b"2")  # mutable: a change must be seen at once
    assert cache.get("HEAD") == b"2"
    assert cache.get_range("HEAD", 0, 1) == b"2"
    assert inner.reads == 3
    assert cache_files(tmp_path) == []


def test_bounded_and_lru(inner: Counting, tmp_path: Path) -> None:
    for i in range(6):
        inner.put(f"chunks/{i}", bytes([i]) * 3000)
    cache = CachingStorage(inner, tmp_path, 10_000)
    for i in range(3):
        cache.get(f"chunks/{i}")
    cache.get("chunks/0")  # 0 is now the most recently used
    cache.get("chunks/3")  # evicts 1, the least recently used
    assert cache.used_bytes <= 10_000
    assert sum(p.stat().st_size for p in cache_files(tmp_path)) <= 10_000
    before = inner.reads
    cache.get("chunks/0")
    cache.get("chunks/2")
    cache.get("chunks/3")
    assert inner.reads == before
    cache.get("chunks/1")
    assert inner.reads == before + 1
    for i in range(6):
        assert cache.get(f"chunks/{i}") == bytes([i]) * 3000
    assert cache.used_bytes <= 10_000


def test_object_larger_than_the_cache_is_not_cached(inner: Counting, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    inner.put("chunks/big", data)
    cache = CachingStorage(inner, tmp_path, 20_000, part_size=4096)
    assert cache.get_range("chunks/big", 30_000, 100) == data[30_000:30_100]
    assert cache.get("chunks/big") == data
    assert cache_files(tmp_path) == []


def test_survives_reopen(inner: Counting, tmp_path: Path) -> None:
    inner.put("chunks/a", b"a" * 100)
    inner.put("chunks/b", b"b" * 200)
    cache = CachingStorage(inner, tmp_path, 10_000)
    cache.get("chunks/a")
    cache.get("chunks/b")
    cache.close()
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "abcd.tmp~1234").write_bytes(b"crashed mid-fill")
    os.utime(tmp_path / "ab" / "abcd.tmp~1234", (0, 0))  # old: not another process's fill
    (tmp_path / "ab" / "abce.tmp~5678").write_bytes(b"a live process filling it")
    before = inner.reads
    again = CachingStorage(inner, tmp_path, 10_000)
    assert again.used_bytes == 300
    assert again.get("chunks/a") == b"a" * 100
    assert again.get_range("chunks/b", 10, 5) == b"b" * 5
    assert inner.reads == before
    assert not (tmp_path / "ab" / "abcd.tmp~1234").exists()
    assert (tmp_path / "ab" / "abce.tmp~5678").exists()
    smaller = CachingStorage(inner, tmp_path, 250)  # reopened with a smaller bound
    assert smaller.used_bytes <= 250


def test_put_and_delete_invalidate(inner: Counting, tmp_path: Path) -> None:
    cache = CachingStorage(inner, tmp_path, 10_000)
    cache.put("chunks/x", b"old")
    assert cache.get("chunks/x") == b"old"
    cache.put("chunks/x", b"new!")
    assert cache.get("chunks/x") == b"new!"
    cache.delete("chunks/x")
    with pytest.raises(ObjectNotFoundError):
        cache.get("chunks/x")
    assert not cache.exists("chunks/x")
    assert cache.used_bytes == 0


def test_evicted_file_under_a_reader_falls_back(inner: Counting, tmp_path: Path) -> None:
    inner.put("chunks/x", b"data")
    cache = CachingStorage(inner, tmp_path, 10_000)
    cache.get("chunks/x")
    for p in cache_files(tmp_path):
        p.unlink()  # someone cleaned the cache directory
    assert cache.get("chunks/x") == b"data"
    assert cache.get_range("chunks/x", 1, 2) == b"at"


def test_large_miss_uses_parallel_ranged_gets(inner: Counting, tmp_path: Path) -> None:
    data = os.urandom(10_500)
    inner.put("chunks/big", data)
    cache = CachingStorage(inner, tmp_path, 1 << 20, part_size=1000)
    assert cache.get_range("chunks/big", 5000, 100) == data[5000:5100]
    assert inner.calls["get_range"] == 11 and inner.calls["size"] == 1
    assert cache.get("chunks/big") == data
    assert inner.calls["get_range"] == 11


def test_a_closed_cache_still_reads_a_large_object(inner: Counting, tmp_path: Path) -> None:
    """A read-only dataset's ``with`` block closes it and its storage, and reads go on; the
    cache's part pool was shut down, so a big miss raised "cannot schedule new futures
    after shutdown"."""
    data = os.urandom(10_500)
    inner.put("chunks/big", data)
    cache = CachingStorage(inner, tmp_path, 1 << 20, part_size=1000)
    cache.close()
    assert cache.get("chunks/big") == data
    cache.close()
    cache.close()  # (again: nothing left to shut down)


def test_parallel_get_helper(inner: Counting) -> None:
    data = os.urandom(9999)
    inner.put("o", data)
    assert parallel_get(inner, "o", 9999, part_size=1000) == data
    assert parallel_get(inner, "o", 9999, start=9000, part_size=300) == data[9000:]
    assert parallel_get(inner, "o", 0) == b""


def test_thread_safe_under_eviction(inner: Counting, tmp_path: Path) -> None:
    blobs = {f"chunks/{i}": os.urandom(1000 + i) for i in range(20)}
    for k, v in blobs.items():
        inner.put(k, v)
    cache = CachingStorage(inner, tmp_path, 5000)
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(200):
                k = rng.choice(list(blobs))
                s = rng.randrange(0, 1100)
                assert cache.get_range(k, s, 50) == blobs[k][s : s + 50]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert cache.used_bytes <= 5000
    assert sum(p.stat().st_size for p in cache_files(tmp_path)) <= 5000


class Slow(Counting):
    """Ranged reads take a while, so concurrent misses overlap."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        time.sleep(0.05)
        return super().get_range(key, start, length)


def test_concurrent_misses_of_one_object_fetch_it_once(tmp_path: Path) -> None:
    slow = Slow(MemoryStorage())
    data = os.urandom(5000)
    slow.put("chunks/0", data)
    cache = CachingStorage(slow, tmp_path, 1 << 20)
    barrier = threading.Barrier(8)
    got: list[bytes] = []

    def reader(i: int) -> None:
        barrier.wait()
        got.append(cache.get_range("chunks/0", i * 100, 100))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(data[i * 100 : i * 100 + 100] for i in range(8))
    assert slow.reads == 1  # one whole-object fetch served all eight samples


def test_a_second_process_cache_is_adopted(inner: Counting, tmp_path: Path) -> None:
    inner.put("chunks/a", b"a" * 100)
    first = CachingStorage(inner, tmp_path, 10_000)
    second = CachingStorage(inner, tmp_path, 10_000)  # another mount of the same dataset
    assert first.get("chunks/a") == b"a" * 100
    before = inner.reads
    assert second.get_range("chunks/a", 10, 5) == b"aaaaa"
    assert inner.reads == before and second.used_bytes == 100


def test_a_cache_smaller_than_a_chunk_reads_only_what_is_asked(inner: Counting, tmp_path: Path) -> None:
    """Found by review: a 4 MB cache fetched a whole 8 MB chunk for every sample read
    (1.3 GB moved to read 13 MB), then threw it away."""
    data = os.urandom(100_000)
    inner.put("chunks/c", data)
    cache = CachingStorage(inner, tmp_path, 20_000, part_size=64_000)  # smaller than a part
    bytes_read = 0
    real = inner.get_range

    def counted(key: str, start: int, length: int) -> bytes:
        nonlocal bytes_read
        got = real(key, start, length)
        bytes_read += len(got)
        return got

    inner.get_range = counted  # type: ignore[method-assign]
    for i in range(50):
        assert cache.get_range("chunks/c", i * 1000, 1000) == data[i * 1000 : (i + 1) * 1000]
    assert bytes_read == 50 * 1000
    assert inner.calls["size"] == 1  # asked once: an object's size never changes
    assert cache_files(tmp_path) == []


def test_a_full_or_broken_cache_disk_only_costs_speed(inner: Counting, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    inner.put("chunks/a", data)
    cache = CachingStorage(inner, tmp_path / "c", 1 << 20)
    (tmp_path / "c").chmod(0o500)  # no new subdirectory can be made (as root: see below)
    real_makedirs = os.makedirs

    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", path)

    os.makedirs = full  # type: ignore[assignment]
    try:
        assert cache.get_range("chunks/a", 10, 20) == data[10:30]
        assert cache.get("chunks/a") == data
    finally:
        os.makedirs = real_makedirs  # type: ignore[assignment]
        (tmp_path / "c").chmod(0o700)
    assert cache_files(tmp_path / "c") == []


def test_an_unusable_cache_directory_is_one_clear_error(inner: Counting, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match=r"cannot use the cache directory .*file: a file is there, not a directory"):
        CachingStorage(inner, tmp_path / "file", 1 << 20)


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 1000):
        data[i] ^= 0x40
    path.write_bytes(bytes(data))


def test_invalidate_drops_a_damaged_file_and_the_next_read_fetches_the_object_again(
        inner: Counting, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by QA: a cached chunk damaged on the local disk was served for good (the cache
    does not verify; the reader does, and could not have it fetched again). A reader
    that finds a copy bad calls invalidate(): the file goes, the next read refetches it,
    and one WARNING names the damaged file."""
    data = os.urandom(5000)
    inner.put("t/chunks/1", data)
    cache = CachingStorage(inner, tmp_path / "c", 1 << 24)
    assert cache.get("t/chunks/1") == data
    [path] = cache_files(tmp_path / "c")
    _damage(path)
    cache.close()
    cache = CachingStorage(inner, tmp_path / "c", 1 << 24)  # a new process: the file is adopted
    assert cache.get_range("t/chunks/1", 0, 10) != data[:10]  # (the cache serves what it has)
    reads = inner.reads
    with caplog.at_level("WARNING", logger="lakefs.storage.cache"):
        assert cache.invalidate("t/chunks/1") is True
        assert not path.exists() and cache.used_bytes == 0
        assert cache.get_range("t/chunks/1", 0, 10) == data[:10]
    assert inner.reads == reads + 1  # fetched from the store once
    assert path.read_bytes() == data  # the file was replaced with the store's bytes
    [record] = [r for r in caplog.records if r.name == "lakefs.storage.cache"]
    assert record.levelname == "WARNING"
    assert str(path) in record.getMessage() and "t/chunks/1" in record.getMessage()
    assert "damaged" in record.getMessage()
    assert cache.get("t/chunks/1") == data and inner.reads == reads + 1  # local again


def test_invalidate_of_a_truncated_file(inner: Counting, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(5000)
    inner.put("t/chunks/1", data)
    CachingStorage(inner, tmp_path, 1 << 24).get("t/chunks/1")
    [path] = cache_files(tmp_path)
    os.truncate(path, 1234)  # cut short (a crash of a disk that lied about fsync)
    cache = CachingStorage(inner, tmp_path, 1 << 24)
    assert cache.get("t/chunks/1") == data[:1234]
    with caplog.at_level("WARNING", logger="lakefs.storage.cache"):
        assert cache.invalidate("t/chunks/1")
        assert cache.get("t/chunks/1") == data
    assert path.read_bytes() == data and cache.used_bytes == 5000
    assert len([r for r in caplog.records if r.name == "lakefs.storage.cache"]) == 1


def test_invalidate_when_the_store_copy_is_the_same_warns_of_nothing(
        inner: Counting, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The copy was bad in the store itself: the refetch gives the same bytes, so no cache
    file is blamed (the reader reports the stored data as damaged)."""
    inner.put("t/chunks/1", b"bad in the store")
    cache = CachingStorage(inner, tmp_path, 1 << 24)
    assert cache.get("t/chunks/1") == b"bad in the store"
    with caplog.at_level("WARNING", logger="lakefs.storage.cache"):
        assert cache.invalidate("t/chunks/1")
        assert cache.get("t/chunks/1") == b"bad in the store"
    assert not [r for r in caplog.records if r.name == "lakefs.storage.cache"]


def test_invalidate_says_false_where_a_fresh_read_would_be_the_same(inner: Counting, tmp_path: Path) -> None:
    inner.put("HEAD", b"1")
    inner.put("chunks/big", os.urandom(50_000))
    assert MemoryStorage().invalidate("chunks/x") is False  # no local copy to drop
    cache = CachingStorage(inner, tmp_path, 20_000, part_size=4096)
    assert cache.invalidate("HEAD") is False  # never cached
    cache.get("chunks/big")
    assert cache.invalidate("chunks/big") is False  # too big to cache: read from the store
