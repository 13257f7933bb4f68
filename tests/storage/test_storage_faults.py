"""FaultyStorage injects the failure it promises, at the operation it promises."""

from __future__ import annotations

import pytest

from lakefs.errors import StorageError, StorageFullError
from lakefs.storage import MemoryStorage
from lakefs.storage.faults import ALL_OPS, FaultyStorage

pytestmark = pytest.mark.timeout(10)


def test_fails_only_the_nth_write() -> None:
    inner = MemoryStorage()
    store = FaultyStorage(inner, fail_at=2, mode="raise")
    store.put("a", b"1")
    assert store.get("a") == b"1"  # reads are not counted by default
    with pytest.raises(StorageError, match="injected fault #2"):
        store.put("b", b"2")
    assert not inner.exists("b")
    store.delete("a")
    assert not inner.exists("a")
    assert store.failed == [("put", "b")] and store.tripped


@pytest.mark.parametrize(("mode", "exc", "errno_"), [
    ("raise", StorageError, 5), ("eio", StorageError, 5), ("enospc", StorageFullError, 28)])
def test_modes(mode: str, exc: type[Exception], errno_: int) -> None:
    inner = MemoryStorage()
    inner.put("k", b"old")
    store = FaultyStorage(inner, fail_at=1, mode=mode)  # type: ignore[arg-type]
    with pytest.raises(exc) as info:
        store.put("k", b"new")
    assert info.value.errno == errno_
    assert inner.get("k") == b"old"


def test_torn_write_leaves_a_truncated_object() -> None:
    inner = MemoryStorage()
    store = FaultyStorage(inner, fail_at=1, mode="torn")
    with pytest.raises(StorageError):
        store.put("k", b"0123456789")
    assert inner.get("k") == b"01234"


def test_sticky_fails_everything_after() -> None:
    inner = MemoryStorage()
    store = FaultyStorage(inner, fail_at=2, mode="eio", sticky=True)
    store.put("a", b"1")
    for key in ("b", "c"):
        with pytest.raises(StorageError):
            store.put(key, b"x")
    with pytest.raises(StorageError):
        store.delete("a")
    assert sorted(inner.list()) == ["a"]


def test_counting_reads() -> None:
    inner = MemoryStorage()
    inner.put("k", b"v")
    store = FaultyStorage(inner, fail_at=3, ops=ALL_OPS)
    store.get("k")
    store.exists("k")
    with pytest.raises(StorageError):
        store.get_range("k", 0, 1)
    assert store.count == 3


def test_readinto_counts_as_a_ranged_get() -> None:
    inner = MemoryStorage()
    inner.put("k", b"value")
    store = FaultyStorage(inner, fail_at=2, ops={"get_range"})
    buf = bytearray(3)
    assert store.readinto("k", 1, buf) == 3 and buf == b"alu"
    with pytest.raises(StorageError):
        store.readinto("k", 0, buf)
    assert store.failed == [("get_range", "k")]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        FaultyStorage(MemoryStorage(), 1, mode="boom")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FaultyStorage(MemoryStorage(), 1, ops={"frobnicate"})
