"""Tests of the mount harness (tests/mounting.py) and the binding shim, against a real mount
of scripts/bare_memfs.py."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mounting import is_mounted, mounted, unmount

REPO_ROOT = Path(__file__).resolve().parent.parent
BARE_MEMFS = REPO_ROOT / "scripts" / "bare_memfs.py"

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3") or shutil.which("fusermount")),
    reason="needs /dev/fuse and fusermount (run scripts/setup.sh)",
)


def memfs(mnt: Path, *extra: str) -> list[str]:
    return [sys.executable, str(BARE_MEMFS), str(mnt), *extra]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_binding_prefers_mfusepy_on_libfuse3() -> None:
    from lakefs.fs import binding

    assert binding.BINDING in ("mfusepy", "fusepy")
    if shutil.which("fusermount3"):
        assert (binding.BINDING, binding.LIBFUSE_MAJOR) == ("mfusepy", 3)


def test_import_lakefs_does_not_load_fuse() -> None:
    code = "import sys, lakefs; sys.exit(any(m in sys.modules for m in ('mfusepy', 'fuse')))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


def test_pack_stats_fills_records_as_set_st_attrs_fills_one() -> None:
    """READDIRPLUS hands the kernel records packed in bulk; each must be byte for byte
    what the binding's own per-entry fill makes of the same getattr dict."""
    import numpy as np

    from lakefs.fs import binding

    impl = binding._impl
    stats = [
        {"st_mode": 0o100644, "st_nlink": 1, "st_size": 9, "st_mtime": 1_795_476_829_717_576_128,
         "st_ctime": 1_795_476_829_717_576_128, "st_atime": 5, "st_uid": 1000, "st_gid": 100,
         "st_blksize": 131072, "st_blocks": 1},
        {"st_mode": 0o40755, "st_nlink": 2, "st_size": 0, "st_mtime": 0, "st_ctime": 0, "st_atime": 0,
         "st_uid": 0, "st_gid": 0, "st_blksize": 131072, "st_blocks": 0},
    ]
    columns = {key: np.array([s[key] for s in stats]) for key in stats[0]}
    packed = binding.pack_stats(columns, len(stats), use_ns=True)
    for record, attrs in zip(packed, stats):
        st = impl.c_stat()
        impl.set_st_attrs(st, attrs, use_ns=True)
        assert record.tobytes() == bytes(st)


def test_fast_getattr_fills_the_struct_as_the_getattr_dict_does(tmp_path: Path) -> None:
    """``FUSE.fgetattr`` copies a ``stat_record`` into the struct field by field; it must be
    byte for byte what the binding makes of the same operations' getattr dict, and a
    missing name is -ENOENT without an exception."""
    from types import SimpleNamespace

    import lakefs
    from lakefs.config import Config
    from lakefs.fs import binding
    from lakefs.fs.operations import LakeOperations
    from lakefs.fs.tree import DatasetFS

    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("t", htype="text")["k"] = "hello"
    fs = DatasetFS(ds, Config())
    ops = LakeOperations(fs)
    fh = fs.create("/t/open.txt", 0o600)
    fs.write(fh, b"abc", 0)
    fuse = SimpleNamespace(operations=ops, _stat_record=ops.stat_record, raw_fi=True, encoding="utf-8",
                           errors="surrogateescape", use_ns=True)
    for path in (b"/", b"/t", b"/t/k.txt", b"/t/open.txt"):
        fast, slow = binding._impl.c_stat(), binding._impl.c_stat()
        ctypes.memset(ctypes.pointer(fast), 0xAB, ctypes.sizeof(fast))  # every byte is written
        assert binding.FUSE.fgetattr(fuse, path, ctypes.pointer(fast), None) == 0
        assert binding._impl.FUSE.fgetattr(fuse, path, ctypes.pointer(slow), None) == 0
        assert bytes(fast) == bytes(slow), path
        assert fast.st_size == {b"/t/k.txt": 5, b"/t/open.txt": 3}.get(path, 0)
    assert binding.FUSE.fgetattr(fuse, b"/t/missing.txt", ctypes.pointer(binding._impl.c_stat()), None) == -errno.ENOENT
    with pytest.raises(OSError) as e:  # other errors keep the binding's errno mapping
        binding.FUSE.fgetattr(fuse, b"/t/k.txt/x", ctypes.pointer(binding._impl.c_stat()), None)
    assert e.value.errno == errno.ENOTDIR
    fs.release(fh)
    ds.close()


def test_resolve_utimens_markers() -> None:
    from lakefs.fs.binding import UTIME_NOW, UTIME_OMIT, resolve_utimens

    assert resolve_utimens((UTIME_OMIT, 5_000_000_000), now_ns=7) == (None, 5_000_000_000)
    assert resolve_utimens((UTIME_NOW, UTIME_OMIT), now_ns=7) == (7, None)
    assert resolve_utimens(None, now_ns=7) == (7, 7)


def test_binding_read_copies_bytes_and_views_into_the_fuse_buffer() -> None:
    from types import SimpleNamespace

    from lakefs.fs import binding

    if not binding.READ_TAKES_VIEWS:
        pytest.skip("fusepy: operations return bytes")
    tile = bytes(range(256)) * 64
    answers = {0: tile[:100], 1: memoryview(tile)[1000:1300], 2: memoryview(tile)[:0], 3: tile[:2000]}

    class Ops:
        def read(self, path, size, offset, fh):
            return answers[offset]

    fuse = SimpleNamespace(operations=Ops(), raw_fi=False, encoding="utf-8", errors="surrogateescape")
    fip = SimpleNamespace(contents=SimpleNamespace(fh=1))
    raw = ctypes.create_string_buffer(1024)
    buf = ctypes.cast(raw, ctypes.POINTER(ctypes.c_byte))
    assert binding.FUSE.read(fuse, b"/f", buf, 1024, 0, fip) == 100 and raw.raw[:100] == tile[:100]
    assert binding.FUSE.read(fuse, b"/f", buf, 1024, 1, fip) == 300 and raw.raw[:300] == tile[1000:1300]
    assert binding.FUSE.read(fuse, b"/f", buf, 1024, 2, fip) == 0
    with pytest.raises(ValueError):  # never more than asked: it would overrun the buffer
        binding.FUSE.read(fuse, b"/f", buf, 1024, 3, fip)


def test_cp_md5_and_ls_sizes(mountpoint: Path, photos: list[Path]) -> None:
    with mounted(memfs(mountpoint), mountpoint):
        images = mountpoint / "images"
        images.mkdir()
        subprocess.run(["cp", *map(str, photos), str(images)], check=True)
        sums = subprocess.run(
            ["md5sum", *sorted(p.name for p in photos)], cwd=images, check=True,
            capture_output=True, text=True,
        ).stdout.split()[::2]
        assert sums == [md5(p) for p in sorted(photos, key=lambda p: p.name)]
        listing = subprocess.run(
            ["ls", "-l", str(images)], check=True, capture_output=True, text=True
        ).stdout.splitlines()[1:]
        sizes = {line.split()[-1]: int(line.split()[4]) for line in listing}
        assert sizes == {p.name: p.stat().st_size for p in photos}
    assert not is_mounted(mountpoint)
    assert list(mountpoint.iterdir()) == []  # the memfs is gone, the dir is plain again


def test_large_write_and_overwrite(mountpoint: Path, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 * (1 << 20) + 12345))
    with mounted(memfs(mountpoint), mountpoint):
        target = mountpoint / "blob.bin"
        shutil.copyfile(blob, target)
        assert md5(target) == md5(blob)
        target.write_bytes(b"short")  # O_TRUNC then write
        assert target.read_bytes() == b"short"
        os.truncate(target, 10)
        assert target.read_bytes() == b"short" + bytes(5)


def test_unmount_leaves_no_mount_and_process_exits(mountpoint: Path) -> None:
    with mounted(memfs(mountpoint), mountpoint) as mount:
        assert is_mounted(mountpoint)
        pid = mount.process.pid
    assert not is_mounted(mountpoint)
    assert mount.process.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert unmount(mountpoint)  # idempotent on a plain directory


def test_failed_start_fails_fast_with_output(mountpoint: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit('cannot mount: boom')"]
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with 1.*cannot mount: boom"):
        with mounted(argv, mountpoint, foreground_flag=None):
            pass  # pragma: no cover
    assert time.monotonic() - start < 10


def test_start_timeout_kills_the_process(mountpoint: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(600)"]
    with pytest.raises(pytest.fail.Exception, match=r"(?s)not mounted within 1 s.*waiting"):
        with mounted(argv, mountpoint, timeout=1, foreground_flag=None):
            pass  # pragma: no cover


def _noisy_memfs(mnt: Path) -> list[str]:
    code = (
        "import runpy, sys; print('ERROR: something went wrong', file=sys.stderr, flush=True); "
        f"sys.argv = ['bare_memfs', {str(mnt)!r}, '-f']; "
        f"runpy.run_path({str(BARE_MEMFS)!r}, run_name='__main__')"
    )
    return [sys.executable, "-c", code]


def test_logged_error_fails_unless_expected(mountpoint: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="logged: ERROR: something went wrong"):
        with mounted(_noisy_memfs(mountpoint), mountpoint, foreground_flag=None):
            pass
    assert not is_mounted(mountpoint)
    with mounted(_noisy_memfs(mountpoint), mountpoint, foreground_flag=None,
                 expected_errors=["something went wrong"]):
        pass


def test_body_exception_propagates_and_unmounts(mountpoint: Path) -> None:
    with pytest.raises(KeyError):
        with mounted(memfs(mountpoint), mountpoint):
            raise KeyError("from the test body")
    assert not is_mounted(mountpoint)


def test_utime_omit(mountpoint: Path) -> None:
    """touch -m / -a send UTIME_OMIT for the other time: it must stay unchanged."""
    with mounted(memfs(mountpoint), mountpoint):
        f = mountpoint / "f.txt"
        f.write_text("x")
        os.utime(f, ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))
        subprocess.run(["touch", "-m", "-d", "2001-09-09 01:46:40 UTC", str(f)], check=True)
        st = f.stat()
        assert st.st_mtime_ns == 1_000_000_000 * 10**9
        assert st.st_atime_ns == 1_000_000_000_000_000_000  # omitted: unchanged
        subprocess.run(["touch", "-a", "-d", "@1234567890", str(f)], check=True)
        st = f.stat()
        assert (st.st_atime_ns, st.st_mtime_ns) == (1_234_567_890 * 10**9, 1_000_000_000 * 10**9)
        before = time.time_ns()
        os.utime(f)  # times=None: both now
        assert f.stat().st_mtime_ns >= before - 10**9


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def renameat2(old: Path, new: Path, flags: int) -> int:
    """renameat2(2) through libc; returns 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    res = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    return 0 if res == 0 else ctypes.get_errno()


def test_rename_flags_rejected_and_plain_rename_works(mountpoint: Path) -> None:
    with mounted(memfs(mountpoint), mountpoint):
        a, b = mountpoint / "a.txt", mountpoint / "b.txt"
        a.write_text("A")
        b.write_text("B")
        assert renameat2(a, b, RENAME_EXCHANGE) == errno.EINVAL
        assert renameat2(a, mountpoint / "c.txt", RENAME_NOREPLACE) == errno.EINVAL
        assert (a.read_text(), b.read_text()) == ("A", "B")  # nothing lost or swapped
        subprocess.run(["mv", str(a), str(mountpoint / "c.txt")], check=True)  # falls back
        os.rename(mountpoint / "c.txt", b)  # rsync's rename onto an existing file
        assert b.read_text() == "A"
        assert sorted(p.name for p in mountpoint.iterdir()) == ["b.txt"]


def test_name_too_long_and_rmdir(mountpoint: Path) -> None:
    with mounted(memfs(mountpoint), mountpoint):
        with pytest.raises(OSError) as info:
            (mountpoint / ("x" * 256)).write_text("x")
        assert info.value.errno == errno.ENAMETOOLONG
        d = mountpoint / "d"
        d.mkdir()
        (d / "f").write_text("f")
        with pytest.raises(OSError) as info:
            d.rmdir()
        assert info.value.errno == errno.ENOTEMPTY
        (d / "f").unlink()
        d.rmdir()
        assert list(mountpoint.iterdir()) == []


# A FUSE filesystem (an empty root) whose kernel cache is invalidated in a tight loop from
# another thread until unmount, recording what each call returned and the order of the
# loop's end and destroy.
_INVALIDATING_FS = r"""
import errno, json, sys, threading
from lakefs.fs.binding import FUSE, FuseOSError, KernelCache, Operations

class RecordingKernelCache(KernelCache):
    results = []
    def _check(self, result):
        self.results.append(result)
        super()._check(result)

kernel, events = RecordingKernelCache(), []

def invalidate_forever():
    while True:
        kernel.invalidate("/")
        kernel.forget_name(1, "gone")

class Root(Operations):
    use_ns = True
    def init(self, path):
        kernel.attach()
        threading.Thread(target=invalidate_forever, daemon=True).start()
    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": 0o40755, "st_nlink": 2}
        raise FuseOSError(errno.ENOENT)
    def readdir(self, path, fh):
        return [".", ".."]
    def destroy(self, path):
        events.append("destroy")

def after_loop():
    kernel.detach()
    events.append("loop ended")

FUSE(Root(), sys.argv[1], foreground=True, after_loop=after_loop)
print(json.dumps({"events": events, "results": sorted(set(kernel.results)), "calls": len(kernel.results)}))
"""


def test_kernel_invalidations_stop_before_libfuse_tears_down(mountpoint: Path) -> None:
    """Found in CI: libfuse's fuse_main_real unmounts and frees the node tables
    fuse_invalidate_path walks before it calls the operations' destroy, so a refresh still
    invalidating at unmount read freed memory (the mount died with SIGSEGV) and wrote to
    the device's closed descriptor. The kernel cache is now let go as the loop ends:
    every call before succeeded or found nothing, none was made on a closed device."""
    from lakefs.fs import binding

    if not binding.CALLS_AFTER_LOOP:
        pytest.skip(f"libfuse {binding.LIBFUSE_MAJOR}.{binding.LIBFUSE_MINOR}: served by the binding's own main")
    for _ in range(3):
        with mounted([sys.executable, "-c", _INVALIDATING_FS, str(mountpoint)], mountpoint,
                     foreground_flag=None) as m:
            assert os.listdir(mountpoint) == []
            time.sleep(0.2)  # let the thread invalidate for a while
            assert unmount(mountpoint)
            m.process.wait(timeout=20)
            assert m.process.returncode == 0, m.log()
            report = json.loads(m.log().strip().splitlines()[-1])
        assert report["events"] == ["loop ended", "destroy"], report
        assert report["calls"] > 0, report  # (the thread ran: ~10^5 calls in 0.2 s here)
        assert set(report["results"]) <= {0, -errno.ENOENT}, report  # never -EBADF


# A single-threaded FUSE filesystem whose READ of /slow waits for a flag file (holding the
# only loop thread), and a thread that has the kernel drop the name "d" in the root
# (KernelCache.forget_name) over and over until the cache is detached as the loop ends.
_STUCK_INVALIDATION_FS = r"""
import errno, json, os, sys, threading, time
from lakefs.fs.binding import FUSE, FuseOSError, KernelCache, Operations

kernel, events, flag = KernelCache(), [], sys.argv[2]

def forget_until_detached():
    while kernel.attached:
        kernel.forget_name(1, "d")
        time.sleep(0.001)

class Root(Operations):
    use_ns = True
    def init(self, path):
        kernel.attach()
        threading.Thread(target=forget_until_detached, daemon=True).start()
    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": 0o40755, "st_nlink": 2}
        if path == "/slow":
            return {"st_mode": 0o100644, "st_nlink": 1, "st_size": 4}
        raise FuseOSError(errno.ENOENT)
    def read(self, path, size, offset, fh):
        print("reading", flush=True)
        while not os.path.exists(flag):
            time.sleep(0.01)
        return b"data"[offset:offset + size]
    def mkdir(self, path, mode):
        raise FuseOSError(errno.EACCES)
    def destroy(self, path):
        events.append("destroy")

def after_loop():
    kernel.detach()
    events.append("detached")

try:
    FUSE(Root(), sys.argv[1], foreground=True, nothreads=True, after_loop=after_loop)
except RuntimeError:  # libfuse's status when a signal ended the loop
    events.append("stopped")
print(json.dumps(events), flush=True)
"""


def _thread_waits(pid: int) -> list[str]:
    """What each thread of ``pid`` waits in, as /proc names the kernel function."""
    waits = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            waits.append(Path(f"/proc/{pid}/task/{tid}/wchan").read_text())
        except OSError:
            pass
    return waits


def _signals_pending(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return any(int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd")))


def test_a_signal_stop_serves_what_a_kernel_cache_call_waits_for(tmp_path: Path, mountpoint: Path) -> None:
    """Found by review: the kernel answers a KernelCache call only once what it waits for
    is through; here ``mkdir`` holds the root directory (its LOOKUP waits behind a slow
    READ) while a refresh-like thread drops a name in it. SIGTERM ended the loop with the
    LOOKUP still queued, the call stayed in the kernel, detach waited for it, and the
    mount process hung until the client was killed (before this review's fix, and before
    after_loop existed, in destroy). What the ended loop left queued is now served while
    ``after_loop`` waits."""
    from lakefs.fs import binding

    if not binding.CALLS_AFTER_LOOP:
        pytest.skip(f"libfuse {binding.LIBFUSE_MAJOR}.{binding.LIBFUSE_MINOR}: served by the binding's own main")
    flag, log = tmp_path / "flag", tmp_path / "fs.log"
    with open(log, "wb") as out:
        fs = subprocess.Popen([sys.executable, "-c", _STUCK_INVALIDATION_FS, str(mountpoint), str(flag)],
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    clients: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(mountpoint) or "reading" not in log.read_text():
            assert fs.poll() is None and time.monotonic() < deadline, log.read_text()
            if is_mounted(mountpoint) and not clients:
                clients.append(subprocess.Popen(["cat", str(mountpoint / "slow")], stdout=subprocess.DEVNULL))
            time.sleep(0.02)
        mkdir = subprocess.Popen(["mkdir", str(mountpoint / "d")], stderr=subprocess.PIPE)
        clients.append(mkdir)
        while not any("inval" in wait for wait in _thread_waits(fs.pid)):  # forget_name waits on mkdir
            if time.monotonic() > deadline:
                pytest.skip(f"cannot see the invalidation waiting in /proc/*/wchan: {_thread_waits(fs.pid)}")
            time.sleep(0.02)
        fs.send_signal(signal.SIGTERM)
        while _signals_pending(fs.pid):
            time.sleep(0.01)
        flag.touch()  # the READ is answered; the loop sees the signal and ends, the LOOKUP queued
        try:
            fs.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the mount process hung after SIGTERM: {_thread_waits(fs.pid)}\n{log.read_text()}")
        assert fs.returncode == 0, log.read_text()
        assert json.loads(log.read_text().strip().splitlines()[-1]) == ["detached", "destroy", "stopped"]
        assert mkdir.wait(timeout=10) != 0 and b"Permission denied" in mkdir.stderr.read()  # answered by mkdir()
    finally:
        # mkdir first: its queued request given up, the directory and the call waiting on it
        # are free, and the filesystem can end; cat's FLUSH waits for that (not killable).
        flag.touch()
        for client in reversed(clients):
            client.kill()
        unmount(mountpoint)
        if fs.poll() is None:
            os.killpg(fs.pid, signal.SIGKILL)
            fs.wait()
        for client in clients:
            client.wait()
