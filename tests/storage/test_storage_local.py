"""LocalStorage beyond the conformance suite: escapes, a full disk, fsync, dead lockers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mounting import small_tmpfs_at

from lakefs.errors import (
    InvalidKeyError,
    LockedError,
    ObjectNotFoundError,
    ReadOnlyError,
    StorageError,
    StorageFullError,
)
from lakefs.storage import LocalStorage

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]


def test_symlink_dir_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "evil").symlink_to(outside)
    store = LocalStorage(root)
    with pytest.raises(InvalidKeyError, match="outside"):
        store.get("evil/secret")
    with pytest.raises(InvalidKeyError):
        store.put("evil/planted", b"x")
    with pytest.raises(InvalidKeyError):
        store.exists("evil/secret")
    assert not (outside / "planted").exists()
    assert list(store.list()) == []
    assert list(store.list("evil/")) == []


def test_symlink_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    store = LocalStorage(root)
    with pytest.raises(InvalidKeyError):
        store.get("link")
    with pytest.raises(InvalidKeyError):
        store.put("link", b"overwrite")
    assert (tmp_path / "secret").read_bytes() == b"secret"


def test_root_is_created_on_first_put_and_not_when_read_only(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "ds"
    ro = LocalStorage(root, read_only=True)
    assert list(ro.list()) == []
    assert not root.exists()
    LocalStorage(root).put("x/y", b"1")
    assert (root / "x" / "y").read_bytes() == b"1"


def test_put_fsyncs_file_and_directories(tmp_path: Path, fsync_log: list[str]) -> None:
    synced = fsync_log
    root = tmp_path / "ds"
    LocalStorage(root).put("new/dir/obj", b"data")
    assert any(".obj.tmp~" in p for p in synced)  # the data, before the rename
    assert str(root / "new" / "dir") in synced  # the rename
    assert str(root / "new") in synced  # the new directory entries
    assert str(root) in synced


def test_put_without_sync_is_flushed_by_sync_and_retried_after_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync
    fail = [True]

    def spy(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if fail[0] and path.endswith("/b"):
            raise OSError(5, "Input/output error")
        synced.append(path)
        real_fsync(fd)

    root = tmp_path / "ds"
    store = LocalStorage(root)
    store.put("t/chunks/a", b"x")  # creates the directories, synced
    monkeypatch.setattr(os, "fsync", spy)
    store.put("t/chunks/a", b"1", sync=False)
    store.put("t/chunks/b", b"2", sync=False)
    assert synced == []  # nothing flushed at put time
    with pytest.raises(StorageError, match="Input/output error"):
        store.sync()
    fail[0] = False
    synced.clear()
    store.sync()  # the failed batch is flushed again, then the directory once
    assert synced == [str(root / "t/chunks/a"), str(root / "t/chunks/b"), str(root / "t/chunks")]
    synced.clear()
    store.sync()
    assert synced == []


def test_put_from_without_sync_and_deletes_are_flushed_by_sync(tmp_path: Path, fsync_log: list[str]) -> None:
    synced = fsync_log
    root = tmp_path / "ds"
    store = LocalStorage(root)
    store.put("files/old", b"x")
    store.put("other/gone", b"y")
    synced.clear()
    with open(tmp_path / "src", "w+b") as f:
        f.write(b"staged")
        f.seek(0)
        store.put_from("files/new", f, 6, sync=False)
    store.delete("files/old")
    store.delete("other/gone")
    assert synced == []  # neither the put nor the deletes flushed anything yet
    assert store.get("files/new") == b"staged" and not store.exists("files/old")
    store.sync()  # the file, then each directory once (a put and a delete in files/)
    assert synced == [str(root / "files/new"), str(root / "files"), str(root / "other")]
    synced.clear()
    store.sync()
    assert synced == []


def test_check_reports_bad_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(Exception, match="not a directory"):
        LocalStorage(tmp_path / "file").check()
    with pytest.raises(Exception, match="does not exist"):
        LocalStorage(tmp_path / "missing", read_only=True).check()
    LocalStorage(tmp_path / "missing").check()  # will be created


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    with small_tmpfs_at(tmp_path / "tiny", "1m") as mnt:
        yield mnt


def test_full_disk(tiny_tmpfs: Path) -> None:
    store = LocalStorage(tiny_tmpfs / "ds")
    old = b"o" * 600_000
    store.put("obj", old)
    with pytest.raises(StorageFullError) as info:
        store.put("obj", b"n" * 600_000)
    assert "obj" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert store.get("obj") == old  # the previous object is intact
    with pytest.raises(StorageFullError):
        store.put("other/obj", b"n" * 600_000)
    leftovers = [n for _, _, files in os.walk(tiny_tmpfs) for n in files if "tmp" in n]
    assert leftovers == []
    assert sorted(store.list()) == ["obj"]
    total, free, avail = store.statfs()
    assert total <= 1 << 20 and free < 500_000


def test_two_locks_in_one_process_conflict(tmp_path: Path) -> None:
    a, b = LocalStorage(tmp_path), LocalStorage(tmp_path)
    lock = a.writer_lock("writer")
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        b.writer_lock("writer")
    lock.release()
    b.writer_lock("writer").release()


def test_deleted_lock_file_is_detected(tmp_path: Path) -> None:
    lock = LocalStorage(tmp_path).writer_lock("writer")
    lock.verify()
    os.unlink(tmp_path / "locks" / "writer")
    with pytest.raises(LockedError, match="removed while held"):
        lock.verify()
    LocalStorage(tmp_path).writer_lock("writer").release()  # a fresh file, a fresh lock
    lock.release()
    with pytest.raises(LockedError, match="released"):
        lock.verify()


_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from lakefs.storage.local import LocalStorage
lock = LocalStorage(sys.argv[2]).writer_lock("writer")
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(REPO), str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {child.pid}"):
            LocalStorage(tmp_path).writer_lock("writer")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        LocalStorage(tmp_path).writer_lock("writer").release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    lock = LocalStorage(tmp_path).writer_lock("writer")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a data-loader worker that lives on after the writer
        os.write(w, b"up")  # the at-fork hook has run by now
        time.sleep(3)
        os._exit(0)
    try:
        os.close(w)
        assert os.read(r, 2) == b"up"
        os.close(r)
        lock.release()
        LocalStorage(tmp_path).writer_lock("writer").release()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_crash_leftover_temp_files_are_not_keys(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("d/obj", b"whole")
    (tmp_path / "d" / ".obj.tmp~0badf00d").write_bytes(b"torn")
    assert sorted(store.list()) == ["d/obj"]
    assert store.get("d/obj") == b"whole"
    with pytest.raises(InvalidKeyError):
        store.get("d/.obj.tmp~0badf00d")


_segment = st.text(alphabet="abcXYZ019._=-", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "delete"]),
                              st.lists(_segment, min_size=1, max_size=2).map("/".join),
                              st.binary(max_size=64)), max_size=25))
def test_matches_a_dict_model(tmp_path_factory: pytest.TempPathFactory, ops) -> None:
    store = LocalStorage(tmp_path_factory.mktemp("model"))
    model: dict[str, bytes] = {}
    for op, key, data in ops:
        # a key that is a "directory" of another cannot also be an object on a local disk
        if any(k.startswith(key + "/") or key.startswith(k + "/") for k in model):
            continue
        if op == "put":
            store.put(key, data)
            model[key] = data
        else:
            store.delete(key)
            model.pop(key, None)
    assert sorted(store.list()) == sorted(model)
    for key, data in model.items():
        assert store.get(key) == data
        assert store.get_range(key, 1, 3) == data[1:4]


def test_a_key_whose_keys_below_were_deleted_can_be_put(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    store.put("0/x", b"below")
    store.delete("0/x")  # leaves the directory 0 behind
    store.put("0", b"now an object")
    assert store.get("0") == b"now an object" and list(store.list()) == ["0"]
    store.put("1/x", b"live")
    with pytest.raises(StorageError):  # a prefix of a live key cannot be an object too
        store.put("1", b"no")
    store.delete("1")  # a directory, not an object: nothing to delete
    store.delete("1/x/y")  # below an object: no such object either
    assert store.get("1/x") == b"live"


def test_prefetch_is_a_harmless_hint(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    store.put("c/0001", b"x" * 100_000)
    store.prefetch("c/0001")
    store.prefetch("c/missing")  # never raises
    store.prefetch("../escape")  # nor for a bad key: it is only a hint
    assert store.get_range("c/0001", 99_990, 100) == b"x" * 10


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_ranged_reads_keep_a_bounded_number_of_files_open(tmp_path: Path) -> None:
    from lakefs.storage.local import _ReadFds

    store = LocalStorage(tmp_path)
    keys = [f"c/{i}" for i in range(3 * _ReadFds.SIZE)]
    for i, key in enumerate(keys):
        store.put(key, bytes([i]) * 100)
    before = _open_fds()
    for _ in range(2):
        for i, key in enumerate(keys):
            assert store.get_range(key, 10, 5) == bytes([i]) * 5
    assert _open_fds() - before <= _ReadFds.SIZE
    store.close()
    assert _open_fds() <= before


def test_a_put_or_delete_is_seen_by_the_next_ranged_read(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("c/1", b"old-bytes")
    assert store.get_range("c/1", 0, 3) == b"old"  # its descriptor is kept open now
    store.put("c/1", b"new-bytes")
    assert store.get_range("c/1", 0, 3) == b"new"
    store.delete("c/1")
    with pytest.raises(ObjectNotFoundError):
        store.get_range("c/1", 0, 3)


def test_ranged_reads_from_threads_while_descriptors_are_evicted(tmp_path: Path) -> None:
    """Eviction closes a descriptor only after its last reader: a closed number reused
    by another file would make a reader return that file's bytes."""
    import threading

    from lakefs.storage import local

    store = LocalStorage(tmp_path)
    keys = [f"c/{i}" for i in range(12)]
    for i, key in enumerate(keys):
        store.put(key, bytes([i]) * 4096)
    wrong: list[str] = []

    def reader(seed: int) -> None:
        for n in range(400):
            i = (seed * 7 + n * 5) % len(keys)
            got = store.get_range(keys[i], n % 4000, 64)
            if got != bytes([i]) * 64:
                wrong.append(f"{keys[i]}: {got[:4]!r}")
            if n % 50 == 0:
                store.put(keys[i], bytes([i]) * 4096)  # drops the descriptor under readers

    old = local._ReadFds.SIZE
    local._ReadFds.SIZE = 3  # evict all the time
    try:
        threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        local._ReadFds.SIZE = old
    assert wrong == []


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp~" in p.name)


def test_a_put_that_fails_for_any_reason_leaves_no_temp_file(tmp_path: Path) -> None:
    """Found by review: only an OSError removed the temp file; a short ``put_from`` (its
    ValueError) or an interrupt left ``.name.tmp~xxxx`` behind for good, never listed."""
    import io

    from lakefs.errors import LakeFSError, ShortInputError

    store = LocalStorage(tmp_path)
    with pytest.raises(ShortInputError) as e:
        store.put_from("files/0001", io.BytesIO(b"short"), 100)
    assert isinstance(e.value, LakeFSError) and isinstance(e.value, ValueError)
    assert "put_from" not in str(e.value) and "5 of 100 bytes" in str(e.value)

    def interrupted():
        yield b"some bytes"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store._write("files/0002", interrupted(), sync=True)
    assert _temp_files(tmp_path) == []
    assert list(store.list()) == []


def test_leftover_temp_files_are_found_and_only_old_ones_deleted(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("d/obj", b"whole")
    old, fresh = tmp_path / "d" / ".obj.tmp~0badf00d", tmp_path / ".HEAD.tmp~12345678"
    old.write_bytes(b"torn write")
    os.utime(old, (time.time() - 7200, time.time() - 7200))  # two hours old: a crash's
    fresh.write_bytes(b"a live put")
    found = {name: (size, age) for name, size, age in store.leftover_temps()}
    assert set(found) == {"d/.obj.tmp~0badf00d", ".HEAD.tmp~12345678"}
    assert found["d/.obj.tmp~0badf00d"][0] == 10 and found["d/.obj.tmp~0badf00d"][1] > 7000
    assert [name for name, _, _ in store.leftover_temps(min_age=3600)] == ["d/.obj.tmp~0badf00d"]
    assert [name for name, _, _ in store.delete_leftover_temps(min_age=3600)] == ["d/.obj.tmp~0badf00d"]
    assert not old.exists() and fresh.exists() and store.get("d/obj") == b"whole"
    with pytest.raises(ReadOnlyError):
        LocalStorage(tmp_path, read_only=True).delete_leftover_temps(min_age=3600)


def test_a_lock_whose_holder_note_cannot_be_read_leaks_no_descriptor(tmp_path: Path, monkeypatch) -> None:
    """Found by review: a failed read of the holder's note skipped the close."""
    held = LocalStorage(tmp_path).writer_lock("writer")
    other = LocalStorage(tmp_path)

    def pread_fails(*args):
        raise OSError(5, "Input/output error")

    before = _open_fds()
    monkeypatch.setattr(os, "pread", pread_fails)
    for _ in range(5):
        with pytest.raises(LockedError):
            other.writer_lock("writer")
    monkeypatch.undo()
    assert _open_fds() == before
    held.release()


def test_a_store_dropped_without_close_closes_its_cached_descriptors(tmp_path: Path) -> None:
    """Found by review: ten load/read/close cycles of a dataset left 320 descriptors
    open (the dataset did not close its storage, and nothing else closed them)."""
    import gc

    before = _open_fds()
    for _ in range(3):
        store = LocalStorage(tmp_path)
        for i in range(10):
            store.put(f"c/{i}", b"x" * 100)
            assert store.get_range(f"c/{i}", 0, 5) == b"xxxxx"
        assert _open_fds() - before >= 10
        del store
        gc.collect()
        assert _open_fds() == before
    store = LocalStorage(tmp_path)
    assert store.get_range("c/0", 0, 1) == b"x"
    store.close()
    store.close()  # twice: harmless
    assert _open_fds() == before
    assert store.get_range("c/0", 0, 1) == b"x"  # (a read after close opens it again)
    store.close()
    assert _open_fds() == before


def test_readinto_keeps_its_file_open_as_ranged_gets_do(tmp_path: Path, monkeypatch) -> None:
    store = LocalStorage(tmp_path)
    store.put("c/tile", bytes(range(256)) * 16)
    opens: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **kw: (opens.append(path), real_open(path, *a, **kw))[1])
    buf = bytearray(100)
    for start in (0, 1000, 4000):
        n = store.readinto("c/tile", start, buf)
        assert bytes(buf[:n]) == (bytes(range(256)) * 16)[start : start + 100]
    assert store.get_range("c/tile", 0, 3) == bytes([0, 1, 2])
    assert len([p for p in opens if p.endswith("tile")]) == 1
    store.put("c/tile", b"new")  # a put drops the descriptor: the next read sees the new file
    assert store.readinto("c/tile", 0, buf) == 3 and bytes(buf[:3]) == b"new"
    store.close()


def test_write_protected_is_a_read_only_file_system(tmp_path: Path) -> None:
    """A folder on a read-only file system refuses every write, whatever ``writable``
    says (a dataset there is mounted read-only); a folder to be made in one too."""
    from mounting import read_only_bind

    (tmp_path / "src" / "ds").mkdir(parents=True)
    assert not LocalStorage(tmp_path / "src" / "ds").write_protected()
    with read_only_bind(tmp_path / "src", tmp_path / "ro") as ro:
        assert LocalStorage(ro / "ds").write_protected()
        assert LocalStorage(ro / "new" / "ds", read_only=True).write_protected()
