"""Regression tests for bugs the reliability suites found (each names the suite and fix)."""

from __future__ import annotations

import json

import pytest

from lakefs.dataset import Dataset
from lakefs.errors import CorruptionError
from lakefs.fs.tree import DatasetFS
from lakefs.storage import MemoryStorage

pytestmark = pytest.mark.timeout(60)


def test_zero_length_write_past_the_end_changes_nothing():
    """Regression: an empty write at an offset past EOF used to zero-fill up to it.

    pwrite(2) of 0 bytes has no effect on a regular file; found by test_faults.py's workload,
    whose split writes sent an empty second half at offset 2000 of a 300-byte file.
    """
    fs = DatasetFS(Dataset(MemoryStorage(), create=True))
    fh = fs.create("/f", 0o644)
    assert fs.write(fh, b"abc", 0) == 3
    assert fs.write(fh, b"", 100) == 0
    assert fs.getattr("/f").size == 3
    fs.release(fh)
    fs.commit()  # a closed staging file is stored at the next commit
    assert fs.ds.read_file("f") == b"abc"


def _committed(storage: MemoryStorage) -> tuple[bytes, str]:
    from lakefs.format.manifest import parse_head

    with Dataset(storage, create=True) as ds:
        ds.create_tensor("blobs", htype="bytes")
        ds["blobs"]["k"] = b"data"
    _, mkey = parse_head(storage.get("HEAD"), "HEAD")
    return storage.get(mkey), mkey


def test_manifest_bitflip_in_a_name_is_detected():
    """Regression (test_corruption.py): the manifest had no checksum, so one flipped bit
    renamed tensor ``blobs`` to ``blocs`` and the dataset opened without a word."""
    storage = MemoryStorage()
    blob, mkey = _committed(storage)
    storage.put(mkey, blob.replace(b'"blobs"', b'"blocs"'))
    with pytest.raises(CorruptionError, match="checksum mismatch"):
        Dataset(storage, read_only=True)


def test_manifest_with_a_damaged_row_reference_is_a_corruption_error():
    """Regression: a damaged ``rows`` entry raised a bare KeyError('start') at open."""
    storage = MemoryStorage()
    blob, mkey = _committed(storage)
    d = json.loads(blob)
    d.pop("crc32")
    d["rows"][0]["stbrt"] = d["rows"][0].pop("start")
    storage.put(mkey, json.dumps(d, separators=(",", ":"), sort_keys=True).encode())  # as if pre-crc
    with pytest.raises(CorruptionError, match="malformed"):
        Dataset(storage, read_only=True)


def test_manifest_without_crc_still_opens():
    """Manifests written before the crc32 field existed read as before."""
    storage = MemoryStorage()
    blob, mkey = _committed(storage)
    d = json.loads(blob)
    d.pop("crc32")
    storage.put(mkey, json.dumps(d, separators=(",", ":"), sort_keys=True).encode())
    with Dataset(storage, read_only=True) as ds:
        assert ds["blobs"]["k"].tobytes() == b"data"


def test_damaged_head_is_a_corruption_error():
    """Regression: a HEAD whose manifest key was damaged gave InvalidKeyError, naming no HEAD."""
    storage = MemoryStorage()
    _committed(storage)
    head = storage.get("HEAD")
    storage.put("HEAD", head.replace(b"manifests/", b"man)fests/"))
    with pytest.raises(CorruptionError, match="HEAD"):
        Dataset(storage, read_only=True)
    storage.put("HEAD", head.replace(b'"seq": 2', b'"seq": 3'))
    with pytest.raises(CorruptionError, match="HEAD"):
        Dataset(storage, read_only=True)


def test_empty_sample_survives_a_commit(tmp_path):
    """Regression (test_differential.py): an empty sample pointed at the open chunk, which
    seal() skipped because its payload was empty, so after a reopen the empty file read
    as "chunk missing" (EIO) and fsck flagged it."""
    import lakefs
    from lakefs.storage import LocalStorage
    from lakefs.tools.fsck import fsck

    with lakefs.empty(tmp_path / "ds") as ds:
        ds.create_tensor("blobs", htype="bytes")
        ds["blobs"]["empty"] = b""
    with lakefs.load(tmp_path / "ds", read_only=True) as ds:
        assert ds["blobs"]["empty"].tobytes() == b""
    assert fsck(LocalStorage(tmp_path / "ds", read_only=True)).ok


def test_renaming_a_pending_directory_keeps_its_files():
    """Regression (test_differential.py): ``mv d e`` of a mkdir'd directory holding plain
    files re-created it empty and orphaned the files in the manifest."""
    fs = DatasetFS(Dataset(MemoryStorage(), create=True))
    fs.mkdir("/d", 0o755)
    fh = fs.create("/d/a", 0o644)
    fs.write(fh, b"kept", 0)
    fs.release(fh)
    fs.rename("/d", "/e")
    assert [n for n, _ in fs.readdir("/e")] == ["a"]
    assert fs.ds.read_file("e/a") == b"kept"
    assert "d/a" not in fs.ds.files


def test_exdev_directory_rename_leaves_the_target_alone():
    """Regression (test_differential.py): renaming a tensor that holds plain files onto an
    empty directory removed that directory, then answered EXDEV. (Such a tensor is renamed
    in place now, and so is a group; a hidden directory to an ordinary name, or a group to
    a hidden one, still answers EXDEV.)"""
    from lakefs.errors import CrossDeviceError

    fs = DatasetFS(Dataset(MemoryStorage(), create=True))
    fs.mkdir("/d", 0o755)
    fs.mkdir("/d/t", 0o755)  # d is a group
    fs.mkdir("/.h", 0o755)
    fs.release(fs.create("/.h/a", 0o644))
    fs.mkdir("/e", 0o755)
    fs.mkdir("/.e", 0o755)
    for old, new in (("/.h", "/e"), ("/d", "/.e")):
        with pytest.raises(CrossDeviceError):
            fs.rename(old, new)
        assert fs.getattr(new).is_dir()


def _samples(storage: MemoryStorage) -> dict[str, bytes]:
    with Dataset(storage, read_only=True) as ds:
        return {f"{n}/{s.filename}": s.tobytes() for n, t in ds.tensors.items() for s in t.iter_samples()}


def test_a_close_of_an_empty_file_before_its_writes_stores_nothing():
    """Regression (a mount killed during ``dd``, test_crash.py): ``dd of=f`` and ``cmd > f``
    close the descriptor they opened, empty, before writing through its copy; that close
    stored the empty file, and a commit then made it durable in place of the file (or of
    the version being rewritten). It is only checked there now, and stored at its last
    close."""
    import os

    from lakefs.errors import InvalidSampleError

    storage = MemoryStorage()
    fs = DatasetFS(Dataset(storage, create=True))
    fs.mkdir("/blobs", 0o755)
    fh = fs.create("/blobs/old.bin", 0o644)
    fs.write(fh, b"old", 0)
    fs.release(fh)
    new = fs.create("/blobs/new.bin", 0o644)
    fs.flush(new)  # the first descriptor's close: a pending directory still becomes a tensor
    again = fs.open("/blobs/old.bin", os.O_WRONLY | os.O_TRUNC)
    fs.flush(again)
    fs.commit()
    assert _samples(storage) == {"blobs/old.bin": b"old"}
    assert fs.ds.tensors["blobs"].htype == "bytes"
    fs.write(new, b"new", 0)
    fs.write(again, b"rewritten", 0)
    fs.flush(new)  # the last close: stored, errors reach it
    fs.flush(again)
    fs.commit()
    assert _samples(storage) == {"blobs/old.bin": b"rewritten", "blobs/new.bin": b"new"}
    for h in (new, again):
        fs.release(h)
    empty = fs.create("/blobs/empty.bin", 0o644)  # touch: an empty file is stored at release
    fs.flush(empty)
    fs.release(empty)
    fs.commit()
    assert _samples(storage)["blobs/empty.bin"] == b""
    fs.mkdir("/images", 0o755)
    for _ in range(2):  # an empty file is no JPEG: refused at close, in a pending dir or a tensor
        fh = fs.create("/images/a.jpg", 0o644)
        with pytest.raises(InvalidSampleError):
            fs.flush(fh)
        fs.release(fh)
        assert [n for n, _ in fs.readdir("/images")] == []
        if "images" not in fs.ds.tensors:
            fs.ds.create_tensor("images", htype="image", sample_compression="jpeg")


def test_a_close_by_a_child_that_inherited_the_file_stores_nothing():
    """Regression (a mount killed while its writer had started a child, test_crash.py):
    the child's close of the copy it inherited stored the half-written file."""
    import subprocess
    import sys
    import threading

    storage = MemoryStorage()
    fs = DatasetFS(Dataset(storage, create=True))
    fs.mkdir("/blobs", 0o755)
    fh = fs.create("/blobs/ckpt.bin", 0o644, pid=threading.get_native_id())
    fs.write(fh, b"half", 0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fs.flush(fh, pid=child.pid)  # the child's exec (or exit) closes its copy
    finally:
        child.kill()
        child.wait()
    fs.commit()
    assert _samples(storage) == {}
    fs.write(fh, b" and the rest", 4)
    # Another thread of the writer's process closes: that is the writer's close.
    thread = threading.Thread(target=lambda: fs.flush(fh, pid=threading.get_native_id()))
    thread.start()
    thread.join()
    assert fs.getattr("/blobs/ckpt.bin").size == 17
    fs.commit()
    assert _samples(storage) == {"blobs/ckpt.bin": b"half and the rest"}
    fs.release(fh)
