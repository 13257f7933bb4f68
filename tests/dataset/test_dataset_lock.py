"""The single-writer lock: a second writer is refused clearly, readers never blocked,
and the lock dies with its holder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lakefs
from lakefs.errors import LockedError, ReadOnlyError

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
import lakefs
ds = lakefs.load({path!r})
ds.x.append(2)
ds.flush()
print("locked", flush=True)
time.sleep(60)
"""


def _start_holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO), path=str(path))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "ds"
    with lakefs.empty(p) as ds:
        ds.create_tensor("x").append(1)
    return p


def test_second_writer_process_is_refused_readers_are_not(path):
    proc = _start_holder(path)
    try:
        with pytest.raises(LockedError) as info:
            lakefs.load(path)
        msg = str(info.value)
        assert "locked by another writer" in msg and f"pid {proc.pid}" in msg
        assert info.value.errno != 0
        with pytest.raises(LockedError):
            lakefs.dataset(path)
        with pytest.raises(LockedError):
            lakefs.empty(path, overwrite=True)
        ro = lakefs.load(path, read_only=True)  # not blocked
        assert [s.numpy().item() for s in ro.x] == [1, 2]
        with pytest.raises(ReadOnlyError):
            ro.x.append(3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The kernel dropped the flock with the process: the next writer gets in at once.
    t0 = time.monotonic()
    with lakefs.load(path) as ds:
        ds.x.append(3)
    assert time.monotonic() - t0 < 5
    assert len(lakefs.load(path, read_only=True).x) == 3


def test_second_writer_in_the_same_process_is_refused(path):
    ds = lakefs.load(path)
    with pytest.raises(LockedError):
        lakefs.load(path)
    ds.close()
    lakefs.load(path).close()  # released on close


def test_a_second_writer_in_this_process_is_told_to_close_the_first(path):
    """A notebook cell run again: it said "locked by another writer (pid N on vm)", N
    being the notebook's own process."""
    import os

    from lakefs.dataset import Dataset
    from lakefs.storage.memory import MemoryStorage

    ds = lakefs.load(path)
    for again in (lambda: lakefs.load(path), lambda: lakefs.dataset(path),
                  lambda: lakefs.empty(path, overwrite=True)):
        with pytest.raises(LockedError, match=r"already open for writing in this process: another Dataset object "
                                              r"holds its writer lock; close\(\) that one.*read_only=True") as e:
            again()
        assert f"pid {os.getpid()}" not in str(e.value) and e.value.in_this_process
    lakefs.load(path, read_only=True).close()  # readers are never refused
    ds.close()
    lakefs.load(path).close()
    memory = MemoryStorage()
    first = Dataset(memory, create=True)
    with pytest.raises(LockedError, match="already open for writing in this process"):
        Dataset(memory)
    first.close()


def test_reader_keeps_its_snapshot_while_a_writer_commits(path):
    ro = lakefs.load(path, read_only=True)
    with lakefs.load(path) as ds:
        for i in range(10):
            ds.x.append(i)
            ds.flush()
    assert len(ro.x) == 1 and ro.x[0].numpy().item() == 1  # its snapshot is still readable
    assert len(lakefs.load(path, read_only=True).x) == 11


def test_refresh_moves_a_reader_to_the_writers_latest_commit(path):
    ro = lakefs.load(path, read_only=True)
    assert ro.refresh() is False  # nothing new
    with lakefs.load(path) as ds:
        assert ds.refresh() is False  # a writer is always at its own latest commit
        old_x = ro.x
        ds.x.append(7)
        ds.x[0] = 5
        ds.create_tensor("y", htype="text").append("hello")
        ds.write_file("README.md", b"# card")
        ds.flush()
        generation = ro.generation
        assert ro.refresh() is True
    assert ro.generation > generation
    assert [s.numpy().item() for s in ro.x] == [5, 7]
    assert ro.y[0].numpy() == "hello" and ro.read_file("README.md") == b"# card"
    assert old_x[0].numpy().item() == 1  # taken before: still the old snapshot, readable
    with lakefs.load(path) as ds:
        ds.delete_tensor("y")
    assert ro.refresh() is True and "y" not in ro.tensors
    assert ro.refresh() is False
    ro.close()
    with pytest.raises(ReadOnlyError, match="closed"):
        ro.refresh()


def test_refresh_reports_changed_files_per_tensor(path):
    """What a mount asks the kernel to forget: rewritten, deleted and moved files, not
    the unchanged or new ones."""
    with lakefs.load(path) as ds:
        t = ds.create_tensor("blobs", htype="bytes")
        for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
            t.write_file(name, name.encode())
    ro = lakefs.load(path, read_only=True)
    before = ro.blobs
    with lakefs.load(path) as ds:
        ds.blobs.write_file("a.bin", b"new")  # rewritten
        ds.blobs.pop("b")  # deleted
        ds.blobs.rename_file("c.bin", "e.bin")  # moved away
        ds.blobs.write_file("f.bin", b"f")  # new
    assert ro.refresh()
    assert sorted(ro.blobs.changed_files(before)) == ["a.bin", "b.bin", "c.bin"]
    assert ro.blobs.changed_files(ro.blobs) == []


def test_a_commit_deletes_its_garbage_without_holding_the_dataset(tmp_path):
    """Deleting what a commit made obsolete (every staged file rsync renamed) is one
    storage call per object: other threads (the mount's file operations) must not wait
    for it."""
    import threading

    from lakefs.dataset import Dataset
    from lakefs.storage.base import StorageWrapper
    from lakefs.storage.local import LocalStorage

    class SlowDeletes(StorageWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.deleting, self.go_on = threading.Event(), threading.Event()

        def delete(self, key):
            self.deleting.set()
            assert self.go_on.wait(10)
            self.inner.delete(key)

    storage = SlowDeletes(LocalStorage(tmp_path / "ds"))
    ds = Dataset(storage, create=True)
    ds.write_file("a.txt", b"1")
    ds.flush()
    ds.write_file("a.txt", b"2")  # the first staged object is garbage after the next commit
    committer = threading.Thread(target=ds.flush)
    committer.start()
    try:
        assert storage.deleting.wait(10)
        done = threading.Event()
        threading.Thread(target=lambda: (ds.write_file("b.txt", b"3"), done.set()), daemon=True).start()
        assert done.wait(5), "a write waited for the commit's deletes"
    finally:
        storage.go_on.set()
        committer.join(10)
    ds.close()
    back = lakefs.load(tmp_path / "ds", read_only=True)
    assert back.read_file("a.txt") == b"2" and back.read_file("b.txt") == b"3"


def test_write_file_stores_its_bytes_without_holding_the_dataset(tmp_path):
    """Found by review: stage_file said its upload runs without the dataset lock, but
    write_file held the lock around it: a big plain file written through the API held up
    every other thread (the mount's file operations) while it was copied."""
    import io
    import threading

    from lakefs.errors import TensorExistsError

    ds = lakefs.empty(tmp_path / "ds")

    def lock_is_free() -> bool:
        taken = []

        def take() -> None:
            if ds._lock.acquire(timeout=5):
                ds._lock.release()
                taken.append(True)

        other = threading.Thread(target=take)
        other.start()
        other.join()
        return bool(taken)

    class Upload(io.BytesIO):
        """A file whose reading checks that another thread can take the dataset lock."""

        def read(self, size=-1):
            assert lock_is_free(), "the dataset lock was held during the upload"
            return super().read(size)

    ds.write_file("big.bin", Upload(b"x" * 100), size=100)
    ds.create_tensor("t")
    with pytest.raises(TensorExistsError):  # (refused before anything is stored)
        ds.write_file("t", Upload(b"y"), size=1)
    ds.close()
    with lakefs.load(tmp_path / "ds", read_only=True) as back:
        assert back.read_file("big.bin") == b"x" * 100 and list(back.files) == ["big.bin"]


def test_refresh_follows_a_dataset_created_again_at_the_same_place(tmp_path):
    """Found by review: the new dataset's HEAD had the same bytes (seq 1), so the reader
    kept the old commit, whose objects were gone (checksum errors)."""
    path = tmp_path / "ds"
    with lakefs.empty(path) as w:
        w.create_tensor("t", htype="text").append("OLD-VALUE")
    ro = lakefs.load(path, read_only=True)
    assert ro.t[0].numpy() == "OLD-VALUE"
    with lakefs.empty(path, overwrite=True) as w:
        w.create_tensor("t", htype="text").append("NEW-VALUE")
    assert ro.refresh() is True
    assert ro.t[0].numpy() == "NEW-VALUE"


@pytest.mark.parametrize("change", ["delete_tensor", "compact"])
def test_a_reader_whose_chunks_the_writer_removed_is_told_to_refresh(tmp_path, change):
    """The message said only "chunk ... is missing", which reads as damage."""
    from lakefs.errors import CorruptionError

    with lakefs.empty(tmp_path / "ds") as ds:
        ds.create_tensor("b", htype="bytes", chunk_size=4096)
        ds.b.extend([bytes(1000)] * 8)
    ro = lakefs.load(tmp_path / "ds", read_only=True, cache_bytes=0)
    with lakefs.load(tmp_path / "ds") as ds:
        if change == "delete_tensor":
            ds.delete_tensor("b")
        else:
            for i in range(7):
                ds.b.pop(i)
            ds.flush()
            ds.compact()
    changed = r"the dataset changed since this reader loaded it .*: refresh or reopen it"
    with pytest.raises(CorruptionError, match=changed) as e:
        ro.b[1].tobytes()
    assert "refresh()" not in str(e.value)  # (the mount and export show it too: no API words)
    assert ro.refresh() is True
    if change == "delete_tensor":
        assert "b" not in ro.tensors
    else:
        assert ro.b[7].tobytes() == bytes(1000)


def test_a_mount_in_a_process_that_has_the_dataset_open_says_so(path, tmp_path):
    """The mount's wording of the same refusal ("by another writer (pid <this one>)")."""
    from lakefs.config import Config
    from lakefs.fs.mount import run_mount

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with lakefs.load(path) as ds:
        ds.x.append(2)
        with pytest.raises(LockedError, match=r"already open for writing in this process .*close\(\) it first, or "
                                              "mount with -o ro"):
            run_mount(str(path), str(mnt), config=Config(), options={})


@pytest.mark.parametrize("read_only", [False, True])
def test_a_chunk_missing_with_nobody_writing_is_damage(tmp_path, read_only):
    """Found by QA: a chunk deleted on disk read as "the dataset changed since this reader
    loaded it ...; refresh() or reopen it" (the writer: "is missing", no hint), with no
    writer anywhere. HEAD is where it was, so that chunk was lost to damage: say so."""
    import os
    import shlex

    from lakefs.errors import CorruptionError
    from lakefs.format import keys

    path = tmp_path / "my ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("b", htype="bytes", chunk_size=4096)
        ds.b.extend([bytes(3000)] * 4)
        key = keys.chunk(ds.b.meta.tid, int(ds.b._engine.index.entry(0)["chunk"]))
    (path / key).unlink()
    with lakefs.load(path, read_only=read_only, cache_bytes=0) as ds:
        with pytest.raises(CorruptionError) as e:
            ds.b[0].tobytes()
        assert str(e.value).endswith(f"chunk {key} is missing: the dataset is damaged; "
                                     f"run `lakefs fsck {shlex.quote(os.path.realpath(path))}`"), e.value
        assert ds.b[3].tobytes() == bytes(3000)
