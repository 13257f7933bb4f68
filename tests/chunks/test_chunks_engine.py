"""Chunks: target size, tiles, the three chunk kinds, checksums (never wrong bytes)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

import lakefs
from lakefs.chunks import chunk as chunkfmt
from lakefs.chunks.chunk import ChunkKind
from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format import keys

CHUNK = 4096


def _chunk_files(path: Path, tensor) -> list[Path]:
    folder = path / keys.chunk_prefix(tensor.meta.tid)
    return sorted(p for p in folder.iterdir() if p.is_file())


def _payload_len(blob: bytes) -> int:
    return chunkfmt.parse_header(blob, "x")[1]


def test_target_chunk_size_respected(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK)
    rng = np.random.default_rng(0)
    values = [rng.bytes(int(n)) for n in rng.integers(1, 1500, 300)]
    t.extend(values)
    ds.close()
    files = _chunk_files(tmp_path / "ds", t)
    sizes = [_payload_len(f.read_bytes()) for f in files]
    assert all(s <= CHUNK for s in sizes)
    assert sum(sizes) == sum(map(len, values))
    assert len(files) <= 2 * sum(map(len, values)) / CHUNK + 1  # chunks are well filled
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert [s.tobytes() for s in ds.b] == values


@pytest.mark.parametrize("kw", [{}, {"chunk_compression": "lz4"}, {"sample_compression": "lz4"}])
def test_tiled_sample_read_back_byte_exact(tmp_path, kw):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK, **kw)
    big = np.random.default_rng(1).bytes(5 * CHUNK + 123)  # > 2 * chunk_size: tiled
    t.append(b"small")
    s = t.append(big)
    t.append(b"after")
    assert s.tobytes() == big  # before the commit too
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.b[1].tobytes() == big
    assert [ds.b[0].tobytes(), ds.b[2].tobytes()] == [b"small", b"after"]
    e = ds.b._engine.index.entry(1)
    assert int(e["tiles"]) >= 3


def test_sample_between_target_and_max_stays_whole(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK)
    mid = os.urandom(CHUNK + 100)  # above the target, below the 2x maximum
    t.extend([b"a" * 100, mid])
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert int(ds.b._engine.index.entry(1)["tiles"]) == 1
    assert ds.b[1].tobytes() == mid


def test_chunk_compression_lz4_round_trip(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("a", htype="generic", dtype="int32", chunk_compression="lz4", chunk_size=CHUNK)
    arrays = [np.full((50, 4), i, np.int32) for i in range(100)]  # compressible
    t.extend(arrays)
    ds.close()
    files = _chunk_files(tmp_path / "ds", t)
    stored = sum(f.stat().st_size for f in files)
    assert stored < sum(a.nbytes for a in arrays) / 4  # lz4 really compressed the chunks
    kinds = {chunkfmt.parse_header(f.read_bytes(), "x")[0] for f in files}
    assert kinds == {ChunkKind.CHUNK_COMPRESSED}
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert all(np.array_equal(s.numpy(), a) for s, a in zip(ds.a, arrays))
    assert ds.a.chunk_compression == "lz4"


def test_sample_compression_lz4_round_trip(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("a", htype="generic", dtype="uint8", sample_compression="lz4")
    arr = np.zeros((100, 100), np.uint8)
    arr[10:20] = 7
    s = t.append(arr)
    assert s.size == 128 + arr.nbytes  # .npy view size: header + data
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert np.array_equal(ds.a[0].numpy(), arr)
    assert ds.a[0].tobytes() == arr.tobytes()
    assert int(ds.a._engine.index.entry(0)["length"]) < arr.nbytes / 10
    kinds = {chunkfmt.parse_header(f.read_bytes(), "x")[0] for f in _chunk_files(tmp_path / "ds", t)}
    assert kinds == {ChunkKind.SAMPLE_COMPRESSED}


def _one_sample_dataset(path: Path, **kw):
    ds = lakefs.empty(path)
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK, **kw)
    t.extend([b"first-sample" * 10, b"second-sample" * 10])
    ds.close()
    return t


@pytest.mark.parametrize("kw", [{}, {"chunk_compression": "lz4"}])
def test_flipped_byte_is_corruption_naming_the_row(tmp_path, kw):
    t = _one_sample_dataset(tmp_path / "ds", **kw)
    (f,) = _chunk_files(tmp_path / "ds", t)
    blob = bytearray(f.read_bytes())
    # Inside the second sample's bytes (uncompressed), or anywhere in the lz4 stream.
    blob[min(chunkfmt.HEADER.size + 125, len(blob) - 5)] ^= 0x01
    f.write_bytes(bytes(blob))
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    with pytest.raises(CorruptionError, match="row 1"):
        ds.b[1].tobytes()
    if not kw:  # uncompressed: the other sample is read by range and still verified whole
        assert ds.b[0].tobytes() == b"first-sample" * 10


@pytest.mark.parametrize("kw", [{}, {"chunk_compression": "lz4"}])
def test_truncated_chunk_is_an_error_never_short_bytes(tmp_path, kw):
    t = _one_sample_dataset(tmp_path / "ds", **kw)
    (f,) = _chunk_files(tmp_path / "ds", t)
    blob = f.read_bytes()
    f.write_bytes(blob[: len(blob) - 7])
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    with pytest.raises(CorruptionError, match="row 1"):
        ds.b[1].tobytes()
    f.unlink()  # (an open dataset may go on reading the chunk it has open)
    with pytest.raises(CorruptionError, match="missing"):
        lakefs.load(tmp_path / "ds", read_only=True).b[0].tobytes()


def test_chunk_header_checks():
    blob = chunkfmt.encode(ChunkKind.UNCOMPRESSED, b"payload")
    assert chunkfmt.decode(blob, "x") == b"payload"
    assert len(blob) == chunkfmt.HEADER.size + 7
    assert chunkfmt.parse_header(blob, "x") == (ChunkKind.UNCOMPRESSED, 7, 7, zlib.crc32(b"payload"))
    with pytest.raises(CorruptionError, match="magic"):
        chunkfmt.decode(b"XXXX" + blob[4:], "x")
    with pytest.raises(FormatVersionError):
        chunkfmt.decode(blob[:4] + (7).to_bytes(2, "little") + blob[6:], "x")
    with pytest.raises(CorruptionError, match="checksum"):
        chunkfmt.decode(blob[:-1] + b"X", "x")
    with pytest.raises(CorruptionError, match="truncated"):
        chunkfmt.decode(blob[:10], "x")


def _tiled(tmp_path, n_tiles: int = 6) -> tuple[Path, bytes]:
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK)
    big = np.random.default_rng(7).bytes(n_tiles * CHUNK - 77)
    t.append(b"before")
    t.append(big)
    ds.close()
    return tmp_path / "ds", big


def test_tiled_read_range_in_pieces_is_byte_exact_and_bounded(tmp_path):
    from lakefs.chunks.tiles import WINDOW

    path, big = _tiled(tmp_path, 12)
    ds = lakefs.load(path, read_only=True)
    s = ds.b[1]
    for step in (1000, CHUNK, CHUNK + 1, 3 * CHUNK - 5):  # within a tile and across tiles
        got = b"".join(bytes(s.read_file(off, step)) for off in range(0, len(big), step))
        assert got == big
    assert bytes(s.read_file(len(big) - 10, 100)) == big[-10:]
    assert bytes(s.read_file(len(big), 100)) == b""
    assert bytes(s.read_file(5 * CHUNK + 3, 10)) == big[5 * CHUNK + 3 : 5 * CHUNK + 13]  # out of order
    assert len(ds.b._engine._tiles._tiles) <= WINDOW  # a few tiles, never the whole file
    piece = s.read_file(100, 50)  # a view of a verified tile, not writable
    with pytest.raises(TypeError):
        piece[0] = 0
    ds.close()


def test_damaged_tile_is_an_error_even_when_read_ahead_and_not_remembered(tmp_path):
    path, big = _tiled(tmp_path)
    ds = lakefs.load(path, read_only=True)
    e = ds.b._engine.index.entry(1)
    tile2 = path / keys.chunk(ds.b.meta.tid, int(e["chunk"]) + 2)
    good = tile2.read_bytes()
    damaged = bytearray(good)
    damaged[chunkfmt.HEADER.size + 10] ^= 1
    tile2.write_bytes(bytes(damaged))
    s = ds.b[1]
    # Sequential reading loads tile 2 ahead while tile 1 is served: the error comes with
    # the first byte asked from tile 2, and no byte of it is ever returned.
    assert bytes(s.read_file(0, 2 * CHUNK)) == big[: 2 * CHUNK]
    with pytest.raises(CorruptionError, match="row 1"):
        s.read_file(2 * CHUNK - 5, 10)  # a piece that spans into the damaged tile
    with pytest.raises(CorruptionError, match="checksum"):
        s.read_file(2 * CHUNK + 100, 10)
    assert bytes(s.read_file(3 * CHUNK, CHUNK)) == big[3 * CHUNK : 4 * CHUNK]
    tile2.write_bytes(good)  # repaired: the failure was not cached
    assert bytes(s.read_file(2 * CHUNK, CHUNK)) == big[2 * CHUNK : 3 * CHUNK]
    ds.close()


def test_a_held_piece_keeps_its_bytes_while_buffers_are_reused(tmp_path):
    path, big = _tiled(tmp_path, 10)
    ds = lakefs.load(path, read_only=True)
    s = ds.b[1]
    held = s.read_file(10, 1000)  # a view of tile 0's buffer
    for off in range(0, len(big), 1000):  # every later tile goes through the window
        s.read_file(off, 1000)
    assert bytes(held) == big[10:1010]  # its buffer was not reused while the view lived
    spare = ds.b._engine._tiles._spare
    del held
    for off in range(0, len(big), 1000):
        assert bytes(s.read_file(off, 1000)) == big[off : off + 1000]
    assert len(spare) <= 2
    ds.close()


def test_exported_probe():
    from lakefs.chunks.tiles import _exported

    buf = bytearray(b"abcdef")
    assert not _exported(buf) and len(buf) == 6
    view = memoryview(buf)[2:4]
    assert _exported(buf) and len(buf) == 6
    del view
    assert not _exported(buf) and len(buf) == 6


def test_two_files_read_at_once_keep_their_own_tiles(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK)
    rng = np.random.default_rng(3)
    a, b = rng.bytes(8 * CHUNK + 5), rng.bytes(8 * CHUNK + 9)
    t.extend([a, b])
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    storage = ds.b._engine.storage
    loads = []
    readinto = storage.readinto
    storage.readinto = lambda key, start, buf: loads.append(key) or readinto(key, start, buf)
    ra, rb = ds.b[0].file_reader(), ds.b[1].file_reader()  # two open files
    got_a, got_b = [], []
    for off in range(0, len(b), 1000):  # interleaved, like two readers of one mount
        got_a.append(bytes(ra(off, 1000)))
        got_b.append(bytes(rb(off, 1000)))
    assert b"".join(got_a) == a and b"".join(got_b) == b
    assert sorted(loads) == sorted(set(loads)) and len(loads) == 18  # every tile read once
    ds.close()


def test_concurrent_readers_of_one_window_get_exact_bytes(tmp_path):
    import threading

    path, big = _tiled(tmp_path, 16)
    ds = lakefs.load(path, read_only=True)
    read = ds.b[1].file_reader()  # one open file, read by several threads (multithreaded FUSE)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(300):
            off = int(rng.integers(0, len(big)))
            if rng.random() < 0.5:  # mostly in order, sometimes anywhere
                off = (off // CHUNK) * CHUNK
            n = int(rng.integers(1, 2 * CHUNK))
            if bytes(read(off, n)) != big[off : off + n]:
                errors.append((off, n))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ds.close()


@pytest.mark.parametrize("kw", [{}, {"chunk_compression": "lz4"}])
def test_samples_written_from_mutable_buffers_keep_the_bytes_they_had(tmp_path, kw):
    """The open chunk keeps the samples' bytes objects instead of copying them into one
    buffer: a bytearray or a view the caller reuses must still be copied once."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=CHUNK, **kw)
    t.extend([b"", b"", b""])  # rows 0-2, rewritten below through the engine
    engine = t._engine
    buf = bytearray(b"a" * 100)
    engine.write(0, buf, shape=(100,), mtime_ns=0, mode=0o644)
    buf[:] = b"b" * 100
    engine.write(1, memoryview(buf), shape=(100,), mtime_ns=0, mode=0o644)
    buf[:] = b"c" * 100
    engine.write(2, b"d" * 100, shape=(100,), mtime_ns=0, mode=0o644)
    values = [b"a" * 100, b"b" * 100, b"d" * 100]
    assert [engine.read(r) for r in range(3)] == values  # from the open chunk
    ds.close()
    if not kw:  # the chunk object is the header and the samples, one after another
        blob = _chunk_files(tmp_path / "ds", t)[0].read_bytes()
        assert chunkfmt.decode(blob, "x") == b"".join(values)
    assert [s.tobytes() for s in lakefs.load(tmp_path / "ds", read_only=True).b] == values


def test_a_sealed_chunk_kept_as_pieces_is_the_same_object_as_one_buffer():
    chunk = chunkfmt.OpenChunk()
    big = os.urandom(chunkfmt.OpenChunk.SMALL)
    samples = [b"one", b"", b"three!", b"x" * 5000, big, b"tail", big + b"!"]
    offsets = [chunk.append(s) for s in samples]
    assert offsets[:4] == [0, 3, 3, 9]
    assert [chunk.sample(o, len(s)) for o, s in zip(offsets, samples)] == samples
    assert chunk.sample(offsets[4], len(big)) is big  # a photo is kept, not copied
    assert chunk.sample(1, 4) == b"neth"  # (not a sample start: read from the payload)
    assert len(chunk.pieces) == 4  # small samples share runs
    sealed = b"".join(chunk.seal(ChunkKind.SAMPLE_COMPRESSED).parts())
    assert sealed == chunkfmt.encode(ChunkKind.SAMPLE_COMPRESSED, b"".join(samples))
    with pytest.raises(ValueError):
        chunkfmt.OpenChunk().parts()  # not sealed


def test_a_million_tiny_samples_are_a_few_pieces():
    """(They were a piece each: a commit wrote a million parts, 12x slower.)"""
    chunk = chunkfmt.OpenChunk()
    for i in range(1_000_000):
        chunk.append(b"%04d" % (i % 10_000))
    assert len(chunk.pieces) <= 4 and chunk.size == 4_000_000
    assert chunk.sample(4 * 123_456, 4) == b"3456"
