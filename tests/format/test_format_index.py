"""The sample index: LSM-style segments, O(changed) commits, big tensors, corruption."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import lakefs
from lakefs.chunks.cache import ChunkCache
from lakefs.chunks.chunk import ChunkKind
from lakefs.chunks.engine import ChunkEngine, IdAllocator
from lakefs.dataset import Dataset
from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format import keys, segments
from lakefs.format.index import ENTRY, SampleIndex, SegmentRef, plan_merge
from lakefs.storage import MemoryStorage


class CountingStorage(MemoryStorage):
    """MemoryStorage that counts the bytes and objects each ``put`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.put_bytes = 0
        self.put_keys: list[str] = []

    def put(self, key, data, *, sync=True):
        self.put_bytes += len(data)
        self.put_keys.append(key)
        super().put(key, data, sync=sync)

    def reset(self) -> None:
        self.put_bytes = 0
        self.put_keys = []


def _engine(storage, chunk_size=1 << 20) -> ChunkEngine:
    return ChunkEngine(storage, "t1", ChunkKind.UNCOMPRESSED, IdAllocator(1), ChunkCache(1 << 20), chunk_size)


def test_entry_dtype_is_fixed():
    # The on-disk entry layout (docs/FORMAT.md): changing it is a format version bump.
    assert ENTRY.itemsize == 88
    assert ENTRY.names == ("row", "chunk", "offset", "length", "file_size", "crc", "tiles", "mtime_ns",
                           "mode", "ext", "flags", "ndim", "_pad", "shape")


def test_segments_stay_logarithmic_over_many_commits():
    storage = MemoryStorage()
    eng = _engine(storage)
    row = 0
    worst = 0
    for _ in range(200):
        for _ in range(3):
            eng.write(row, b"x" * 10, shape=(10,), mtime_ns=0, mode=0o644)
            row += 1
        assert eng.commit_index()
        worst = max(worst, len(eng.index.segments))
    assert worst <= 2 * math.log2(row)
    # Merged-away segments are queued for deletion, never left referenced.
    live = {keys.index_segment("t1", s.seg_id) for s in eng.index.segments}
    assert not live & set(eng.obsolete)


def test_segments_stay_logarithmic_when_updating_the_same_rows():
    eng = _engine(MemoryStorage())
    for i in range(100):
        eng.write(0, b"%d" % i, shape=(1,), mtime_ns=0, mode=0o644)
        eng.write(1000 + i, b"y", shape=(1,), mtime_ns=0, mode=0o644)
        eng.commit_index()
    assert len(eng.index.segments) <= 2 * math.log2(101)
    eng2 = _engine(eng.storage)
    eng2.load_index(eng.segment_refs())
    assert eng2.read(0) == b"99"
    assert len(eng2.index) == 1100


def test_plan_merge_binary_counter():
    def ref(i, c):
        return SegmentRef(i, c, np.arange(c))

    old = [ref(0, 64), ref(1, 16), ref(2, 4)]
    # A new segment of 4 absorbs the 4, then the 16 (<= 2*8), not the 64 (> 2*24).
    assert [s.seg_id for s in plan_merge([*old, ref(9, 4)])] == [1, 2, 9]
    # A tiny new segment next to a big one is not merged (no O(n) rewrite per commit).
    assert plan_merge([ref(0, 1000), ref(1, 1)]) == []


def test_commit_writes_o_changed_bytes():
    storage = CountingStorage()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("x", htype="generic", dtype="int64")
    t.extend(np.arange(20_000))
    ds.flush()
    full = storage.put_bytes
    sizes = []
    for i in range(20):
        storage.reset()
        t.append(i)
        ds.flush()
        sizes.append(storage.put_bytes)
    # A one-row commit writes a chunk, a few small segments, a manifest and HEAD: far less
    # than the 20k-row index (20k * 96 bytes), and it does not grow with the tensor.
    assert max(sizes) < 60_000 < 20_000 * ENTRY.itemsize
    assert full > 20_000 * ENTRY.itemsize
    # Amortized: the merges over 20 commits rewrite far less than 20 full indexes.
    assert sum(sizes) < 2 * 20_000 * ENTRY.itemsize


def test_load_200k_row_tensor(tmp_path):
    path = tmp_path / "big"
    ds = lakefs.empty(path)
    t = ds.create_tensor("labels", htype="class_label")
    n = 200_000
    for start in range(0, n, 50_000):  # several commits: several segments
        for i in range(start, start + 50_000):
            t.append(i % 10)
        ds.flush()
    ds.close()
    t0 = time.perf_counter()
    ds = lakefs.load(path, read_only=True)
    elapsed = time.perf_counter() - t0
    assert len(ds) == n and len(ds.labels) == n
    assert ds.labels[n - 1].numpy().tolist() == [(n - 1) % 10]
    assert ds.labels[123_457].numpy().tolist() == [7]
    assert ds.row_of(f"{n - 1:08d}") == n - 1
    assert elapsed < 30  # generous: the benchmark measures it, this only catches O(n^2)


def test_segment_checksum_and_version_checked():
    storage = MemoryStorage()
    eng = _engine(storage)
    eng.write(0, b"abc", shape=(3,), mtime_ns=0, mode=0o644)
    eng.commit_index()
    key = keys.index_segment("t1", eng.index.segments[0].seg_id)
    blob = bytearray(storage.get(key))
    blob[-1] ^= 0xFF
    storage.put(key, bytes(blob))
    with pytest.raises(CorruptionError, match="checksum"):
        _engine(storage).load_index(eng.segment_refs())
    storage.put(key, bytes(blob[:20]))
    with pytest.raises(CorruptionError, match="truncated"):
        _engine(storage).load_index(eng.segment_refs())
    good = segments.pack(segments.KIND_INDEX, 0, b"")
    bumped = good[:4] + (99).to_bytes(2, "little") + good[6:]
    with pytest.raises(FormatVersionError):
        segments.unpack(bumped, segments.KIND_INDEX, "x")
    with pytest.raises(CorruptionError, match="kind"):
        segments.unpack(good, segments.KIND_ROWS, "x")


def test_index_clear_and_last_filled_row():
    idx = SampleIndex()
    e = np.zeros((), dtype=ENTRY)
    e["chunk"] = 5
    for r in (0, 3, 7):
        idx.set(r, e)
    assert idx.last_filled_row() == 7 and len(idx) == 8
    idx.clear(7)
    assert idx.last_filled_row() == 3
    assert idx.present_rows().tolist() == [0, 3]
    assert idx.entry(5) is None and idx.entry(100) is None
    assert idx.take_dirty().tolist() == [0, 3, 7]
    assert not idx.dirty


def test_entry_is_a_copy_not_a_view():
    """A Sample keeps its entry: rewriting or clearing the row must not change it."""
    idx = SampleIndex()
    idx.set(0, (0, 3, 0, 10, 10, 123, 1, 5, 0o644, 0, 0, 0, 0, (0,) * 6))
    e = idx.entry(0)
    idx.set(0, (0, 9, 0, 20, 20, 456, 1, 6, 0o644, 0, 0, 0, 0, (0,) * 6))
    idx.clear(0)
    assert (int(e["chunk"]), int(e["length"]), int(e["crc"])) == (3, 10, 123)
