"""Write-behind of sealed chunks: reads see them at once, failures reach the commit."""

from __future__ import annotations

import os
import zlib

import pytest

import lakefs
from lakefs.dataset import Dataset
from lakefs.errors import StorageError, StorageFullError
from lakefs.storage import MemoryStorage


class FlakyChunks(MemoryStorage):
    """Memory storage whose chunk puts fail while ``failing`` is set."""

    failing = False

    def put(self, key, data, *, sync=True):
        if self.failing and "/chunks/" in key:
            raise StorageFullError(f"no space for {key}")
        super().put(key, data, sync=sync)


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
    blobs = [os.urandom(3000) for _ in range(2)]  # the second seals the first's chunk
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


def test_after_a_failed_background_put_no_sample_is_taken_until_it_is_stored():
    """Found by review: on a full disk cp into the mount went on succeeding (and the
    mount's memory grew by every file) while no chunk could be stored."""
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.flush()
    storage.failing = True
    accepted = []
    with pytest.raises(StorageFullError):
        for _ in range(20):
            blob = os.urandom(3000)  # each append seals the previous chunk
            t.append(blob)
            accepted.append(blob)
            ds._chunk_writer._executor.submit(lambda: None).result()  # its put has run
    assert 1 <= len(accepted) <= 3  # refused right after the first failed put
    assert len(t) == len(accepted) and [s.tobytes() for s in t] == accepted
    with pytest.raises(StorageFullError):
        t.append(b"still full")
    assert len(t) == len(accepted)
    storage.failing = False  # space freed: the kept chunk is put, appends go on
    t.append(b"after")
    ds.close()
    again = Dataset(storage, read_only=True)
    assert [s.tobytes() for s in again.b] == [*accepted, b"after"]


class OrderedLog(MemoryStorage):
    """Memory storage that records puts (with their sync flag) and syncs, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple] = []

    def put(self, key, data, *, sync=True):
        super().put(key, data, sync=sync)
        self.events.append(("put", key, sync))

    def sync(self):
        self.events.append(("sync",))


def test_chunks_are_put_without_sync_and_synced_before_the_commit_publishes():
    from lakefs.dataset import Dataset

    storage = OrderedLog()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    for _ in range(10):
        t.append(os.urandom(3000))
    storage.events.clear()
    ds.flush()
    chunk_puts = [i for i, e in enumerate(storage.events) if e[0] == "put" and "/chunks/" in e[1]]
    syncs = [i for i, e in enumerate(storage.events) if e[0] == "sync"]
    head = [i for i, e in enumerate(storage.events) if e[0] == "put" and e[1] == "HEAD"]
    assert chunk_puts and syncs and head
    assert all(not storage.events[i][2] for i in chunk_puts)  # no flush per chunk
    assert max(chunk_puts) < syncs[0] < head[0]  # data durable, then visible
    assert all(e[2] for e in storage.events if e[0] == "put" and "/chunks/" not in e[1])
    ds.close()


class PrefetchLog(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.prefetched: list[str] = []

    def prefetch(self, key):
        self.prefetched.append(key)


def test_reads_in_order_prefetch_the_next_chunk_and_random_reads_do_not():
    from lakefs.dataset import Dataset
    from lakefs.format import keys

    storage = PrefetchLog()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    blobs = [os.urandom(3000) for _ in range(6)]  # one sample per chunk
    t.extend(blobs)
    ds.flush()
    engine = t._engine
    chunks = [int(engine.index.entry(r)["chunk"]) for r in range(6)]
    assert chunks == list(range(chunks[0], chunks[0] + 6))

    def name(c: int) -> str:
        return keys.chunk(engine.tid, c)

    assert [t[r].tobytes() for r in (4, 1)] == [blobs[4], blobs[1]]  # random: each its own chunk only
    assert storage.prefetched == [name(chunks[4]), name(chunks[1])]
    storage.prefetched.clear()
    assert t[2].tobytes() == blobs[2]  # follows chunk 1: the next one is asked for too
    assert storage.prefetched == [name(chunks[2]), name(chunks[3])]
    storage.prefetched.clear()
    assert t[3].tobytes() == blobs[3]  # asked for already; chunk 4 was read before
    assert storage.prefetched == []
    assert t[5].tobytes() == blobs[5]  # after 4: asks for itself and the (missing) next
    assert storage.prefetched == [name(chunks[5]), name(chunks[5] + 1)]
    ds.close()


def test_a_write_that_fails_on_storage_leaves_no_empty_row():
    """Found by review: a file ingest could not store (the network went away) left an
    empty image in the committed dataset; a training loop read it without an error."""
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    labels = ds.create_tensor("l", htype="text")
    t.write_file("k0.bin", os.urandom(3000))
    storage.failing = True
    t.write_file("k1.bin", os.urandom(3000))  # seals k0's chunk: its put fails behind
    ds._chunk_writer._executor.submit(lambda: None).result()
    with pytest.raises(StorageFullError):
        t.write_file("k2.bin", b"x")
    with pytest.raises(StorageFullError):
        ds.append({"l": "a label", "b": b"x"}, key="k3")
    storage.failing = False
    t.write_file("k5.bin", b"z")  # (puts the kept chunk, then this)
    real_write = t._engine.write

    def full_once(*args, **kwargs):  # l's cell is stored, then b's fails
        t._engine.write = real_write
        raise StorageFullError("no space")

    t._engine.write = full_once
    with pytest.raises(StorageFullError):
        ds.append({"l": "a label", "b": b"x"}, key="k3")
    assert ds.keys() == ["k0", "k1", "k5"] and len(t) == 3 and len(labels) == 0
    ds.append({"l": "later", "b": b"y"}, key="k4")
    ds.close()
    again = Dataset(storage, read_only=True)
    assert again.keys() == ["k0", "k1", "k5", "k4"]
    assert again.l["k4"].numpy() == "later" and again.b["k4"].tobytes() == b"y"
    from lakefs.tools.fsck import fsck

    assert fsck(storage).ok


def test_tensor_append_extend_and_setitem_that_fail_on_storage_leave_no_row():
    """Found by review: Tensor.append, Tensor.extend and t["key"] = v made their rows
    before storing, so a full disk left empty rows that were then committed."""
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    other = ds.create_tensor("o", htype="text")
    other.extend(["x", "y", "z"])  # rows 0..2 exist; b's cells there are empty
    t.append(b"0" * 3000)
    storage.failing = True
    t.append(b"1" * 3000)  # seals the first chunk: its put fails behind
    ds._chunk_writer._executor.submit(lambda: None).result()
    for write in (lambda: t.append(b"2"), lambda: t.extend([b"3", b"4", b"5"]),
                  lambda: t.__setitem__("newkey", b"6"), lambda: t.extend([b"7"])):
        with pytest.raises(StorageFullError):
            write()
        assert len(ds) == 3 and len(t) == 2 and t.num_samples == 2
    storage.failing = False
    real_write, calls = t._engine.write, []

    def second_fails(*args, **kwargs):  # the first cell is stored, the second is not
        calls.append(1)
        if len(calls) == 2:
            raise StorageFullError("no space")
        return real_write(*args, **kwargs)

    t._engine.write = second_fails
    with pytest.raises(StorageFullError):
        t.extend([b"a", b"b", b"c"])
    t._engine.write = real_write
    assert len(ds) == 3 and len(t) == 2 and t.num_samples == 2
    t.extend([b"8", b"9"])  # fills row 2 and makes row 3
    ds.close()
    again = Dataset(storage, read_only=True)
    assert len(again) == 4 and [s.tobytes() for s in again.b] == [b"0" * 3000, b"1" * 3000, b"8", b"9"]
    from lakefs.tools.fsck import fsck

    assert fsck(storage).ok


def test_a_big_file_streamed_while_its_tiles_cannot_be_put_fails_at_its_next_tile():
    """Found by QA: a 300 MB file copied into a mount while the object store was down
    was taken in whole (the mount grew by ~3x the file), and cp succeeded minutes later;
    the failure check ran before each sample, never between the tiles of one."""
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.flush()
    storage.failing = True
    stream = t._engine.open_stream()
    written = 0
    with pytest.raises(StorageFullError):
        for _ in range(50):
            stream.write(os.urandom(4096))  # a tile each
            written += 1
            ds._chunk_writer._executor.submit(lambda: None).result()  # its put has run
    assert 1 <= written <= 3  # refused right after the first failed put
    assert len(ds._chunk_writer._pending) <= 3  # (memory stays bounded)


def test_a_stream_write_refused_for_a_failed_tile_takes_none_of_its_bytes():
    """Found by review: the write that found a tile put still failing had counted its
    bytes in the stream's size and crc already; the file's close then committed an
    entry for bytes never stored (the sample read as damaged, fsck flagged it)."""
    storage = FlakyChunks()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.flush()
    stream = t._engine.open_stream()
    a, b = os.urandom(4096), os.urandom(6000)
    storage.failing = True
    stream.write(a)  # tile 0, written behind: its put fails
    ds._chunk_writer._executor.submit(lambda: None).result()
    with pytest.raises(StorageFullError):
        stream.write(b)
    assert (stream.size, stream.crc, stream.tiles) == (len(a), zlib.crc32(a), 1)
    assert stream.read(0, 1 << 20) == a
    storage.failing = False  # space is back: the same write again is taken whole
    stream.write(b)
    t.commit_file_stream("big.bin", stream)
    ds.close()
    again = Dataset(storage, read_only=True)
    assert again.b["big"].file_bytes() == a + b
    from lakefs.tools.fsck import fsck

    assert fsck(storage).ok


def test_a_stream_write_that_fails_half_taken_breaks_the_stream(monkeypatch):
    """A write interrupted before any of its tiles went out is undone; one interrupted
    after some did cannot be taken back: the stream refuses more writes and its finish,
    so nothing wrong is ever committed."""
    storage = MemoryStorage()
    ds = Dataset(storage, create=True)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.flush()
    engine, put = t._engine, t._engine.put_sealed
    stream = engine.open_stream()
    head = os.urandom(1000)
    stream.write(head)
    calls = []

    def put_fails_at(n):
        def put_sealed(*args, **kw):
            calls.append(args[0])
            if len(calls) == n:
                raise KeyboardInterrupt
            put(*args, **kw)

        return put_sealed

    monkeypatch.setattr(engine, "put_sealed", put_fails_at(1))
    with pytest.raises(KeyboardInterrupt):
        stream.write(os.urandom(3 * 4096))  # its first tile's put is interrupted
    assert (stream.size, stream.tiles, stream.read(0, 1 << 20)) == (len(head), 0, head)
    calls.clear()
    monkeypatch.setattr(engine, "put_sealed", put_fails_at(2))
    with pytest.raises(KeyboardInterrupt):
        stream.write(os.urandom(3 * 4096))  # its second
    monkeypatch.setattr(engine, "put_sealed", put)
    with pytest.raises(StorageError, match="failed part way"):
        stream.write(b"more")
    with pytest.raises(StorageError, match="failed part way"):
        engine.write_stream(0, stream, shape=(stream.size,), mtime_ns=0, mode=0o644)
    assert len(engine.index) == 0  # nothing indexed
    stream.abort()
    ds.close()
    from lakefs.tools.fsck import fsck

    assert fsck(storage).ok
