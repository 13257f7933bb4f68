"""The shared harness for tests that really mount (in the style of ratarmount's tests/test_cli.py).

    from mounting import mounted

    with mounted([sys.executable, "scripts/bare_memfs.py", str(mnt)], mnt) as m:
        ...               # the filesystem is mounted here
    # unmounted, the process has exited 0 and logged no Traceback/ERROR

The mount command runs in the foreground as a subprocess, its output going to a log file
(never a pipe: a chatty filesystem must not block on a full pipe). Every exit path
unmounts: tests must never leave a stale mount behind (``ls`` of a dead FUSE mount gives
ENOTCONN and breaks pytest's own tmp cleanup).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Log lines that fail a test unless matched by an ``expected_errors`` pattern.
ERROR_MARKERS = ("Traceback", "ERROR", "CRITICAL")


@dataclass
class Mount:
    """A running mount: the process, its mountpoint and its log so far."""

    process: subprocess.Popen[bytes]
    mountpoint: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def eventually(check, seconds: float = 10.0, what: str = "the kernel still shows the refused writes") -> None:
    """Poll ``check`` until it holds (never a fixed sleep). The mount has the kernel forget
    refused writes and the names of refused new files from its own thread, just after the
    refusal (lakefs.fs.mount.KernelForgetter): until then a stat may still be answered
    from the kernel's cache."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    """True if ``mountpoint`` is listed in /proc/self/mounts (never touches the mount).

    ``os.path.ismount`` stats the path, which hangs on a wedged filesystem and fails on a
    dead one; the mount table answers either way.
    """
    target = os.path.abspath(mountpoint)
    return target in mounted_paths()


def mounted_paths(fstype_prefix: str = "") -> list[str]:
    """Mountpoints from /proc/self/mounts, optionally only those of a type prefix ("fuse")."""
    paths = []
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 3 and fields[2].startswith(fstype_prefix):
                # mount(8) escapes space, tab, newline and backslash as octal.
                paths.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1]))
    return paths


def _fusermount() -> list[str]:
    for name in ("fusermount3", "fusermount"):
        path = shutil.which(name)
        if path:
            return [path]
    return []


def unmount(mountpoint: str | os.PathLike[str], *, lazy_fallback: bool = True) -> bool:
    """Unmount a FUSE mount; if it is busy, detach it lazily. True if it is gone.

    Safe to call on something that is not mounted (returns True).
    """
    target = os.path.abspath(mountpoint)
    if not is_mounted(target):
        return True
    tool = _fusermount()
    attempts = [[*tool, "-u", target]] if tool else [["umount", target]]
    if lazy_fallback:
        attempts.append([*tool, "-u", "-z", target] if tool else ["umount", "-l", target])
    for cmd in attempts:
        for _ in range(3):  # "Device or resource busy" right after a close is transient
            subprocess.run(cmd, capture_output=True, timeout=30, check=False)
            if not is_mounted(target):
                return True
            time.sleep(0.2)
    return not is_mounted(target)


def _error_lines(log: str, expected_errors: Sequence[str]) -> list[str]:
    patterns = [re.compile(p) for p in expected_errors]
    bad = []
    for line in log.splitlines():
        if any(marker in line for marker in ERROR_MARKERS) and not any(
            p.search(line) for p in patterns
        ):
            bad.append(line)
    return bad


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the process; SIGTERM then SIGKILL if it does not exit."""
    try:
        process.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def mounted(
    argv: list[str],
    mountpoint: str | os.PathLike[str],
    *,
    timeout: float = 20,
    env: dict[str, str] | None = None,
    foreground_flag: str | None = "-f",
    expected_errors: Sequence[str] = (),
    expect_exit_code: int = 0,
) -> Iterator[Mount]:
    """Run a mount command in the foreground, yield once mounted, always unmount.

    ``argv`` is the whole command; ``foreground_flag`` is appended unless already in it
    (``None`` to leave argv alone). Fails the test (``pytest.fail``) with the process's
    output when the mount does not appear within ``timeout`` seconds or the process exits
    first, when it does not exit after the unmount, when it exits with another code than
    ``expect_exit_code``, or when it logged a Traceback/ERROR/CRITICAL line not matched by
    one of the ``expected_errors`` regexes. If the body raised, that exception propagates
    (with the mount log printed to stderr) instead.
    """
    target = Path(os.path.abspath(mountpoint))
    cmd = list(argv)
    if foreground_flag and foreground_flag not in cmd:
        cmd.append(foreground_flag)
    if is_mounted(target):
        pytest.fail(f"{target} is already a mountpoint before mounting")
    fd, log_name = tempfile.mkstemp(prefix="mount-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: killable as a whole
        )
    mount = Mount(process, target, log_path)
    body_ok = False
    try:
        _wait_until_mounted(mount, timeout)  # fails with the log itself
        try:
            yield mount
        except BaseException:
            sys.stderr.write(f"--- log of {' '.join(cmd)} ---\n{mount.log()}\n")
            raise
        body_ok = True
    finally:
        problems = []
        if not unmount(target):
            problems.append(f"could not unmount {target}")
        _stop(process, timeout=10)
        if process.returncode is None:
            problems.append(f"mount process {process.pid} did not exit")
        log = mount.log()
        log_path.unlink(missing_ok=True)
        if body_ok:
            if process.returncode not in (None, expect_exit_code):
                problems.append(f"mount process exited with {process.returncode}")
            problems += [f"logged: {line}" for line in _error_lines(log, expected_errors)]
            if problems:
                pytest.fail(
                    "mount of {} failed after use:\n  {}\n--- log ---\n{}".format(
                        target, "\n  ".join(problems), log
                    )
                )


def _wait_until_mounted(mount: Mount, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if is_mounted(mount.mountpoint):
            return
        code = mount.process.poll()
        if code is not None:
            pytest.fail(
                f"mount command exited with {code} before {mount.mountpoint} was mounted:\n"
                f"{mount.log()}"
            )
        if time.monotonic() > deadline:
            _stop(mount.process, timeout=0)
            pytest.fail(
                f"{mount.mountpoint} not mounted within {timeout} s:\n{mount.log()}"
            )
        time.sleep(0.05)


def kill_during_the_final_commit(argv: list[str], mountpoint: Path, gate: Path, env: dict[str, str],
                                 fill: Callable[[Path], None],
                                 umount_argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Mount with ``argv`` (tests/fs/slow_stop_mount.py, whose final commit waits at
    ``gate``), ``fill`` it, run ``umount_argv`` (``lakefs umount``), and kill -9 the
    mount process while its final commit runs, after the kernel unmount (as an OOM kill
    may); what the umount command said."""
    with mounted(argv, mountpoint, env={**env, "LAKEFS_TEST_GATE": str(gate)},
                 expect_exit_code=-signal.SIGKILL) as m:
        fill(mountpoint)
        umount = subprocess.Popen(umount_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            eventually(lambda: (gate / "entered").exists(), 30, what="the final commit did not begin")
            assert not is_mounted(mountpoint)  # (the kernel unmount is done)
            os.kill(m.process.pid, signal.SIGKILL)
            m.process.wait(timeout=30)
            out, err = umount.communicate(timeout=60)
        finally:
            if umount.poll() is None:
                umount.kill()
                umount.wait()
    return subprocess.CompletedProcess(umount.args, umount.returncode, out, err)


@contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``target`` (a bind mount remounted ro: writes there get
    EROFS, as on a read-only disk); unmounted on the way out. Skips without root."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, capture_output=True)
        yield target
    finally:
        for _ in range(30):  # (busy while a process that read it is still exiting)
            if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextmanager
def small_tmpfs_at(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` ("8m") mounted at ``path``: a disk that fills up (ENOSPC
    from the kernel, not a fault of our own); unmounted on the way out. Skips where no
    tmpfs can be mounted (no root)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
