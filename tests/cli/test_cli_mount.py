"""``lakefs mount`` and ``lakefs umount`` edge cases, through the real ``python -m lakefs``.

Every test that may mount unmounts in ``finally``; a mount command that should have been
refused but mounted is stopped and unmounted before the test fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mounting import eventually, is_mounted, kill_during_the_final_commit, mounted, read_only_bind, unmount

import lakefs

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def lakefs_cmd(*argv: object) -> list[str]:
    return [sys.executable, "-m", "lakefs", *(str(a) for a in argv)]


def run(*argv: object, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(lakefs_cmd(*argv), capture_output=True, text=True, cwd=REPO, env=ENV, timeout=timeout)


def attempt_mount(*argv: object, mountpoint: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a ``lakefs mount`` expected to be refused. If it mounts instead (the bug), stop
    it, unmount, and fail."""
    proc = subprocess.Popen(lakefs_cmd(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_mounted(mountpoint):
            pytest.fail(f"{' '.join(map(str, argv))} mounted {mountpoint} instead of refusing")
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        unmount(mountpoint)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def dataset(dataset_path: Path) -> Path:
    lakefs.empty(dataset_path).close()
    return dataset_path


RESERVED = ("%s cannot be given: lakefs sets it itself (the mount table shows lakefs:DATASET, type fuse.lakefs, "
            "by which `lakefs umount` knows the mount)")
BAD_OPTIONS = [
    ("max_readahead=abc", "max_readahead needs a whole number of bytes > 0, got 'abc'"),
    ("max_write=0", "max_write needs a whole number of bytes from 4096 to 1048576, got '0'"),
    # Below 4096 or above 1 MiB, libfuse failed at its first read ("fuse: reading device:
    # Invalid argument"): nothing was mounted, and the mount command exited 0 (found by QA).
    ("max_write=1", "max_write needs a whole number of bytes from 4096 to 1048576, got '1'"),
    ("max_write=3000", "max_write needs a whole number of bytes from 4096 to 1048576, got '3000'"),
    ("max_write=2097152", "max_write needs a whole number of bytes from 4096 to 1048576, got '2097152'"),
    ("max_readahead", "max_readahead needs a value (max_readahead=...)"),
    ("ro=yes", "ro takes no value, got 'ro=yes'"),
    ("xattr=1", "xattr takes no value, got 'xattr=1'"),
    ("entry_timeout=-3", "entry_timeout needs a number of seconds >= 0, got '-3'"),
    ("attr_timeout=soon", "attr_timeout needs a number of seconds >= 0, got 'soon'"),
    ("negative_timeout=nan", "negative_timeout needs a number of seconds >= 0, got 'nan' "
                             "(inf and nan are not durations)"),
    ("refresh_interval=-1", "refresh_interval needs a number of seconds >= 0, got '-1'"),
    ("commit_interval=0", "commit_interval needs a number of seconds > 0, got '0'"),
    ("commit_interval=inf", "commit_interval needs a number of seconds > 0, got 'inf' (inf and nan are not durations)"),
    # `lakefs umount` knows a lakefs mount by them: -o fsname=x made it return before the
    # final commit, -o subtype=x refuse the mount as not lakefs's (found by QA).
    ("fsname=x", RESERVED % "fsname"),
    ("subtype=x,fsname=y", RESERVED % "subtype"),
    ("fsname=", RESERVED % "fsname"),
]


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_bad_option_values_are_one_line_before_mounting(dataset: Path, mountpoint: Path, tmp_path: Path,
                                                        background: bool) -> None:
    for option, message in BAD_OPTIONS:
        mode = ["--log-file", tmp_path / "mount.log"] if background else ["-f"]
        r = attempt_mount("mount", dataset, mountpoint, *mode, "-o", option, mountpoint=mountpoint)
        assert r.returncode == 1, (option, r.stderr)
        assert r.stderr == f"lakefs: error: mount option {message}\n", option
        assert not is_mounted(mountpoint)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_an_option_libfuse_3_refuses_is_one_line_before_mounting(dataset: Path, mountpoint: Path, tmp_path: Path,
                                                                  background: bool) -> None:
    """``-o sync_read`` passed lakefs's check and libfuse 3 refused it while mounting
    ("fuse: unknown option(s)"); ``-o max_read=N`` was dropped without a word (found by QA)."""
    from lakefs.fs.binding import LIBFUSE_MAJOR

    if LIBFUSE_MAJOR < 3:
        pytest.skip("libfuse 2 takes them")
    for option in ("sync_read", "max_read=65536"):
        mode = ["--log-file", tmp_path / "mount.log"] if background else ["-f"]
        r = attempt_mount("mount", dataset, mountpoint, *mode, "-o", option, mountpoint=mountpoint)
        name = option.partition("=")[0]
        assert r.returncode == 1 and r.stderr.startswith(f"lakefs: error: mount option {name} is libfuse 2's"), r.stderr
        assert r.stderr.count("\n") == 1 and "fuse:" not in r.stderr, r.stderr


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_a_dataset_cache_or_log_inside_the_mountpoint_is_refused(tmp_path: Path, mountpoint: Path,
                                                                 background: bool) -> None:
    """Found by QA: `lakefs mount outer/ds outer` hung for good (the mount reached its own
    dataset through itself; SIGTERM did nothing, only kill -9 ended it). So would a log
    file or an object store's chunk cache in the mountpoint. One line, nothing mounted,
    nothing made in the mountpoint."""
    lakefs.empty(mountpoint / "ds").close()  # (under the mount: hidden, and read through it)
    lakefs.empty(tmp_path / "elsewhere").close()
    (tmp_path / "link").symlink_to(mountpoint / "ds")
    (tmp_path / "cache.yaml").write_text(f"storage:\n  cache_dir: {mountpoint / 'cache'}\n")
    log = ["--log-file", tmp_path / "mount.log"] if background else ["-f"]
    hang = "the mount would {} it through itself (and hang)"
    in_mp = f"the mountpoint {mountpoint}: {hang.format('read')}; mount it elsewhere"
    cases = [
        (["mount", mountpoint / "ds", mountpoint, *log], f"the dataset {mountpoint / 'ds'} is inside {in_mp}"),
        (["mount", mountpoint, mountpoint, *log], f"the dataset {mountpoint} is {in_mp}"),
        (["mount", tmp_path / "link", mountpoint, *log],
         f"the dataset {tmp_path / 'link'} ({mountpoint / 'ds'}) is inside {in_mp}"),
        (["mount", tmp_path / "elsewhere", mountpoint, "--log-file", mountpoint / "m.log"],
         f"log file {mountpoint / 'm.log'} is inside the mountpoint {mountpoint}: {hang.format('write')}; "
         "choose one outside it (--log-file, or logging.file in the config)"),
        (["mount", "s3://bucket/ds", mountpoint, "--config", tmp_path / "cache.yaml", *log],
         f"chunk cache {mountpoint / 'cache'} is inside the mountpoint {mountpoint}: {hang.format('read')}; "
         "choose one outside it (storage.cache_dir in the config)"),
    ]
    before = sorted(os.listdir(mountpoint))
    for argv, message in cases:
        r = attempt_mount(*argv, mountpoint=mountpoint)
        assert r.returncode == 1, (argv, r.stderr)
        assert r.stderr == f"lakefs: error: {message}\n", argv
        assert sorted(os.listdir(mountpoint)) == before
    # The default cache (~/.cache/lakefs) in the mountpoint: mounting over a home folder.
    env = {**ENV, "XDG_CACHE_HOME": str(mountpoint / ".cache")}
    proc = subprocess.run(lakefs_cmd("mount", "s3://bucket/ds", mountpoint, *log), capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=30)
    unmount(mountpoint)
    assert proc.returncode == 1 and proc.stderr == (
        f"lakefs: error: chunk cache {mountpoint / '.cache' / 'lakefs'} is inside the mountpoint {mountpoint}: "
        f"{hang.format('read')}; choose one outside it (storage.cache_dir in the config)\n"), proc.stderr


READ_ONLY_HINT = "the dataset's folder is read-only: open it with read_only=True, or mount it with -o ro"


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_a_dataset_in_a_read_only_folder_mounts_read_only_with_a_warning(tmp_path: Path, mountpoint: Path,
                                                                         background: bool) -> None:
    """Found by QA: a dataset on a read-only file system (a read-only bind mount, a
    write-protected disk) failed to mount ("cannot take the writer lock ...: Read-only
    file system"). As mount(8) does, it mounts read-only, with one warning line."""
    with lakefs.empty(tmp_path / "src" / "ds") as ds:
        ds.write_file("a.txt", b"kept\n")
    with read_only_bind(tmp_path / "src", tmp_path / "ro") as ro:
        dataset = ro / "ds"
        warning = (f"lakefs: warning: {dataset} is write-protected (its folder is on a read-only file system), "
                   "mounting read-only\n")
        env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
        try:
            if background:
                r = subprocess.run(lakefs_cmd("mount", dataset, mountpoint), capture_output=True, text=True,
                                   cwd=REPO, env=env, timeout=60)
                assert r.returncode == 0 and r.stderr == warning, r.stderr
                assert is_mounted(mountpoint)
                context = contextlib.nullcontext()
            else:
                context = mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=env)
            with context as m:
                from lakefs.fs.mount import mount_entry

                assert mount_entry(mountpoint).read_only
                assert (mountpoint / "a.txt").read_bytes() == b"kept\n"
                with pytest.raises(OSError) as refused:
                    (mountpoint / "b.txt").write_bytes(b"new\n")
                assert refused.value.errno == errno.EROFS
                if m is not None:
                    eventually(lambda: warning.strip() in m.log(), what="no warning")
                    assert [line for line in m.log().splitlines() if "warning" in line.lower()] == [warning.strip()]
            if background:
                r = subprocess.run(lakefs_cmd("umount", mountpoint), capture_output=True, text=True, env=env,
                                   timeout=60)
                assert r.returncode == 0 and r.stderr == "", r.stderr
        finally:
            unmount(mountpoint)


def test_writing_commands_on_a_read_only_folder_say_so(tmp_path: Path, png_dir: Path, mountpoint: Path) -> None:
    """Found by QA: compact, tensor create and ingest said only "cannot take the writer
    lock ...: Read-only file system". A mount given -o rw insists, as with mount(8)."""
    lakefs.empty(tmp_path / "src" / "ds").close()
    with read_only_bind(tmp_path / "src", tmp_path / "ro") as ro:
        dataset = ro / "ds"
        for argv in (["compact", dataset], ["tensor", "create", dataset, "labels"], ["ingest", png_dir, dataset],
                     ["mount", dataset, mountpoint, "-f", "-o", "rw"]):
            r = attempt_mount(*argv, mountpoint=mountpoint)
            assert r.returncode == 1, (argv, r.stderr)
            assert r.stderr == (f"lakefs: error: cannot take the writer lock {dataset}/locks/writer: Read-only file "
                                f"system; {READ_ONLY_HINT}\n"), argv
        assert run("info", dataset).returncode == 0  # (reading works)


def test_a_missing_mountpoint_is_named_as_missing(dataset: Path, tmp_path: Path) -> None:
    """It said "is not a directory" for a path that does not exist (found by QA)."""
    (tmp_path / "file").write_text("x")
    for where, why in ((tmp_path / "nope", "does not exist (create it with mkdir)"),
                       (tmp_path / "file", "is not a directory")):
        r = run("mount", dataset, where, "-f", timeout=30)
        assert r.returncode == 1 and r.stderr == f"lakefs: error: mountpoint {where} {why}\n", r.stderr
        assert not is_mounted(where)


def test_good_option_values_mount(dataset: Path, mountpoint: Path) -> None:
    opts = "ro,entry_timeout=0.5,attr_timeout=0,max_readahead=131072,refresh_interval=0"
    with mounted(lakefs_cmd("mount", dataset, mountpoint, "-o", opts), mountpoint, env=ENV):
        assert os.listdir(mountpoint) == []


def test_a_config_with_storage_options_mounts_a_local_dataset(dataset: Path, mountpoint: Path,
                                                              tmp_path: Path) -> None:
    """storage.options are for object stores: a local dataset's mount said "local storage
    takes no options" (found by QA)."""
    cfg = tmp_path / "s3.yaml"
    cfg.write_text("storage: {options: {endpoint_url: 'http://127.0.0.1:1'}}\n")
    with mounted(lakefs_cmd("mount", dataset, mountpoint, "--config", cfg), mountpoint, env=ENV):
        (mountpoint / "notes.txt").write_text("x")
    with lakefs.load(dataset, read_only=True) as ds:
        assert list(ds.files) == ["notes.txt"]


@pytest.mark.parametrize("opts, read_only", [("ro,rw", False), ("rw,ro", True), ("ro,rw,ro", True), ("rw", False)])
def test_the_last_of_ro_and_rw_wins(dataset: Path, mountpoint: Path, opts: str, read_only: bool) -> None:
    """mount(8)'s rule, for lakefs and the kernel alike: -o ro,rw gave a mount lakefs
    served read-only that /proc/mounts listed as rw (found by QA)."""
    import errno

    from lakefs.fs.mount import mount_entry

    with mounted(lakefs_cmd("mount", dataset, mountpoint, "-o", opts), mountpoint, env=ENV):
        entry = mount_entry(mountpoint)
        assert entry is not None and entry.read_only == read_only, entry
        try:
            (mountpoint / "x.txt").write_text("x\n")
        except OSError as e:
            assert read_only and e.errno == errno.EROFS, e
        else:
            assert not read_only
            assert (mountpoint / "x.txt").read_text() == "x\n"
    with lakefs.load(dataset, read_only=True) as ds:
        assert ("x.txt" in ds.files) == (not read_only)


def without_fuse_device(argv: list[str]) -> list[str]:
    """``argv`` run in a mount namespace of its own where /dev/fuse is /dev/null: libfuse's
    mount(2) fails ("fuse: mount failed: Invalid argument"), whatever mounted there is
    gone with the namespace."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /dev/null /dev/fuse && exec "$@"', "sh", *argv]


@pytest.fixture
def no_fuse_device() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    probe = subprocess.run(without_fuse_device(["true"]), capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.strip()}")


LIBFUSE_REFUSAL = "fuse: mount failed: Invalid argument"


def test_a_foreground_mount_libfuse_refuses_says_why(dataset: Path, mountpoint: Path, no_fuse_device) -> None:
    """The error said "could not mount MNT: 4" (libfuse's status), its reason only on a
    line of libfuse's above it; and the log then said the mount was unmounted with
    everything committed (found by QA)."""
    r = subprocess.run(without_fuse_device(lakefs_cmd("mount", dataset, mountpoint, "-f")), capture_output=True,
                       text=True, cwd=REPO, env=ENV, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[-1] == f"lakefs: error: could not mount {mountpoint}: {LIBFUSE_REFUSAL}"
    assert f"WARNING lakefs.fuse: {LIBFUSE_REFUSAL}" in r.stderr  # (libfuse's own line, logged)
    assert "unmounted" not in r.stderr and "Traceback" not in r.stderr


def test_a_background_mount_libfuse_refuses_says_why_and_logs_it(dataset: Path, mountpoint: Path, tmp_path: Path,
                                                                   no_fuse_device) -> None:
    """libfuse's reason reached neither the error of a background mount ("could not
    mount MNT: 4") nor its log (found by QA)."""
    log = tmp_path / "mount.log"
    r = subprocess.run(without_fuse_device(lakefs_cmd("mount", dataset, mountpoint, "--log-file", log)),
                       capture_output=True, text=True, cwd=REPO, env=ENV, timeout=60)
    assert r.returncode == 1
    assert r.stderr == f"lakefs: error: could not mount {mountpoint}: {LIBFUSE_REFUSAL}\n"
    text = log.read_text()
    assert f"WARNING lakefs.fuse: {LIBFUSE_REFUSAL}" in text
    assert f"ERROR lakefs.mount: could not mount {mountpoint}: {LIBFUSE_REFUSAL}" in text
    assert "unmounted" not in text and "everything committed" not in text


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_a_mount_whose_libfuse_loop_fails_at_once_exits_1_saying_why(dataset: Path, mountpoint: Path,
                                                                       tmp_path: Path, background: bool) -> None:
    """libfuse answered INIT, then failed its first read of the device ("fuse: reading
    device: Invalid argument": a max_write below the kernel's smallest read buffer,
    given past the option parser here) and returned status 8, taken for a stop by a
    signal: the mount exited 0, never having served, and a background one was reported
    mounted (found by QA)."""
    site = tmp_path / "site"  # (for the background mount's child too: it runs python -m lakefs)
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'tests' / 'fs')!r})\n"
                                           "import unchecked_options_mount\nunchecked_options_mount.install()\n")
    env = {**ENV, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "LAKEFS_TEST_OPTIONS": "max_write=1"}
    log = tmp_path / "mount.log"
    mode = ["--log-file", str(log)] if background else ["-f"]
    try:
        r = subprocess.run(lakefs_cmd("mount", dataset, mountpoint, *mode), capture_output=True, text=True,
                           cwd=REPO, timeout=60, env=env)
    finally:
        unmount(mountpoint)
    assert r.returncode == 1, r.stderr
    reason = "fuse: reading device: Invalid argument"
    assert r.stderr.splitlines()[-1] == f"lakefs: error: the mount at {mountpoint} stopped: {reason}"
    assert f"WARNING lakefs.fuse: {reason}" in (log.read_text() if background else r.stderr)
    assert "Traceback" not in r.stderr


def start_and_kill_mount(dataset: Path, mountpoint: Path, via: Path | None = None, *options: str) -> None:
    """Mount in the foreground (given the path ``via``, a symlink, if set), then kill -9
    the mount process: a dead mount stays behind (stat on it fails with ENOTCONN)."""
    proc = subprocess.Popen(lakefs_cmd("mount", dataset, via or mountpoint, "-f", *options), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mountpoint) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_mounted(mountpoint), "the mount did not come up"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with pytest.raises(OSError) as dead:
        os.stat(mountpoint)
    assert dead.value.errno == 107  # ENOTCONN


def test_a_dead_mount_is_named_by_mount_and_cleared_by_umount(dataset: Path, mountpoint: Path) -> None:
    try:
        start_and_kill_mount(dataset, mountpoint)
        r = run("mount", dataset, mountpoint, "-f", timeout=30)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert f"{mountpoint} is a dead lakefs mount" in r.stderr
        assert f"lakefs umount {mountpoint}" in r.stderr
        r = run("umount", mountpoint, timeout=30)
        # Exit 1, as a failed final commit: what it had not committed, if anything, is lost.
        assert r.returncode == 1, r.stderr
        assert not is_mounted(mountpoint)
        assert r.stderr == (f"lakefs: error: cleared the dead mount at {mountpoint}: its mount process had died "
                            "(kill -9, OOM) without a final commit, so files written through it since its last "
                            f"commit, if any, are not stored (`lakefs fsck {dataset}` checks the rest)\n")
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):  # and it mounts again
            assert os.listdir(mountpoint) == []
        start_and_kill_mount(dataset, mountpoint, None, "-o", "ro")  # (nothing to lose: exit 0)
        r = run("umount", mountpoint, timeout=30)
        assert r.returncode == 0 and r.stderr == (f"lakefs: warning: {mountpoint}: its mount process had died; the "
                                                  "dead mount is cleared (it was read-only: nothing was lost)\n")
        assert not is_mounted(mountpoint)
    finally:
        unmount(mountpoint)



def write_notes(mountpoint: Path) -> None:
    (mountpoint / "notes").mkdir()
    for i in range(20):
        (mountpoint / "notes" / f"n{i:02d}.txt").write_text(f"note {i}\n")


def test_umount_says_when_the_mount_process_died_during_its_final_commit(dataset: Path, mountpoint: Path,
                                                                         tmp_path: Path) -> None:
    """Found by QA: a mount killed (kill -9, OOM) during its final commit, after the
    kernel unmount, lets go of the writer lock as a finished one does: `lakefs umount`
    exited 0 saying nothing, and every file written since the last commit was lost."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, str(REPO / "tests" / "fs" / "slow_stop_mount.py"), "mount", str(dataset),
            str(mountpoint), "-o", "commit_interval=3600"]
    r = kill_during_the_final_commit(argv, mountpoint, gate, env, write_notes, lakefs_cmd("umount", mountpoint))
    assert r.returncode == 1, r.stderr
    assert r.stderr == (f"lakefs: error: unmounted {mountpoint}, but its mount process died before its final "
                        f"commit finished (files written since the last commit are lost; `lakefs fsck {dataset}` "
                        "checks the rest)\n")
    with lakefs.load(dataset, read_only=True) as ds:
        assert "notes" not in ds.tensors  # (lost indeed)
    r = run("umount", mountpoint)
    assert r.returncode == 1 and "not mounted" in r.stderr  # reported once


def test_umount_of_a_path_inside_a_mount_names_the_mount(dataset: Path, mountpoint: Path) -> None:
    """Found by QA: `lakefs umount ./mnt/images` said "./mnt/images is not mounted"."""
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):
            (mountpoint / "images").mkdir()
            r = run("umount", mountpoint / "images")
            assert r.returncode == 1 and r.stderr == (
                f"lakefs: error: {mountpoint / 'images'} is inside the lakefs mount at {mountpoint}:"
                f" lakefs umount {mountpoint}\n"), r.stderr
            assert is_mounted(mountpoint)
    finally:
        unmount(mountpoint)


def test_umount_refuses_what_is_not_a_lakefs_mount(tmp_path: Path, mountpoint: Path) -> None:
    r = run("umount", tmp_path / "nothing-here")
    assert r.returncode == 1 and r.stderr == f"lakefs: error: {tmp_path / 'nothing-here'} is not mounted\n"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "none", str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        r = run("umount", mountpoint)
        assert r.returncode == 1
        assert r.stderr == (f"lakefs: error: {mountpoint} is a tmpfs mount (none), not a lakefs mount; "
                            f"unmount it with umount(8)\n")
        assert is_mounted(mountpoint)
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)
    assert not is_mounted(mountpoint)


def test_mounting_over_files_warns_once(dataset: Path, mountpoint: Path, tmp_path: Path) -> None:
    (mountpoint / "keep.txt").write_text("mine\n")
    (mountpoint / "sub").mkdir()
    warning = (f"lakefs: warning: {mountpoint} is not empty: its 2 entries are hidden while the dataset "
               f"is mounted there")
    try:  # background: the warning comes before the command returns
        r = run("mount", dataset, mountpoint, "--log-file", tmp_path / "mount.log", timeout=60)
        assert r.returncode == 0, r.stderr
        assert is_mounted(mountpoint)
        assert r.stderr.splitlines() == [warning]
    finally:
        u = run("umount", mountpoint, timeout=60)
        unmount(mountpoint)
    assert u.returncode == 0, u.stderr
    assert sorted(os.listdir(mountpoint)) == ["keep.txt", "sub"]
    with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV) as m:  # foreground
        deadline = time.monotonic() + 10
        while warning not in m.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [line for line in m.log().splitlines() if "warning" in line.lower()] == [warning]
        assert os.listdir(mountpoint) == []
    r = run("mount", dataset, tmp_path / "empty-dir-missing", "-f")  # an error is not preceded by it
    assert "warning" not in r.stderr


def test_umount_finds_a_foreground_object_store_mount_started_with_a_relative_path(tmp_path: Path) -> None:
    """Found by review: only an absolute mountpoint in the mount's argv was matched, so
    umount neither waited for such a mount nor saw its final commit fail. A stand-in
    process with the argv of `lakefs mount -f s3://bucket/ds ./mnt` (libfuse moves the
    real one to /, so its relative path cannot be resolved)."""
    from lakefs.cli.mount import _mount_pid

    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "lakefs", "mount", "-f",
                                 "s3://bucket/ds", "./mnt"], cwd="/")
    try:
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = _mount_pid(str(tmp_path / "mnt"), "s3://bucket/ds")
            time.sleep(0.05)
        assert found == stand_in.pid
        assert _mount_pid(str(tmp_path / "other"), "s3://bucket/ds") is None
        assert _mount_pid(str(tmp_path / "mnt"), "s3://bucket/elsewhere") is None
    finally:
        stand_in.kill()
        stand_in.wait()


def test_fsck_repair_of_a_mountpoint_touches_nothing(dataset: Path, mountpoint: Path) -> None:
    """The mountpoint given instead of the dataset: no writer lock may be taken there (it
    made a `locks/` tensor in the mounted dataset), and a dead mount is named as such."""
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):
            r = run("fsck", "--repair", mountpoint)
            assert r.returncode == 1 and r.stderr == (
                f"lakefs: error: {mountpoint} is a lakefs mountpoint, not a dataset: check the mounted "
                f"dataset itself with `lakefs fsck {dataset}`\n")
            assert os.listdir(mountpoint) == []
        start_and_kill_mount(dataset, mountpoint)
        r = run("fsck", "--repair", mountpoint, timeout=30)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert f"{mountpoint} is a dead lakefs mount" in r.stderr and f"lakefs umount {mountpoint}" in r.stderr
    finally:
        unmount(mountpoint)
    assert sorted(os.listdir(dataset)) == ["HEAD", "lakefs.json", "locks", "manifests"]
    assert os.listdir(dataset / "locks") == ["writer"]
    with lakefs.load(dataset, read_only=True) as ds:
        assert ds.tensors == {}


def test_a_mount_process_tunes_its_garbage_collector():
    """(In a child: the test process keeps Python's defaults.) What the mount set up is
    frozen out of the collector and young collections are rarer (lakefs.fs.mount)."""
    code = ("import gc; from lakefs.fs.mount import tune_gc, GC_YOUNG_THRESHOLD; before = gc.get_threshold(); "
            "tune_gc(); print(before[0], gc.get_threshold()[0] == GC_YOUNG_THRESHOLD, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=ENV,
                         timeout=60, check=True).stdout.split()
    assert out == ["700", "True", "True"]


def test_umount_of_a_busy_mount_says_why_and_sigterm_then_stops_it(dataset: Path, mountpoint: Path,
                                                                   photos: list[Path], tmp_path: Path) -> None:
    """Found by stopping mounts while files were open: `lakefs umount` answered only
    fusermount3's "Device or resource busy". It names the cause and the way out now, the
    mount goes on serving, and SIGTERM then stops it, committing every closed file."""
    env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
    with mounted(lakefs_cmd("mount", dataset, mountpoint, "-o", "commit_interval=3600"), mountpoint,
                 env=env, expected_errors=[r"/blobs/open\.bin: not stored: still being written"],
                 expect_exit_code=1) as m:  # (1: a file was not stored)
        (mountpoint / "images").mkdir()
        (mountpoint / "images" / "a.jpg").write_bytes(photos[0].read_bytes())
        (mountpoint / "blobs").mkdir()
        with open(mountpoint / "blobs" / "open.bin", "wb") as f:
            f.write(b"half")
            f.flush()
            r = run("umount", mountpoint, timeout=60)
            assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
            assert f"{mountpoint} is busy" in r.stderr and "fuser -vm" in r.stderr and "SIGTERM" in r.stderr
            assert is_mounted(mountpoint) and os.listdir(mountpoint / "images") == ["a.jpg"]
            os.killpg(m.process.pid, signal.SIGTERM)
            assert m.process.wait(timeout=60) == 1
            assert not is_mounted(mountpoint)
            with pytest.raises(OSError):
                f.close()
        assert "stopped by a signal" in m.log()
        # Found by review: the last line said "everything committed" after that error.
        last = m.log().strip().splitlines()[-1]
        assert "everything committed except 1 file(s) not stored" in last and "/blobs/open.bin" in last, last
    # What that mount could not store is not reported by the umount of the next one.
    try:
        r = subprocess.run(lakefs_cmd("mount", dataset, mountpoint), capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        u = subprocess.run(lakefs_cmd("umount", mountpoint), capture_output=True, text=True, env=env, timeout=60)
        unmount(mountpoint)
    assert u.returncode == 0, u.stderr
    with lakefs.load(dataset, read_only=True) as ds:
        assert ds["images"]["a"].tobytes() == photos[0].read_bytes()
        assert "blobs" not in ds.tensors or ds["blobs"].num_samples == 0


def test_a_mountpoint_is_found_through_symlinks_without_touching_it(tmp_path: Path) -> None:
    """The mount table has the path with every symlink resolved (found by use:
    `lakefs umount LINK` said "not mounted"); the mountpoint itself is only read as a link."""
    from lakefs.fs.mount import table_path

    real = tmp_path / "a" / "mnt"
    real.mkdir(parents=True)
    (tmp_path / "up").symlink_to("a")
    (tmp_path / "link").symlink_to("a/mnt")
    (tmp_path / "chain").symlink_to(tmp_path / "link")
    (tmp_path / "slash").symlink_to("up/mnt/")
    (tmp_path / "dotdot").symlink_to("up/mnt/..")  # (.. of the symlink's target: a)
    for path in ["link", "link/", "chain", "chain/.", "slash", "up/mnt", "up/../a/mnt", real]:
        assert table_path(tmp_path / path) == str(real), path
    assert table_path(tmp_path / "dotdot") == str(tmp_path / "a")
    assert table_path(tmp_path / "missing") == str(tmp_path / "missing")
    assert table_path("/") == "/"


def test_an_empty_not_stored_record_is_reported_not_taken_for_none(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a mount records the files it could not store only when there are
    some; on a full disk the record is created but nothing is written in it, and `lakefs
    umount` read that empty record as "none" and exited 0: the case it is there for."""
    from lakefs.fs.mount import not_stored_path, take_not_stored

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    record = Path(not_stored_path(str(mnt)))
    record.parent.mkdir(parents=True)
    for damaged in ("", '["/a.bin", "/b', "{}", "[]", "[1]"):  # (a mount writes one only for some files)
        record.write_text(damaged)
        assert take_not_stored(str(mnt)) is None, damaged  # damaged: no count nor names made up
        assert take_not_stored(str(mnt)) == []  # (reported once; none recorded)
    record.write_text('["/a.bin"]')
    assert take_not_stored(str(mnt)) == ["/a.bin"]


def test_umount_mount_and_fsck_find_a_mount_through_a_symlink(dataset: Path, mountpoint: Path,
                                                              tmp_path: Path) -> None:
    link = tmp_path / "link-to-mnt"
    link.symlink_to(mountpoint)
    env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
    try:
        r = subprocess.run(lakefs_cmd("mount", dataset, link), capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert is_mounted(mountpoint)
        (link / "notes.txt").write_text("kept\n")
        r = run("mount", dataset, link, "-f", timeout=30)
        assert r.returncode == 1 and f"{mountpoint} is already mounted" in r.stderr, r.stderr
        r = run("fsck", link)
        assert r.returncode == 1 and f"{link} is a lakefs mountpoint, not a dataset" in r.stderr, r.stderr
        r = subprocess.run(lakefs_cmd("umount", f"{link}/"), capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert not is_mounted(mountpoint)
        # The mount's log is found by either name.
        logs = list((tmp_path / "state" / "lakefs").glob("mount-mnt-*.log"))
        assert len(logs) == 1 and f"unmounted {mountpoint}; everything committed" in logs[0].read_text()
        # A dead mount behind a symlink is cleared through it too.
        start_and_kill_mount(dataset, mountpoint, via=link)
        r = run("umount", link, timeout=30)
        assert r.returncode == 1 and f"cleared the dead mount at {mountpoint}" in r.stderr, r.stderr
        assert not is_mounted(mountpoint)
    finally:
        unmount(mountpoint)
    with lakefs.load(dataset, read_only=True) as ds:
        assert ds.read_file("notes.txt") == b"kept\n"


def test_finding_a_wedged_mount_through_a_symlink_does_not_hang(dataset: Path, mountpoint: Path,
                                                                tmp_path: Path) -> None:
    """A stat of a mount whose process is stopped waits for it; the lookup must not."""
    link = tmp_path / "link-to-mnt"
    link.symlink_to(mountpoint)
    lookup = ("import sys; from lakefs.fs.mount import mount_entry; "
              "print(mount_entry(sys.argv[1]).target, mount_entry(sys.argv[1] + '/').target)")
    with mounted(lakefs_cmd("mount", dataset, mountpoint, "-o", "attr_timeout=0"), mountpoint, env=ENV) as m:
        os.killpg(m.process.pid, signal.SIGSTOP)
        try:
            r = subprocess.run([sys.executable, "-c", lookup, str(link)], capture_output=True, text=True,
                               env=ENV, timeout=60)
        finally:
            os.killpg(m.process.pid, signal.SIGCONT)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(mountpoint)] * 2


def test_every_dataset_command_names_a_mountpoint_given_for_its_dataset(dataset: Path, mountpoint: Path,
                                                                        tmp_path: Path) -> None:
    """Only fsck knew a mountpoint from a dataset: `lakefs info ./mnt` said "no lakefs
    dataset", `lakefs ingest SRC ./mnt` "not empty and holds no lakefs dataset", and on a
    dead mount every command "read 'lakefs.json': Transport endpoint is not connected"."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json").write_text("{}")
    live = f"lakefs: error: {mountpoint} is a lakefs mountpoint, not a dataset: give the mounted dataset itself " \
           f"({dataset})\n"
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):
            for argv in (["info", mountpoint], ["ls", mountpoint], ["ingest", src, mountpoint],
                         ["export", mountpoint, tmp_path / "out"]):
                r = run(*argv)
                assert r.returncode == 1 and r.stderr == live, (argv, r.stderr)
            assert os.listdir(mountpoint) == [] and not (tmp_path / "out").exists()
        start_and_kill_mount(dataset, mountpoint)
        r = run("info", mountpoint, timeout=30)
        assert r.returncode == 1 and r.stderr == (
            f"lakefs: error: {mountpoint} is a dead lakefs mount (its mount process is gone), not a dataset: "
            f"clear it with `lakefs umount {mountpoint}`; the dataset itself is {dataset}\n")
        r = run("ingest", mountpoint, tmp_path / "ds", timeout=30)
        assert r.returncode == 1 and r.stderr == (
            f"lakefs: error: source folder {mountpoint}: Transport endpoint is not connected\n")
    finally:
        unmount(mountpoint)


def test_mount_names_a_mountpoint_given_for_its_dataset(dataset: Path, mountpoint: Path, tmp_path: Path) -> None:
    """Found in review: `lakefs mount ./mnt ./other` (the arguments of a mount already up,
    swapped or mistyped) was not refused as the other commands are: the second mount
    created a dataset of its own inside the mounted one (lakefs.json, HEAD, manifests/ and
    locks/ stored there as plain files) and mounted it."""
    other = tmp_path / "other"
    other.mkdir()
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):
            r = attempt_mount("mount", mountpoint, other, mountpoint=other)
            assert r.returncode == 1 and r.stderr == (
                f"lakefs: error: {mountpoint} is a lakefs mountpoint, not a dataset: give the mounted dataset "
                f"itself ({dataset})\n"), r.stderr
            assert os.listdir(mountpoint) == []
        start_and_kill_mount(dataset, mountpoint)
        r = attempt_mount("mount", mountpoint, other, mountpoint=other)
        assert r.returncode == 1 and f"{mountpoint} is a dead lakefs mount" in r.stderr, r.stderr
    finally:
        unmount(mountpoint)
        unmount(other)


def test_mount_refuses_a_missing_dataset_whose_parent_folder_is_missing(mountpoint: Path, tmp_path: Path) -> None:
    """A writable mount creates a missing dataset; a typo in its parent folders made them
    all and mounted an empty tree, as `lakefs create` did (both refuse now)."""
    where = tmp_path / "typo" / "ds"
    for mode in (["-f"], ["--log-file", tmp_path / "mount.log"]):
        r = attempt_mount("mount", where, mountpoint, *mode, mountpoint=mountpoint)
        assert r.returncode == 1 and r.stderr == (
            f"lakefs: error: cannot create the dataset {where}: its parent folder {where.parent} does not exist "
            "(check the path, or create the folder first with mkdir -p)\n"), r.stderr
        assert not (tmp_path / "typo").exists()


def test_an_empty_mountpoint_or_dataset_path_is_refused(dataset: Path, mountpoint: Path, tmp_path: Path) -> None:
    """`lakefs mount DS ''` mounted DS over the working directory (os.path.join(cwd, '')),
    `lakefs mount '' MNT` created a dataset there, `lakefs umount ''` unmounted it."""
    work = tmp_path / "work"
    work.mkdir()
    cases = [
        (["mount", dataset, ""], "the mountpoint is an empty path; name a folder (. for the current one)"),
        (["mount", dataset, "", "-f"], "the mountpoint is an empty path; name a folder (. for the current one)"),
        (["mount", "", mountpoint], "the dataset is an empty path; name one (. for the current folder)"),
        (["mount", dataset, mountpoint, "--log-file", ""], "--log-file is an empty path; name a file"),
        (["umount", ""], "the mountpoint is an empty path; name a folder (. for the current one)"),
    ]
    for argv, message in cases:
        try:
            r = subprocess.run(lakefs_cmd(*argv), capture_output=True, text=True, cwd=work, env=ENV, timeout=10)
            assert r.returncode == 1 and r.stderr == f"lakefs: error: {message}\n", (argv, r.stderr)
            assert not is_mounted(work) and not is_mounted(mountpoint), argv
        finally:
            for mp in (work, mountpoint):
                if is_mounted(mp):
                    unmount(mp)
        assert os.listdir(work) == [], argv


def test_a_path_inside_a_mount_is_named_with_its_mount_and_dataset(dataset: Path, mountpoint: Path,
                                                                   tmp_path: Path) -> None:
    """Only the mountpoint itself was recognised: `lakefs ls ./mnt/images` and `lakefs info
    ./mnt/sub` said "no lakefs dataset at ...", and `lakefs ingest SRC ./mnt/new` stored a
    dataset's lakefs.json, HEAD and locks/ as files inside the mounted one."""
    with lakefs.load(dataset) as ds:
        ds.create_tensor("images", htype="text")
        ds["images"].write_file("a.txt", b"a")
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.txt").write_text("b")
    at = f"is inside the lakefs mount at {mountpoint} of {dataset}"
    give = f"not a dataset: give the mounted dataset itself ({dataset})"
    cases = [
        (["ls", mountpoint / "images"], f"{at}, not a dataset: list it with `lakefs ls {dataset}/images`"),
        (["ls", "-l", f"{mountpoint}/images/a.txt"],
         f"{at}, not a dataset: list it with `lakefs ls {dataset}/images/a.txt`"),
        (["info", mountpoint / "images"], f"{at}, {give}"),
        (["info", mountpoint / "sub"], f"{at}, {give}"),  # (missing in the mount too)
        (["tensor", "list", mountpoint / "images"], f"{at}, {give}"),
        (["compact", mountpoint / "images"], f"{at}, {give}"),
        (["tensor", "create", mountpoint / "images", "t"], f"{at}, {give} and the tensor's path in it as NAME"),
        (["export", mountpoint / "images", tmp_path / "out"], f"{at}, {give}; --tensor NAME picks tensors in it"),
        (["fsck", mountpoint / "images"],
         f"{at}, not a dataset: check the mounted dataset itself with `lakefs fsck {dataset}`"),
        (["create", mountpoint / "new"], f"{at}: a dataset is not stored in a mount; give a path outside it"),
        (["ingest", src, mountpoint / "new"],
         f"{at}: ingest into the mounted dataset itself ({dataset}), or into a new one outside the mount"),
    ]
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint), mountpoint, env=ENV):
            for argv, message in cases:
                path = next(a for a in argv[1:] if str(a).startswith(str(mountpoint)))
                r = run(*argv)
                assert r.returncode == 1 and r.stderr == f"lakefs: error: {path} {message}\n", (argv, r.stderr)
            other = tmp_path / "other"
            other.mkdir()
            r = attempt_mount("mount", mountpoint / "images", other, "-o", "ro", mountpoint=other)
            assert r.returncode == 1 and r.stderr == f"lakefs: error: {mountpoint / 'images'} {at}, {give}\n"
            assert sorted(os.listdir(mountpoint)) == ["images"] and os.listdir(mountpoint / "images") == ["a.txt"]
            assert not (tmp_path / "out").exists()
            r = run("ls", dataset / "images")  # the dataset's own path still lists
            assert r.returncode == 0 and r.stdout == "a.txt\n"
        start_and_kill_mount(dataset, mountpoint)
        r = run("info", mountpoint / "images", timeout=30)
        assert r.returncode == 1 and r.stderr == (
            f"lakefs: error: {mountpoint / 'images'} is inside a dead lakefs mount at {mountpoint} (its mount "
            f"process is gone), not a dataset: clear it with `lakefs umount {mountpoint}`; the dataset itself is "
            f"{dataset}\n")
    finally:
        unmount(mountpoint)
    with lakefs.load(dataset, read_only=True) as ds:
        assert list(ds.tensors) == ["images"] and ds["images"].num_samples == 1


def test_log_file_expands_the_home_folder(monkeypatch, tmp_path: Path) -> None:
    """``--log-file=~/x.log`` (no shell expands a ``~`` after ``=``) made a folder named ``~``."""
    from lakefs.cli.main import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["mount", "ds", "mnt", "--log-file=~/x.log"])
    assert args.log_file == str(tmp_path / "x.log")


def test_the_api_names_a_mountpoint_given_for_a_dataset_as_the_cli_does(dataset: Path, mountpoint: Path) -> None:
    """``lakefs.load("./mnt")`` said "no lakefs dataset at ./mnt" where the CLI named the
    mount, and ``lakefs.empty("./mnt/new")`` created a dataset as plain files in the mounted
    one (found by QA)."""
    from lakefs.errors import DatasetNotFoundError

    with lakefs.load(dataset) as ds:
        ds.create_tensor("images", htype="text")
        ds["images"].write_file("a.txt", b"a")
    at = f"{mountpoint / 'images'} is inside the lakefs mount at {mountpoint} of {dataset}"
    new = f"{mountpoint / 'new'} is inside the lakefs mount at {mountpoint} of {dataset}: a dataset is not stored " \
          "in a mount; give a path outside it"
    try:
        with mounted(lakefs_cmd("mount", dataset, mountpoint, "-o", "ro"), mountpoint, env=ENV):
            cases = [
                (lambda: lakefs.load(mountpoint), ["info", mountpoint],
                 f"{mountpoint} is a lakefs mountpoint, not a dataset: give the mounted dataset itself ({dataset})"),
                (lambda: lakefs.load(str(mountpoint / "images"), read_only=True), ["info", mountpoint / "images"],
                 f"{at}, not a dataset: give the mounted dataset itself ({dataset})"),
                (lambda: lakefs.empty(mountpoint / "new"), ["create", mountpoint / "new"], new),
                (lambda: lakefs.dataset(mountpoint / "new"), ["create", mountpoint / "new"], new),
                (lambda: lakefs.empty(mountpoint, overwrite=True), ["create", mountpoint],
                 f"{mountpoint} is a lakefs mountpoint, not a dataset: a dataset is not stored in a mount; give a "
                 f"path outside it (the one mounted there is {dataset})"),
            ]
            for api, argv, message in cases:
                with pytest.raises(DatasetNotFoundError) as refused:
                    api()
                assert str(refused.value) == message
                r = run(*argv)
                assert r.returncode == 1 and r.stderr == f"lakefs: error: {message}\n", (argv, r.stderr)
            assert not lakefs.exists(mountpoint)
            assert sorted(os.listdir(mountpoint)) == ["images"] and os.listdir(mountpoint / "images") == ["a.txt"]
            with lakefs.load(dataset, read_only=True) as ro:  # (the dataset itself, beside its mount)
                assert ro["images"].num_samples == 1
        start_and_kill_mount(dataset, mountpoint)
        with pytest.raises(DatasetNotFoundError, match=f"{mountpoint} is a dead lakefs mount"):
            lakefs.load(mountpoint, read_only=True)
    finally:
        unmount(mountpoint)
