"""Write-behind of sealed chunks: reads see them at once, failures reach the commit."""

from __future__ import annotations

import os

import pytest

import lakefs
from lakefs.dataset import Dataset
from lakefs.errors import StorageFullError
from lakefs.storage import MemoryStorage


class FlakyChunks(MemoryStorage):
    """Memory storage whose chunk puts fail while ``failing`` is set."""

    failing = False

    def put(self, key, data):
        if self.failing and "/chunks/" in key:
            raise StorageFullError(f"no space for {key}")
        super().put(key, data)


def test_sealed_chunks_are_readable_before_and_after_their_put(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    blobs = [os.urandom(3000) for _ in range(20)]  # every append seals the previous chunk
    for b in blobs:
        t.append(b)
    assert [s.tobytes() for s in t] == blobs  # some served from chunks still in flight
    ds.flush()
    assert len(list(ds.storage.list("tensors/"))) >= 20
    ds.close()
    assert [s.tobytes() for s in lakefs.load(tmp_path / "ds", read_only=True).b] == blobs


def test_a_failed_background_put_fails_the_commit_once_and_is_retried():
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.flush()
    head = storage.get("HEAD")
    storage.failing = True
    blobs = [os.urandom(3000) for _ in range(5)]
    for b in blobs:
        t.append(b)
    with pytest.raises(StorageFullError):
        ds.flush()
    assert storage.get("HEAD") == head  # nothing was published
    assert [s.tobytes() for s in t] == blobs  # the data is still here, from memory
    storage.failing = False
    ds.flush()  # the retry puts the kept chunks, then commits
    assert storage.get("HEAD") != head
    ds.close()
    again = Dataset(storage, read_only=True)
    assert [s.tobytes() for s in again.b] == blobs
