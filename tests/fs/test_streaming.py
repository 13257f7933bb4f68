"""Big files written through the mount go into tiles as they arrive (lakefs.chunks.stream).

DatasetFS with a small chunk size and spill threshold, so that "big" is a few hundred
kB; one real mount checks `dd` of a file larger than the default threshold.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import mounted

import lakefs
from lakefs.config import Config
from lakefs.errors import LakeFSError
from lakefs.fs.tree import DatasetFS
from lakefs.storage import LocalStorage

CHUNK = 64 << 10
SPILL = 256 << 10


@pytest.fixture
def env(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(chunk_size=CHUNK, spill_size=SPILL))
    fs.mkdir("/blobs", 0o755)
    yield ds, fs
    ds.close()


def chunk_objects(ds) -> set[str]:
    return {k for k in ds.storage.list("") if "/chunks/" in k}


def write_in_pieces(fs: DatasetFS, path: str, data: bytes, piece: int = 100_000) -> int:
    fh = fs.create(path, 0o644)
    for pos in range(0, len(data), piece):
        fs.write(fh, data[pos : pos + piece], pos)
    return fh


def test_a_big_file_streams_into_tiles_and_reads_back(env):
    ds, fs = env
    data = os.urandom(SPILL * 3 + 12_345)
    ids_before = ds._ids.next_id
    fh = write_in_pieces(fs, "/blobs/big.bin", data)
    of = fs._open["blobs/big.bin"]
    assert of.stream is not None and of._mem is None and of._file is None
    ds._chunk_writer.drain()
    assert len(chunk_objects(ds)) >= len(data) // CHUNK - 2  # tiles written before close
    assert fs.read(fh, 5000, 200_000) == data[200_000:205_000]  # readable while written
    assert fs.read(fh, 1 << 20, len(data) - 7) == data[-7:]
    fs.flush(fh)
    fs.release(fh)
    sample = ds.blobs["big"]
    assert sample.is_large and sample.size == len(data) and sample.shape == (len(data),)
    assert sample.file_bytes() == data
    assert ds._ids.next_id - ids_before < 1000  # the unused reserved ids went back
    ds.flush()
    again = lakefs.load(ds.storage.root, read_only=True)
    assert again.blobs["big"].read_file(70_000, 100) == data[70_000:70_100]
    assert again.blobs["big"].tobytes() == data


def test_same_layout_as_a_whole_sample(env):
    ds, fs = env
    data = os.urandom(SPILL + 5 * CHUNK + 99)
    fs.release(write_in_pieces(fs, "/blobs/streamed.bin", data, piece=CHUNK))
    ds.blobs.append(data)  # the API path: the whole sample tiled at once
    a, b = (ds.blobs._engine.index.entry(r) for r in (0, 1))
    for field in ("length", "file_size", "crc", "tiles", "offset"):
        assert a[field] == b[field], field


def test_a_write_that_is_not_an_append_leaves_the_stream(env):
    ds, fs = env
    data = bytearray(os.urandom(SPILL * 2))
    fh = write_in_pieces(fs, "/blobs/patched.bin", bytes(data))
    assert fs._open["blobs/patched.bin"].stream is not None
    before = chunk_objects(ds)
    fs.write(fh, b"HEADER", 0)  # e.g. a muxer fixing up its header at the end
    data[:6] = b"HEADER"
    of = fs._open["blobs/patched.bin"]
    assert of.stream is None and of._file is not None
    fs.flush(fh)
    fs.release(fh)
    assert ds.blobs["patched"].file_bytes() == bytes(data)
    ds.flush()  # the abandoned tiles go once the commit naming the new ones is visible
    ds.flush()
    assert not (before & chunk_objects(ds)), "abandoned tiles were not deleted"


def test_unlinked_while_streaming_stores_nothing(env):
    ds, fs = env
    fh = write_in_pieces(fs, "/blobs/gone.bin", os.urandom(SPILL * 2))
    tiles = chunk_objects(ds)
    fs.unlink("/blobs/gone.bin")
    fs.flush(fh)
    fs.release(fh)
    ds.flush()
    ds.flush()
    assert len(ds.blobs) == 0
    assert not (tiles & chunk_objects(ds))


def test_text_tensors_and_staged_files_do_not_stream(env):
    ds, fs = env
    fs.mkdir("/notes", 0o755)
    text = ("line\n" * (SPILL // 2)).encode()
    for path in ("/notes/long.txt", "/blobs/.rsync-temp"):
        fh = write_in_pieces(fs, path, text)
        of = fs._open[path.strip("/")]
        assert of.stream is None and of._file is not None  # spilled to a temp file
        fs.flush(fh)
        fs.release(fh)
    assert ds.notes["long"].numpy() == text.decode()
    fs.commit()  # (a closed staging file is held until its rename or the next commit)
    assert ds.read_file("blobs/.rsync-temp") == text


def test_pending_directory_becomes_a_bytes_tensor_and_fsync_then_append(env):
    ds, fs = env
    fs.mkdir("/shards", 0o755)
    first, more = os.urandom(SPILL * 2), os.urandom(CHUNK + 1)
    fh = write_in_pieces(fs, "/shards/part-0.bin", first)
    assert ds.shards.htype == "bytes"
    fs.fsync(fh)  # commits the stream: the file is a sample now
    assert ds.shards["part-0"].file_bytes() == first
    fs.write(fh, more, len(first))  # appended after the commit: a new version
    fs.flush(fh)
    fs.release(fh)
    assert ds.shards["part-0"].file_bytes() == first + more


def test_holes_and_truncates_never_sit_in_memory(env):
    ds, fs = env
    fh = fs.create("/blobs/sparse.bin", 0o644)
    fs.write(fh, b"end", 10 * SPILL)
    of = fs._open["blobs/sparse.bin"]
    assert of._mem is None and of._file is not None
    fs.truncate("/blobs/sparse.bin", 20 * SPILL, fh)
    assert fs.getattr("/blobs/sparse.bin").size == 20 * SPILL
    fs.flush(fh)
    fs.release(fh)
    data = ds.blobs["sparse"].file_bytes()
    assert len(data) == 20 * SPILL and data[10 * SPILL : 10 * SPILL + 3] == b"end" and data.count(0) == len(data) - 3


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


@pytest.mark.timeout(180)
def test_dd_and_rsync_of_big_files_with_bounded_memory(tmp_path, dataset_path, mountpoint):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(96 << 20) + b"odd tail")
    digest = hashlib.md5(src.read_bytes()).hexdigest()
    config = tmp_path / "lakefs.yaml"
    config.write_text("spill_size: 8MB\n")  # memory per file being written: ~8 MB
    argv = [sys.executable, "-m", "lakefs", "mount", str(dataset_path), str(mountpoint), "-f",
            "--config", str(config)]
    with mounted(argv, mountpoint) as m:
        (mountpoint / "big").mkdir()
        subprocess.run(["dd", f"if={src}", f"of={mountpoint / 'big/dd.bin'}", "bs=1M", "conv=fsync",
                        "status=none"], check=True)
        assert "stored as tiles while it is written" in m.log()
        subprocess.run(["rsync", str(src), str(mountpoint / "big/rsync.bin")], check=True)  # via .rsync.bin.XXXXXX
        assert peak_rss_mb(m.process.pid) < 96, "a big file was held whole in memory"
        for name in ("dd.bin", "rsync.bin"):
            out = subprocess.run(["md5sum", str(mountpoint / "big" / name)], capture_output=True, text=True,
                                 check=True).stdout.split()[0]
            assert out == digest, name
            assert os.stat(mountpoint / "big" / name).st_size == src.stat().st_size
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds.big["dd"].tobytes() == ds.big["rsync"].tobytes() == src.read_bytes()
    assert ds.files == {}


class BoundedPuts(LocalStorage):
    """Local storage remembering the largest object handed to ``put`` in one piece."""

    largest = 0
    staged_bytes = 0  # bytes put as staged files (files/...), piecewise puts included

    def put(self, key, data, *, sync=True):
        self.largest = max(self.largest, len(data))
        if key.startswith("files/"):
            self.staged_bytes += len(data)
        super().put(key, data, sync=sync)

    def put_from(self, key, f, size, *, sync=True):
        if key.startswith("files/"):
            self.staged_bytes += size
        super().put_from(key, f, size, sync=sync)


@pytest.fixture
def bounded(tmp_path):
    from lakefs.dataset import Dataset

    storage = BoundedPuts(tmp_path / "ds")
    ds = Dataset(storage, create=True)
    fs = DatasetFS(ds, Config(chunk_size=CHUNK, spill_size=SPILL))
    fs.mkdir("/blobs", 0o755)
    yield ds, fs, storage
    ds.close()


def test_rsync_of_a_big_file_never_holds_it_whole(bounded):
    """rsync writes `.name.XXXXXX` (a staged file), then renames it to the sample name."""
    ds, fs, storage = bounded
    data = os.urandom(SPILL * 4 + 321)
    fh = fs.create("/blobs/.big.bin.Ab12Cd", 0o644)
    for pos in reversed(range(0, len(data), 100_000)):  # out of order: no streaming
        fs.write(fh, data[pos : pos + 100_000], pos)
    fs.flush(fh)
    fs.release(fh)
    assert fs._open["blobs/.big.bin.Ab12Cd"].spilled  # held in its temp file until renamed
    fh = fs.open("/blobs/.big.bin.Ab12Cd", os.O_RDONLY)
    assert fs.read(fh, 70_000, SPILL * 2) == data[SPILL * 2 : SPILL * 2 + 70_000]
    fs.release(fh)
    fs.rename("/blobs/.big.bin.Ab12Cd", "/blobs/big.bin")
    sample = ds.blobs["big"]
    assert sample.is_large and sample.file_bytes() == data
    assert storage.largest <= 2 * CHUNK + 64  # every object written in pieces of a tile at most
    # Stored once, as the sample (found by review: on S3 it was uploaded as a staged file,
    # read back at the rename and uploaded again: 3x the bytes).
    assert storage.staged_bytes == 0
    assert ds.files == {}


def test_a_held_big_staging_file_is_stored_in_pieces_by_a_commit(bounded):
    """A commit between a big temp file's close and its rename stores it as a staged
    file, copied from its temp file in pieces, never read whole into memory."""
    ds, fs, storage = bounded
    data = os.urandom(SPILL * 4 + 321)
    fh = fs.create("/blobs/.big.bin.Xy", 0o644)
    for pos in reversed(range(0, len(data), 100_000)):
        fs.write(fh, data[pos : pos + 100_000], pos)
    fs.release(fh)
    fs.commit()
    assert storage.staged_bytes == len(data) and storage.largest <= max(2 * CHUNK + 64, 8 << 20)
    assert ds.read_file_range("blobs/.big.bin.Xy", 5, 10) == data[5:15]
    assert "blobs/.big.bin.Xy" not in fs._open
    fs.rename("/blobs/.big.bin.Xy", "/blobs/big.bin")
    assert ds.blobs["big"].file_bytes() == data and ds.files == {}


def test_big_files_opened_again_appended_and_truncated_in_pieces(bounded):
    ds, fs, storage = bounded
    data = os.urandom(SPILL * 3)
    fs.release(write_in_pieces(fs, "/blobs/log.bin", data))
    fh = fs.open("/blobs/log.bin", os.O_WRONLY | os.O_APPEND)  # `>>`: starts from the committed bytes
    assert fs._open["blobs/log.bin"].spilled
    fs.write(fh, b"more", len(data))
    fs.flush(fh)
    fs.release(fh)
    assert ds.blobs["log"].file_bytes() == data + b"more"
    fs.truncate("/blobs/log.bin", SPILL * 2 + 1)  # no handle open
    assert ds.blobs["log"].file_bytes() == data[: SPILL * 2 + 1]
    fs.rename("/blobs/log.bin", "/log.bin")  # a sample to a plain file at the root
    assert ds.read_file("log.bin") == data[: SPILL * 2 + 1]
    assert storage.largest <= 2 * CHUNK + 64


def test_a_big_text_file_is_still_checked_whole(bounded):
    ds, fs, _ = bounded
    fs.mkdir("/notes", 0o755)
    fh = write_in_pieces(fs, "/notes/bad.txt", b"ok\n" * SPILL + b"\xff\xfe")
    with pytest.raises(LakeFSError, match="UTF-8"):
        fs.flush(fh)
    fs.release(fh)
    assert len(ds.notes) == 0


def test_a_big_plain_file_gets_its_crc32_while_it_is_copied_in_pieces(bounded, monkeypatch):
    """Format v3: a plain file's record carries the crc32 of its bytes, taken as they are
    stored: a big one spilled to a temp file, or given to the API as a file object, is
    copied in pieces and never read a second time for it."""
    import io
    import zlib

    import lakefs.storage.base as base

    monkeypatch.setattr(base, "PIECE", 64 << 10)  # many pieces
    ds, fs, storage = bounded
    data = os.urandom(SPILL * 4 + 321)
    fh = fs.create("/blobs/.big.bin.Xy", 0o644)
    for pos in reversed(range(0, len(data), 100_000)):  # spilled to its temp file
        fs.write(fh, data[pos : pos + 100_000], pos)
    fs.release(fh)
    fs.commit()  # stored from the temp file in pieces
    assert storage.staged_bytes == len(data)
    assert ds.files["blobs/.big.bin.Xy"].crc32 == zlib.crc32(data)
    other = os.urandom(SPILL + 7)
    reads = []

    class Counted(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    ds.write_file("api.bin", Counted(other), size=len(other))
    assert ds.files["api.bin"].crc32 == zlib.crc32(other) and len(reads) > 1 and sum(reads) == len(other)
    ds.flush()
    again = lakefs.load(ds.storage.root, read_only=True)
    assert again.files["api.bin"].crc32 == zlib.crc32(other) and again.read_file("api.bin") == other


def _flip_staged(ds, path: str, at: int) -> None:
    obj = Path(ds.storage.root) / "files" / f"{ds.files[path].file_id:016x}"
    blob = bytearray(obj.read_bytes())
    blob[at] ^= 0x10
    obj.write_bytes(bytes(blob))


def test_a_damaged_big_plain_file_read_in_pieces_fails_at_its_end(bounded):
    """The mount reads a plain file past ``spill_size`` in pieces: its crc32 is checked
    once they cover it (in any order the kernel's readahead answers them), and the read
    that completes it fails."""
    ds, fs, _ = bounded
    data = os.urandom(SPILL * 3 + 99)
    ds.write_file("big.bin", data)
    ds.flush()
    _flip_staged(ds, "big.bin", 1000)
    piece = 128 << 10
    offsets = list(range(0, len(data), piece))
    fh = fs.open("/big.bin", os.O_RDONLY)
    for pos in offsets[:-1]:
        fs.read(fh, piece, pos)
    with pytest.raises(LakeFSError, match="checksum mismatch"):
        fs.read(fh, piece, offsets[-1])
    fs.release(fh)
    fh = fs.open("/big.bin", os.O_RDONLY)  # pieces answered out of order
    order = offsets[1:3] + offsets[:1] + offsets[3:-1]
    for pos in order:
        fs.read(fh, piece, pos)
    with pytest.raises(LakeFSError, match="checksum mismatch"):
        fs.read(fh, piece, offsets[-1])
    fs.release(fh)


def test_a_damaged_plain_file_never_becomes_a_sample(bounded):
    """rsync's temp file renamed to its sample name is read back in pieces and stored as
    the sample: a damaged one must fail, not be stored with a fresh checksum."""
    ds, fs, _ = bounded
    data = os.urandom(SPILL * 2 + 5)
    ds.write_file("blobs/.big.bin.Q1", data)
    ds.flush()
    _flip_staged(ds, "blobs/.big.bin.Q1", len(data) - 3)
    with pytest.raises(LakeFSError, match="checksum mismatch"):
        fs.rename("/blobs/.big.bin.Q1", "/blobs/big.bin")
    assert "blobs" not in ds.tensors and "blobs/.big.bin.Q1" in ds.files, (ds.tensors, ds.pending_dirs)


class FullDisk(LocalStorage):
    """Local storage whose chunk puts fail (ENOSPC) while ``full`` is set."""

    full = False

    def put(self, key, data, *, sync=True):
        self._refuse(key)
        super().put(key, data, sync=sync)

    def put_from(self, key, f, size, *, sync=True):
        self._refuse(key)
        super().put_from(key, f, size, sync=sync)

    def _refuse(self, key):
        if self.full and "/chunks/" in key:
            from lakefs.errors import StorageFullError

            raise StorageFullError(f"storage full: {key}")


@pytest.mark.parametrize("retry", [True, False], ids=["write-retried", "writer-gives-up"])
def test_a_big_file_write_refused_on_a_full_disk_stores_only_what_was_taken(tmp_path, retry):
    """Found by review: the write refused with ENOSPC (a tile put that still failed)
    had been counted in the stream's size and crc, so the close committed a sample
    that read as damaged. Now the refused write is not taken: retried, it is stored;
    given up, the file holds what was written before it."""
    from lakefs.dataset import Dataset
    from lakefs.tools.fsck import fsck

    storage = FullDisk(tmp_path / "ds")
    ds = Dataset(storage, create=True)
    fs = DatasetFS(ds, Config(chunk_size=CHUNK, spill_size=SPILL))
    fs.mkdir("/blobs", 0o755)
    data, piece = os.urandom(SPILL * 4), 100_000
    fh = write_in_pieces(fs, "/blobs/big.bin", data[: SPILL * 2], piece)
    assert fs._open["blobs/big.bin"].stream is not None
    storage.full = True
    pos = SPILL * 2
    with pytest.raises(LakeFSError) as e:
        for pos in range(SPILL * 2, len(data), piece):  # (pos: the write refused)
            fs.write(fh, data[pos : pos + piece], pos)
            ds._chunk_writer._executor.submit(lambda: None).result()  # its tile's put has run
    assert e.value.errno == errno.ENOSPC
    storage.full = False
    if retry:
        for at in range(pos, len(data), piece):
            fs.write(fh, data[at : at + piece], at)
        expected = data
    else:
        expected = data[:pos]
    assert fs.getattr("/blobs/big.bin").size == len(expected)
    fs.flush(fh)
    fs.release(fh)
    assert ds.blobs["big"].file_bytes() == expected
    ds.close()
    assert lakefs.load(tmp_path / "ds", read_only=True).blobs["big"].file_bytes() == expected
    assert fsck(storage).ok


def test_a_stream_whose_tile_could_not_be_stored_leaves_no_empty_row(tmp_path):
    """Found by review: the row of a streamed file was made before its last tile was
    put, so a close refused for a full disk left (and committed) an empty row."""
    from lakefs.dataset import Dataset

    storage = FullDisk(tmp_path / "ds")
    ds = Dataset(storage, create=True)
    fs = DatasetFS(ds, Config(chunk_size=CHUNK, spill_size=SPILL))
    fs.mkdir("/blobs", 0o755)
    data = os.urandom(SPILL * 2 + CHUNK + 12_345)
    fh = write_in_pieces(fs, "/blobs/big.bin", data[: SPILL * 2], 100_000)
    assert fs._open["blobs/big.bin"].stream is not None
    rows = len(ds)
    storage.full = True
    fs.write(fh, data[SPILL * 2 :], SPILL * 2)  # taken: its whole tile's put fails behind it
    ds._chunk_writer._executor.submit(lambda: None).result()
    with pytest.raises(LakeFSError) as e:
        fs.flush(fh)
    assert e.value.errno == errno.ENOSPC
    fs.release(fh)
    storage.full = False
    assert len(ds) == rows and "big" not in [s.key for s in ds.blobs]
    ds.close()
    assert len(lakefs.load(tmp_path / "ds", read_only=True)) == rows
