"""A commit on a full disk (found by QA: an ingest onto a small tmpfs kept nothing and
left its chunks behind, so that the rerun it recommended failed sooner).

- the samples whose chunks were stored before the disk filled are committed, the others
  held back in memory for the next commit, which stores them once there is space;
- a writer that gives up (:meth:`Dataset.abandon`) deletes every object it put that no
  commit references, and nothing a commit references.
"""

from __future__ import annotations

import os

import pytest

from lakefs.dataset import Dataset, maintenance
from lakefs.errors import StorageFullError
from lakefs.storage import MemoryStorage
from lakefs.storage.faults import SmallStorage
from lakefs.tools.fsck import fsck

pytestmark = pytest.mark.timeout(60)

CHUNK = 64 << 10
SAMPLE = 20 << 10


def _samples(n: int, start: int = 0) -> list[bytes]:
    return [bytes([i % 251]) * 16 + os.urandom(SAMPLE - 16) for i in range(start, start + n)]


def _fill(room: int) -> tuple[MemoryStorage, SmallStorage, Dataset, list[bytes]]:
    """A dataset with 3 committed samples on a disk with ``room`` bytes left, then 30
    more written (about 600 KB) without a commit."""
    inner = MemoryStorage()
    disk = SmallStorage(inner, 1 << 30)
    ds = Dataset(disk, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK)
    first = _samples(3)
    t.extend(first)
    ds.flush()
    disk.capacity = disk.used() + room
    more = _samples(30, 3)
    written = list(first)
    for data in more:
        try:
            t.append(data)
        except StorageFullError:  # (a chunk could not be stored: no more samples taken)
            break
        written.append(data)
    return inner, disk, ds, written


def _committed(inner: MemoryStorage) -> list[bytes]:
    with Dataset(inner, read_only=True) as ro:
        return [s.tobytes() for s in ro.b.iter_samples()]


def _unreferenced(inner: MemoryStorage) -> set[str]:
    """Objects ``compact`` would delete: what no commit references."""
    before = set(inner.list())
    ds = Dataset(inner)
    try:
        maintenance.delete_unreferenced(ds)
        return before - set(inner.list())
    finally:
        ds.close()


def test_a_commit_on_a_full_disk_keeps_the_samples_already_stored():
    inner, disk, ds, written = _fill(200 << 10)
    with pytest.raises(StorageFullError):
        ds.flush()
    kept = _committed(inner)
    assert 3 < len(kept) < len(written)
    # Whole, in order: those of every chunk stored (the last one, smaller, may fit where
    # the one before did not).
    assert kept == [data for data in written if data in kept]
    assert fsck(inner).ok
    # The rest is held in memory: readable, and committed once there is space.
    assert [ds.b[i].tobytes() for i in range(len(written))] == written
    assert ds.has_changes
    disk.capacity = 100 << 20
    ds.flush()
    assert _committed(inner) == written
    ds.close()
    assert fsck(inner).ok
    assert not _unreferenced(inner)


def test_rows_of_held_back_samples_are_not_committed():
    """The last chunk, sealed by the commit, does not fit: its samples' new rows wait."""
    inner, disk, ds, written = _fill(1 << 30)
    ds._chunk_writer._executor.submit(lambda: None).result()  # (every sealed chunk is stored)
    disk.capacity = disk.used() + (16 << 10)
    with pytest.raises(StorageFullError):
        ds.flush()
    with Dataset(inner, read_only=True) as ro:
        assert 3 < len(ro) < len(written)
        assert len(ro) == len(ro.b)
        assert [s.tobytes() for s in ro.b.iter_samples()] == written[: len(ro)]
    disk.capacity = 100 << 20
    ds.close()
    assert _committed(inner) == written


def test_a_failed_commit_retried_without_space_commits_nothing_more():
    inner, disk, ds, written = _fill(200 << 10)
    with pytest.raises(StorageFullError):
        ds.flush()
    seq = len([k for k in inner.list() if k.startswith("manifests/")])
    head = inner.get("HEAD")
    with pytest.raises(StorageFullError):
        ds.flush()  # nothing new was written: no empty commit
    assert inner.get("HEAD") == head
    assert len([k for k in inner.list() if k.startswith("manifests/")]) == seq
    disk.capacity = 1 << 30
    ds.close()


def test_a_writer_that_gives_up_deletes_what_it_put_and_no_commit_references():
    inner, _, ds, written = _fill(200 << 10)
    with pytest.raises(StorageFullError):
        ds.flush()
    kept = _committed(inner)
    ds.abandon()
    assert not _unreferenced(inner)
    assert _committed(inner) == kept
    assert fsck(inner).ok
    Dataset(inner).close()  # the lock is free


def test_a_writer_that_gives_up_before_anything_was_stored_leaves_its_last_commit():
    inner, _, ds, written = _fill(8 << 10)
    with pytest.raises(StorageFullError):
        ds.flush()
    assert _committed(inner) == written[:3]
    ds.abandon()
    assert not _unreferenced(inner)
    assert _committed(inner) == written[:3]
    assert fsck(inner).ok


def test_a_writer_that_gives_up_after_a_failed_manifest_put_deletes_its_segments():
    """The chunks are stored, the manifest is not: nothing the failed commit put stays."""
    inner, disk, ds, written = _fill(1 << 30)
    ds._chunk_writer._executor.submit(lambda: None).result()
    real = disk.put_new

    def full(key, data):
        raise StorageFullError(f"storage full: write {key!r}")

    disk.put_new = full  # (the manifest is put create-only)
    with pytest.raises(StorageFullError):
        ds.flush()
    disk.put_new = real
    ds.abandon()
    assert not _unreferenced(inner)
    assert _committed(inner) == written[:3]
