"""A read-only mount follows the dataset's writer (``refresh_interval``).

A training job reads through ``-o ro`` while another process ingests. Every
``refresh_interval`` seconds the mount moves to the writer's latest commit: new files
appear, and the kernel is told to forget the attributes and pages it cached of files that
were rewritten or deleted, so ``cat`` and ``stat`` never serve the old bytes for up to
``attr_timeout`` (60 s by default).
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mounting import mounted, unmount
from PIL import Image

import lakefs
from lakefs.config import Config
from lakefs.dataset import Dataset
from lakefs.format import keys
from lakefs.fs.binding import FuseOSError, KernelCache
from lakefs.fs.mount import Refresher
from lakefs.fs.operations import LakeOperations
from lakefs.fs.tree import DatasetFS
from lakefs.storage.faults import ALL_OPS, FaultyStorage
from lakefs.storage.local import LocalStorage

pytestmark = pytest.mark.timeout(120)


def ro_mount(ds: Path, mnt: Path, options: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), "-o", options]


def cat(path: Path) -> bytes:
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("opens", ["", ",snapshot_opens"])
def test_read_only_mount_shows_the_writers_new_commits(photos, dataset_path, mountpoint, opens):
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        blobs = ds.create_tensor("blobs", htype="bytes")
        for i, photo in enumerate(photos[:3]):
            ds.append({"images": lakefs.read(photo)}, key=f"p{i}")
        blobs.write_file("same.bin", b"A" * 300_000, mtime_ns=1_000_000_000)
        ds.write_file("README.md", b"# v1\n")
    with mounted(ro_mount(dataset_path, mountpoint, "ro,refresh_interval=0.2" + opens), mountpoint) as m:
        images, blobs_dir = mountpoint / "images", mountpoint / "blobs"
        # Fill the kernel's caches: names, attributes, pages.
        assert sorted(os.listdir(images)) == ["p0.jpg", "p1.jpg", "p2.jpg"]
        assert cat(images / "p1.jpg") == photos[1].read_bytes()
        assert (images / "p2.jpg").stat().st_size == photos[2].stat().st_size
        assert cat(blobs_dir / "same.bin") == b"A" * 300_000
        assert cat(mountpoint / "README.md") == b"# v1\n"

        with lakefs.load(dataset_path) as ds:  # another writer, while mounted
            ds.append({"images": lakefs.read(photos[3])}, key="p3")
            ds.images["p1"] = lakefs.read(photos[4])  # rewritten: other size, other bytes
            ds.images.pop("p2")
            # Same size and mtime: only the kernel being told can make it read the new bytes.
            ds.blobs.write_file("same.bin", b"B" * 300_000, mtime_ns=1_000_000_000)
            ds.write_file("README.md", b"# v2, longer\n")
            ds.create_tensor("labels", htype="text").append("cat")

        assert wait_for(lambda: "p3.jpg" in os.listdir(images)), m.log()
        assert sorted(os.listdir(images)) == ["p0.jpg", "p1.jpg", "p3.jpg"]
        assert cat(images / "p3.jpg") == photos[3].read_bytes()
        assert (images / "p1.jpg").stat().st_size == photos[4].stat().st_size
        assert cat(images / "p1.jpg") == photos[4].read_bytes()
        assert not (images / "p2.jpg").exists()
        assert cat(blobs_dir / "same.bin") == b"B" * 300_000
        assert cat(mountpoint / "README.md") == b"# v2, longer\n"
        (label,) = os.listdir(mountpoint / "labels")  # a new tensor
        assert cat(mountpoint / "labels" / label) == b"cat"
        with pytest.raises(OSError) as err:
            (images / "p9.jpg").write_bytes(b"x")
        assert err.value.errno == 30  # EROFS: still read-only
        assert "now serving the dataset's latest commit" in m.log()


def can_open(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("opens", ["", ",snapshot_opens"])
def test_names_the_writer_deleted_are_not_found_at_open(photos, dataset_path, mountpoint, opens):
    """The kernel keeps a name it looked up for entry_timeout (60 s): a file or tensor the
    writer deleted must be forgotten by name too, not only its attributes and pages (it
    opened, then failed its read with ENOENT; with opens, each open logged a warning)."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        ds.create_tensor("train/images", htype="image", sample_compression="jpeg")
        for i, photo in enumerate(photos[:2]):
            ds.append({"images": lakefs.read(photo)}, key=f"p{i}")
        ds["train/images"]["p0"] = lakefs.read(photos[2])
    with mounted(ro_mount(dataset_path, mountpoint, "ro,refresh_interval=0.2" + opens), mountpoint) as m:
        gone, kept = mountpoint / "images" / "p0.jpg", mountpoint / "images" / "p1.jpg"
        nested = mountpoint / "train" / "images" / "p0.jpg"
        assert cat(gone) == photos[0].read_bytes() and cat(nested) == photos[2].read_bytes()
        with lakefs.load(dataset_path) as ds:  # the kernel now holds all three names
            ds.images.pop("p0")
            ds.delete_group("train", recursive=True)
        assert wait_for(lambda: not can_open(gone) and not can_open(nested), timeout=10), m.log()
        assert os.listdir(mountpoint / "images") == ["p1.jpg"]
        assert not (mountpoint / "train").exists()
        assert cat(kept) == photos[1].read_bytes()
        assert "WARNING" not in m.log(), m.log()


def test_a_name_that_changed_from_directory_to_file_or_back_is_forgotten(photos, dataset_path, mountpoint):
    """Found by review: a group the writer deleted and wrote a plain file in its place (or
    the reverse) kept its kernel name, whose inode took the new file type for damage: the
    first stat after the refresh failed with EIO."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("g/t", htype="bytes").write_file("a.bin", b"a")
        ds.write_file("h", b"plain h")
        ds.create_tensor("keep", htype="bytes").write_file("k.bin", b"k")
    with mounted(ro_mount(dataset_path, mountpoint, "ro,refresh_interval=0.2"), mountpoint) as m:
        assert (mountpoint / "g").is_dir() and (mountpoint / "h").is_file()  # names the kernel holds
        assert cat(mountpoint / "g" / "t" / "a.bin") == b"a"
        with lakefs.load(dataset_path) as ds:
            ds.delete_group("g", recursive=True)
            ds.write_file("g", b"a file now")
            ds.delete_file("h")
            ds.create_tensor("h/t", htype="bytes").write_file("b.bin", b"b")
            ds.keep.write_file("k2.bin", b"k2")  # seen: the refresh is done
        assert wait_for(lambda: "k2.bin" in os.listdir(mountpoint / "keep"), timeout=10), m.log()
        assert stat.S_ISREG(os.stat(mountpoint / "g").st_mode), m.log()  # (was EIO)
        assert stat.S_ISDIR(os.stat(mountpoint / "h").st_mode)
        assert cat(mountpoint / "g") == b"a file now" and cat(mountpoint / "h" / "t" / "b.bin") == b"b"


def test_an_unmount_during_a_long_refresh_stops_it(dataset_path, mountpoint):
    """Found by review: libfuse closes its device before the mount's destroy; a refresh
    still telling the kernel about 300000 deleted names at unmount printed "fuse: writing
    device: Bad file descriptor" for each of those left (thousands of lines), and the
    unmount waited for the last one."""
    n = 300_000
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("blobs", htype="bytes").extend([b"x"] * n)
    with mounted(ro_mount(dataset_path, mountpoint, "ro,refresh_interval=0.1"), mountpoint) as m:
        assert (mountpoint / "blobs").is_dir()
        with lakefs.load(dataset_path) as ds:
            blobs = ds.blobs
            for row in range(n):
                blobs.pop(row)
        assert wait_for(lambda: "now serving" in m.log(), timeout=30), m.log()
        assert unmount(mountpoint)  # while the names are being forgotten
        m.process.wait(timeout=60)
        assert m.log().count("writing device") <= 1, m.log()[-2000:]


def test_a_name_gone_with_a_refresh_is_no_warning(tmp_path, caplog):
    """Between a refresh and the kernel forgetting names, an open or a listing of what the
    writer deleted answers ENOENT: routine on a read-only mount (a shuffled epoch over a
    tensor being re-ingested logged hundreds of warnings), not a log line each."""
    with lakefs.empty(tmp_path / "ds") as ds:
        ds.create_tensor("blobs", htype="bytes").write_file("a.bin", b"a")
    fs = DatasetFS(Dataset(LocalStorage(str(tmp_path / "ds")), read_only=True), Config(), read_only=True)
    ops = LakeOperations(fs)
    calls = [lambda: ops.open("/blobs/gone.bin", SimpleNamespace(flags=os.O_RDONLY, fh=0)),
             lambda: ops.readdir_stat("/gone", 1, 0)]
    with caplog.at_level(logging.WARNING):
        for call in calls:
            with pytest.raises(FuseOSError) as e:
                call()
            assert e.value.errno == errno.ENOENT
    assert not caplog.records, caplog.text


@pytest.mark.parametrize("no_open", [False, True])
def test_a_stored_object_gone_is_still_a_warning_on_a_read_only_mount(tmp_path, caplog, no_open):
    """Found by review: the quiet ENOENT of read-only mounts also hid a plain file whose
    stored contents are missing (damage, for lakefs fsck): a read failed with no line."""
    with lakefs.empty(tmp_path / "ds") as ds:
        ds.write_file("notes.txt", b"hello")
    storage = LocalStorage(str(tmp_path / "ds"))
    ro = Dataset(storage, read_only=True)
    storage.delete(keys.staged_file(ro.staged("notes.txt").file_id))
    ops = LakeOperations(DatasetFS(ro, Config(), read_only=True), no_open=no_open)
    fi = SimpleNamespace(flags=os.O_RDONLY, fh=0)
    with caplog.at_level(logging.WARNING), pytest.raises(FuseOSError) as e:
        if not no_open:
            ops.open("/notes.txt", fi)
        ops.read("/notes.txt", 100, 0, fi.fh)
    assert e.value.errno == errno.ENOENT
    assert "notes.txt" in caplog.text and "no such object" in caplog.text, caplog.text
    ro.close()


def test_refresh_interval_zero_keeps_the_mounted_commit(photos, dataset_path, mountpoint):
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        ds.append({"images": lakefs.read(photos[0])}, key="p0")
    with mounted(ro_mount(dataset_path, mountpoint, "ro,refresh_interval=0"), mountpoint):
        with lakefs.load(dataset_path) as ds:
            ds.append({"images": lakefs.read(photos[1])}, key="p1")
        time.sleep(1.0)
        assert os.listdir(mountpoint / "images") == ["p0.jpg"]
        assert cat(mountpoint / "images" / "p0.jpg") == photos[0].read_bytes()


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_bad_refresh_interval_is_a_one_line_error(dataset_path, mountpoint, value):
    lakefs.empty(dataset_path).close()
    r = subprocess.run(ro_mount(dataset_path, mountpoint, f"ro,refresh_interval={value}") + ["-f"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "refresh_interval" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.ismount(mountpoint)


def test_a_failed_look_is_logged_and_the_mount_keeps_its_commit(tmp_path, caplog):
    with lakefs.empty(tmp_path / "ds") as ds:
        ds.create_tensor("t", htype="text").append("a")
    storage = FaultyStorage(LocalStorage(str(tmp_path / "ds")), fail_at=10**9, ops=ALL_OPS, sticky=True)
    fs = DatasetFS(Dataset(storage, read_only=True), Config(), read_only=True)
    with lakefs.load(tmp_path / "ds") as ds:
        ds.t.append("b")
    storage.fail_at = storage.count + 1  # the store is unreachable from now on
    Refresher(fs, KernelCache(), 1.0).refresh_once()
    assert storage.tripped and "could not look for a newer commit" in caplog.text
    assert [name for name, _ in fs.readdir("/t")] == ["00000000.txt"]  # the commit it had
    storage.fail_at = 10**9  # reachable again: the next look moves on
    Refresher(fs, KernelCache(), 1.0).refresh_once()
    assert [name for name, _ in fs.readdir("/t")] == ["00000000.txt", "00000001.txt"]


class _BuggyFS:
    """A mount's fs whose every look finds a newer commit, and whose ``find_attr`` may
    have a bug (raises what no refresh expects)."""

    dirs_before_refresh = frozenset()

    def __init__(self, buggy_find_attr: bool) -> None:
        import threading

        self.buggy_find_attr = buggy_find_attr
        self.looks = 0
        self.looked_again = threading.Event()

    def refresh(self) -> list[str]:
        self.looks += 1
        if self.looks > 1:
            self.looked_again.set()
        return ["t/a.bin"]

    def find_attr(self, path: str):
        if self.buggy_find_attr:
            raise RuntimeError("a bug while forgetting names")
        return None


class _BuggyKernel:
    attached = True

    def __init__(self, buggy_invalidate: bool) -> None:
        self.buggy_invalidate = buggy_invalidate
        self.invalidated: list[str] = []

    def invalidate(self, path: str) -> None:
        if self.buggy_invalidate:
            raise RuntimeError("a bug while invalidating")
        self.invalidated.append(path)

    def forget_name(self, parent_ino: int, name: str) -> None:
        pass


@pytest.mark.parametrize("where", ["names", "pages"])
def test_an_unexpected_failure_of_a_refresh_is_logged_and_the_next_one_runs(tmp_path, caplog, where):
    """Found by review: an exception other than a LakeFSError or an OSError after the
    look (while forgetting names or pages) ended the refresh thread, with no log line:
    the mount then served that commit for good. Each failing tick is one logged
    traceback now, and the ticks go on; a failure while forgetting names still lets the
    kernel forget the pages."""
    fs, kernel = _BuggyFS(where == "names"), _BuggyKernel(where == "pages")
    refresher = Refresher(fs, kernel, 0.01, str(tmp_path))
    with caplog.at_level(logging.INFO, logger="lakefs.mount"):
        refresher.start()
        try:
            assert fs.looked_again.wait(10), "the refresh thread ended at its first failure"
        finally:
            refresher.stop()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == fs.looks and all(r.exc_info for r in failures), caplog.text
    assert kernel.invalidated == (["/t/a.bin"] * fs.looks if where == "names" else [])


def test_a_refresh_never_lands_inside_an_operation(tmp_path):
    """Found by review: the new commit was swapped in between two reads of one
    operation (listing saw the tensor, then not: KeyError, EIO on the mount)."""
    import threading

    path = tmp_path / "ds"
    with lakefs.empty(path) as w:
        w.create_tensor("t", htype="text").append("a")
    fs = DatasetFS(Dataset(LocalStorage(str(path), read_only=True), read_only=True), Config(), read_only=True)
    with lakefs.load(path) as w:
        w.delete_tensor("t")  # the writer's next commit: /t is gone
    refresher = threading.Thread(target=fs.refresh)
    original = fs._require_dir

    def refresh_meanwhile(parent):
        kind = original(parent)
        if not refresher.is_alive() and refresher.ident is None:
            refresher.start()  # the refresh thread wakes up in the middle of readdir
            refresher.join(0.5)
        return kind

    fs._require_dir = refresh_meanwhile
    assert [name for name, _ in fs.readdir("/t")] == ["00000000.txt"]  # one commit, whole
    refresher.join(10)
    fs._require_dir = original
    with pytest.raises(lakefs.errors.SampleNotFoundError):
        fs.readdir("/t")  # the next operation sees the new commit


def test_concurrent_refreshes_never_go_back(tmp_path, monkeypatch):
    """Found by review: a slow refresh finishing after a faster one adopted the older
    commit it had loaded."""
    import threading

    path = tmp_path / "ds"
    with lakefs.empty(path) as w:
        w.create_tensor("t", htype="text").append("a")
    ro = lakefs.load(path, read_only=True)
    with lakefs.load(path) as w:
        w.t.append("b")
    loaded, go_on = threading.Event(), threading.Event()
    original = Dataset._read_head

    def slow_read_head(self):
        snap = original(self)
        if threading.current_thread().name == "slow":
            loaded.set()
            go_on.wait(10)
        return snap

    monkeypatch.setattr(Dataset, "_read_head", slow_read_head)
    slow = threading.Thread(target=ro.refresh, name="slow")
    slow.start()
    assert loaded.wait(10)  # it holds commit N
    with lakefs.load(path) as w:
        w.t.append("c")
    assert ro.refresh() and len(ro.t) == 3  # commit N+1
    go_on.set()
    slow.join(10)
    assert len(ro.t) == 3


def _ops(log: str, opcode: str) -> int:
    """How many ``opcode`` requests the kernel sent (libfuse's ``-o debug`` lines)."""
    return sum(1 for line in log.splitlines() if f"opcode: {opcode} " in line)


def test_a_read_only_mount_reads_files_without_opening_them(photos, dataset_path, mountpoint, tmp_path):
    """A read-only mount answers the first OPEN with ENOSYS (FUSE no-open): the kernel
    then sends no OPEN or RELEASE per file, READs come without a handle, and a warm read
    is served from the page cache with no request at all. Everything reads as with
    opens: samples, a big tiled one at any offset, plain files, mmap, Pillow."""
    big = os.urandom(20 << 20)
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        for i, photo in enumerate(photos[:4]):
            ds.append({"images": lakefs.read(photo)}, key=f"p{i}")
        ds.create_tensor("blobs", htype="bytes", chunk_size=4 << 20).write_file("big.bin", big)
        ds.write_file("README.md", b"# card\n")
    files = [*(mountpoint / "images" / f"p{i}.jpg" for i in range(4)), mountpoint / "README.md"]
    with mounted(ro_mount(dataset_path, mountpoint, "ro,debug"), mountpoint) as m:
        for i, f in enumerate(files[:4]):
            assert cat(f) == photos[i].read_bytes()
        assert cat(files[4]) == b"# card\n"
        with open(mountpoint / "blobs" / "big.bin", "rb") as f:
            for offset in (17 << 20, 3, (8 << 20) - 5, 0):
                f.seek(offset)
                assert f.read(1 << 20) == big[offset:offset + (1 << 20)]
        assert cat(mountpoint / "blobs" / "big.bin") == big
        with open(files[1], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            assert mm[:] == photos[1].read_bytes()
        assert Image.open(files[2]).size == Image.open(photos[2]).size
        reads = _ops(m.log(), "READ")
        for f in files:  # warm: the page cache answers, lakefs is not asked
            cat(f)
        log = m.log()
        assert _ops(log, "OPEN") == 1 and _ops(log, "RELEASE") == 0  # the one ENOSYS
        assert _ops(log, "READ") == reads
    with mounted(ro_mount(dataset_path, mountpoint, "ro,debug,snapshot_opens"), mountpoint) as m:
        for i, f in enumerate(files[:4]):
            assert cat(f) == photos[i].read_bytes()
        assert _ops(m.log(), "OPEN") == 4  # the option keeps them
        assert wait_for(lambda: _ops(m.log(), "RELEASE") == 4)  # (sent after close returns)
