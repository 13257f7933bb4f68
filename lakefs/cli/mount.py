"""``lakefs mount`` and ``lakefs umount``.

Without ``-f`` the mount runs in a detached child (``lakefs mount -f`` re-executed) and
the command returns once the filesystem is mounted, as mount(8) users expect; the
child reports readiness and its error (``1``, ``!message``) through a pipe, then logs to
a file. ``-f`` stays in the foreground logging to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from lakefs.dataset.names import printable
from lakefs.errors import BusyError, ConfigError, LakeFSError, message_of

if TYPE_CHECKING:
    from lakefs.config import Config
    from lakefs.fs.mount import LibfuseOutput, MountOptions

READY_TIMEOUT = 60.0
PROBE_TIMEOUT = 10.0  # for a background mount's first answer (a slower one is taken as serving)
UMOUNT_WAIT = 120.0
NOT_STORED_NAMED = 5  # files `lakefs umount` names of those a mount could not store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mount", help="mount a dataset as a filesystem",
                       description="Mount DATASET (a path or URL; created if missing unless -o ro, in a folder "
                                   "that exists) at MOUNTPOINT.")
    p.add_argument("dataset")
    p.add_argument("mountpoint")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground, log to stderr")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                   help="comma-separated mount options (README.md, 'Mount options', says what each does). "
                        "lakefs's: ro, rw, commit_interval=S, refresh_interval=S, threads, nothreads, xattr, "
                        "noxattr, snapshot_opens. libfuse's and the kernel's: allow_other, allow_root, "
                        "default_permissions, attr_timeout=S, entry_timeout=S, negative_timeout=S, auto_cache, "
                        "noauto_cache, kernel_cache, max_write=BYTES, max_readahead=BYTES, auto_unmount, debug, "
                        "dev, nodev, suid, nosuid, exec, noexec, atime, noatime. libfuse 2 only: max_read=BYTES, "
                        "async_read, sync_read")
    p.add_argument("--config", help="YAML settings (see config.example.yaml)")
    p.add_argument("--log-file", type=os.path.expanduser,  # (no shell expands --log-file=~/x)
                   help="log file of a background mount")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_mount)

    u = sub.add_parser("umount", help="unmount a lakefs mount (commits everything first)")
    u.add_argument("mountpoint")
    u.set_defaults(func=cmd_umount)


def _log_file(args: argparse.Namespace, configured: str | None) -> str:
    from lakefs.fs.mount import state_path, table_path

    if args.log_file or configured:
        return os.path.abspath(args.log_file or configured)
    return state_path(args.mountpoint, f"mount-{os.path.basename(table_path(args.mountpoint))}") + ".log"


def _writable_log(path: str) -> str:
    """``path``, its directory made and the file opened for appending once: a log file
    that cannot be written is a one-line error naming it, before anything is mounted."""
    path = os.path.abspath(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as e:
        raise ConfigError(f"log file {path}: {e.strerror or e}") from None
    return path


def cmd_mount(args: argparse.Namespace) -> int:
    from lakefs.cli.tools import refuse_a_missing_parent
    from lakefs.fs.mount import (
        LibfuseOutput,
        mount_cache_dir,
        mount_entry,
        parse_options,
        refuse_what_is_inside,
        table_path,
        write_protected,
    )

    config = args.settings
    options = parse_options(",".join(args.options))
    log_file = _log_file(args, config.log_file) if not args.foreground else args.log_file
    if mount_entry(args.mountpoint) is None:  # (else mounting fails with its own error, never a stat of it)
        refuse_what_is_inside(table_path(args.mountpoint), args.dataset,
                              cache_dir=mount_cache_dir(args.dataset, config), log_file=log_file)
    if not options.get("ro") and not options.get("rw") and (why := write_protected(args.dataset)):
        print(f"lakefs: warning: {why}", file=sys.stderr, flush=True)  # (before the child's, which runs -o ro)
        options["ro"] = True
        args.options.append("ro")
    if not options.get("ro"):  # (the dataset is created when missing)
        refuse_a_missing_parent(args.dataset)
    covered = _covered_entries(args.mountpoint)
    if not args.foreground:
        code = _spawn_background(args, log_file)
        _warn_covered(args.mountpoint, covered)
        return code
    if args.ready_fd is not None:  # (not to libfuse's fusermount3, which may outlive us: see _spawn_background)
        os.set_inheritable(args.ready_fd, False)
    output = LibfuseOutput()  # libfuse's lines: logged, and the reason of a failure
    output.start()
    try:
        return _serve(args, config, options, covered, output)
    except (LakeFSError, OSError) as e:
        if args.ready_fd is not None:  # the background parent's error line, also after ready
            with contextlib.suppress(OSError):  # (it stopped listening: the log has it)
                os.write(args.ready_fd, b"!" + message_of(e).encode(errors="replace"))
        raise
    finally:
        output.stop()


def _serve(args: argparse.Namespace, config: Config, options: MountOptions, covered: int,
           output: LibfuseOutput) -> int:
    """``lakefs mount -f``: log as asked, mount, serve until unmounted."""
    from lakefs.fs.mount import run_mount

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if args.debug else config.log_level)
    if args.log_file:
        handler: logging.Handler = logging.FileHandler(_writable_log(args.log_file))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s lakefs %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]

    def on_ready() -> None:
        if args.ready_fd is None:
            _warn_covered(args.mountpoint, covered)  # else the background parent warns
        else:
            if covered:  # for the log file
                logging.getLogger("lakefs.mount").warning("%s is not empty: %d entries are hidden while mounted",
                                                          os.path.abspath(args.mountpoint), covered)
            os.write(args.ready_fd, b"1")  # (kept open: an error just after is said there too)
            # The parent stops reading our stderr now: Python's own output goes to the log.
            log_fd = os.open(args.log_file or os.devnull, os.O_WRONLY | os.O_APPEND)
            output.send_stderr_to(log_fd)
            os.close(log_fd)

    try:
        lost = run_mount(args.dataset, args.mountpoint, config=config, options=options, on_ready=on_ready,
                         output=output)
    except LakeFSError as e:
        if args.log_file:  # (else it is the one line on stderr)
            logging.getLogger("lakefs.mount").error("%s", message_of(e))
        raise
    # Exit 1 when files were not stored (its last log line names them), as `lakefs umount`.
    return 1 if lost else 0


def _covered_entries(mountpoint: str) -> int:
    """How many entries the mount will hide in ``mountpoint`` (0 when it is mounted
    already, missing or unreadable: mounting then fails with its own error)."""
    from lakefs.fs.mount import mount_entry

    if mount_entry(mountpoint) is not None:  # never list a mount (a dead one fails, a wedged one hangs)
        return 0
    try:
        with os.scandir(mountpoint) as it:
            return sum(1 for _ in it)
    except OSError:
        return 0


def _warn_covered(mountpoint: str, count: int) -> None:
    if count:
        print(f"lakefs: warning: {os.path.abspath(mountpoint)} is not empty: its {count} "
              f"{'entry is' if count == 1 else 'entries are'} hidden while the dataset is mounted there",
              file=sys.stderr, flush=True)


def _spawn_background(args: argparse.Namespace, log_file: str) -> int:
    """Run ``lakefs mount -f`` detached; return when it is mounted or has failed."""
    from lakefs.fs.mount import mount_entry, table_path

    _writable_log(log_file)  # (an error here is one line; the child's would be lost)
    read_fd, write_fd = os.pipe()
    dataset = args.dataset if "://" in args.dataset else os.path.abspath(args.dataset)  # child runs in /
    mp = table_path(args.mountpoint)  # (as `lakefs umount` finds it in the argv of an object-store mount)
    argv = [sys.executable, "-m", "lakefs"] + (["--debug"] if args.debug else []) + [
        "mount", "-f", dataset, mp, "--log-file", log_file,
        "--ready-fd", str(write_fd),
    ]
    for opt in args.options:
        argv += ["-o", opt]
    if args.config:
        argv += ["--config", os.path.abspath(args.config)]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             pass_fds=(write_fd,), start_new_session=True, cwd="/")
    os.close(write_fd)
    deadline = time.monotonic() + READY_TIMEOUT
    said = _read_pipe(read_fd, deadline, until_ready=True)
    if said == b"1":
        while time.monotonic() < deadline and mount_entry(mp) is None and child.poll() is None:
            time.sleep(0.02)  # (one that failed at once may be gone already)
        if _answers(mp):
            os.close(read_fd)
            child.stderr.close()
            return 0
        said = _read_pipe(read_fd, deadline)  # libfuse failed just after INIT: the child says why
    os.close(read_fd)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        if mount_entry(mp) is not None:  # dead now: ismount says False
            tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
            subprocess.run([tool, "-uz", mp], capture_output=True)
    if b"!" in said:
        raise LakeFSError(said.partition(b"!")[2].decode(errors="replace"))
    err = child.stderr.read().decode(errors="replace").strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    raise LakeFSError(lines[-1].removeprefix("lakefs: error: ") if lines else f"mount failed (see {log_file})")


def _read_pipe(fd: int, deadline: float, *, until_ready: bool = False) -> bytes:
    """What the background child wrote on its pipe until it closed it (it exited) or
    ``deadline``; ``until_ready``: only up to its ``1`` (mounted)."""
    said = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            continue
        chunk = os.read(fd, 1 if until_ready and not said else 4096)
        if not chunk:
            break  # the child closed the pipe: it exited
        said += chunk
        if until_ready and said == b"1":
            break
    return said


def _answers(mountpoint: str) -> bool:
    """Whether the mount at ``mountpoint`` answers a request. libfuse can fail at its first
    read of the device, just after INIT ("fuse: reading device: Invalid argument"): that
    background mount was reported mounted. A STATFS, which the kernel never answers from
    its cache (a stat's answer it keeps attr_timeout); one that reached the mountpoint's
    own filesystem (the mount is gone already) is told by the mount table. A mount that
    takes longer than PROBE_TIMEOUT is taken as serving. From this process, never the
    mount's: its own request waits on it, and a kill -9 meanwhile wedges the mount."""
    from lakefs.fs.mount import mount_entry

    result: list[bool] = []

    def probe() -> None:
        try:
            os.statvfs(mountpoint)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="lakefs-mount-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT)
    if not result:
        return True
    return result[0] and mount_entry(mountpoint) is not None


def cmd_umount(args: argparse.Namespace) -> int:
    from lakefs.fs.mount import end_final_commit_pending, take_final_failure, take_lease_lost, take_not_stored
    from lakefs.storage.mounts import enclosing_mount, is_dead, mount_entry

    entry = mount_entry(args.mountpoint)  # the mount table, not a stat: a dead mount fails stat (ENOTCONN)
    if entry is None:
        around = enclosing_mount(args.mountpoint)  # (`lakefs umount ./mnt/images` said "not mounted")
        if around is not None and around.is_lakefs:
            raise ConfigError(f"{os.path.abspath(args.mountpoint)} is inside the lakefs mount at {around.target}:"
                              f" lakefs umount {around.target}")
        raise ConfigError(f"{os.path.abspath(args.mountpoint)} is not mounted")
    mp = entry.target  # (symlinks resolved: fusermount3 and the mount's argv and state files have this)
    if not entry.is_lakefs:
        raise ConfigError(f"{mp} is a {entry.fstype} mount ({entry.source}), not a lakefs mount; "
                          f"unmount it with umount(8)")
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        raise ConfigError("fusermount3 (package fuse3) is not installed")
    dataset = entry.dataset
    dead = is_dead(mp)
    pid = _mount_pid(mp, dataset) if dataset and "://" in dataset and not dead else None
    done = subprocess.run([tool, "-u", mp], capture_output=True, text=True)
    if done.returncode != 0 and "busy" in done.stderr.lower():
        # fusermount's own line names no cause nor way out; the mount goes on serving.
        raise BusyError(f"{mp} is busy: a file or directory in it is open (a shell's working directory "
                        f"counts; `fuser -vm {mp}` lists them); close them and try again, or stop the mount "
                        "with SIGTERM, which commits every closed file (one still open is not stored)")
    if done.returncode != 0:
        raise LakeFSError(done.stderr.strip() or f"{tool} -u {mp} failed")
    fsck = f"`lakefs fsck {dataset or 'DATASET'}` checks the rest"
    if dead:
        end_final_commit_pending(mp)
        for take in (take_lease_lost, take_final_failure, take_not_stored):
            take(mp)  # (of this mount, if any: it died before it could be reported)
        if entry.read_only:
            print(f"lakefs: warning: {mp}: its mount process had died; the dead mount is cleared "
                  "(it was read-only: nothing was lost)", file=sys.stderr)
            return 0
        # Exit 1, as a failed final commit: whether it had anything uncommitted cannot
        # be told once it is gone, and a script must not take the files for stored.
        raise LakeFSError(f"cleared the dead mount at {mp}: its mount process had died (kill -9, OOM) without "
                          f"a final commit, so files written through it since its last commit, if any, are not "
                          f"stored ({fsck})")
    if dataset and not entry.read_only and "://" not in dataset:
        _wait_for_writer(dataset)
    elif pid is not None and not entry.read_only:
        _wait_for_exit(pid, dataset)
    if not entry.read_only and not _final_commit_over(mp, dataset or mp):
        for take in (take_lease_lost, take_final_failure, take_not_stored):
            take(mp)  # (a record it made before it died: the death is what happened)
        raise LakeFSError(f"unmounted {mp}, but its mount process died before its final commit finished "
                          f"(files written since the last commit are lost; {fsck})")
    lease, failure, not_stored = take_lease_lost(mp), take_final_failure(mp), take_not_stored(mp)
    if lease is not None:
        raise LakeFSError(f"unmounted {mp}, but {lease} (the mount's log has the details)")
    if failure is not None:
        raise LakeFSError(f"unmounted {mp}, but its final commit failed: {failure} (files written "
                          "since the last commit are lost; the mount's log has the details)")
    if not_stored is None:
        raise LakeFSError(f"unmounted {mp}; some files could not be stored, and the record naming them is "
                          "damaged (the mount's log names them and says why)")
    if not_stored:
        count = len(not_stored)
        named = ", ".join(printable(p) for p in not_stored[:NOT_STORED_NAMED]) + (
            f" and {count - NOT_STORED_NAMED} more" if count > NOT_STORED_NAMED else "")
        raise LakeFSError(f"unmounted {mp}; everything else is committed, but {count} "
                          f"{'file' if count == 1 else 'files'} could not be stored: {named} "
                          "(the mount's log says why)")
    return 0


def _mount_pid(mountpoint: str, dataset: str | None = None) -> int | None:
    """The pid of this machine's ``lakefs mount`` serving ``mountpoint`` (as the mount
    table has it), or None. A background mount has it in its argv; a foreground one may
    have an absolute path through a symlink, or a relative path (libfuse has since moved
    it to ``/``): that one is found by its dataset URL and the mountpoint's last
    component."""
    from lakefs.fs.mount import table_path

    leaf = os.path.basename(mountpoint.rstrip("/"))
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "mount" not in argv or not any("lakefs" in a for a in argv[:4]):
            continue
        named = [a for a in argv[argv.index("mount") + 1:] if not a.startswith("-")]
        if mountpoint in named or any(a.startswith("/") and table_path(a) == mountpoint for a in named):
            return int(entry)
        if dataset in named and any(a != dataset and os.path.basename(a.rstrip("/")) == leaf for a in named):
            return int(entry)
    return None


def _wait_for_exit(pid: int, dataset_url: str) -> None:
    """Wait until the mount process of an object-store dataset has committed and exited
    (its writer lease lives in the store, which this command may have no options for)."""
    deadline = time.monotonic() + UMOUNT_WAIT
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    return  # exited; its parent has not reaped it yet
        except OSError:
            return
        time.sleep(0.05)
    raise LakeFSError(f"the mount process of {dataset_url} did not finish committing in {UMOUNT_WAIT:.0f} s")


def _final_commit_over(mountpoint: str, dataset: str) -> bool:
    """Whether the mount at ``mountpoint`` finished its final commit (its outcome is
    recorded), False if its process died during it: both let go of the writer lock, and
    of an object store's lease neither is left to wait for. Waits while the process that
    noted the commit pending lives (it is between its lock's release and its exit)."""
    from lakefs.fs.mount import end_final_commit_pending, final_commit_pending

    deadline = time.monotonic() + UMOUNT_WAIT
    while (pending := final_commit_pending(mountpoint)) is not None:
        pid, alive = pending
        if not alive:
            end_final_commit_pending(mountpoint)
            return False
        if time.monotonic() > deadline:
            raise LakeFSError(f"the mount process of {dataset} (pid {pid}) did not finish committing in "
                              f"{UMOUNT_WAIT:.0f} s")
        time.sleep(0.05)
    return True


def _wait_for_writer(dataset_path: str) -> None:
    """Wait until the mount process has committed and released the writer lock."""
    from lakefs.errors import LockedError
    from lakefs.format import keys
    from lakefs.storage import open_storage

    storage = open_storage(dataset_path, read_only=False)
    deadline = time.monotonic() + UMOUNT_WAIT
    while time.monotonic() < deadline:
        try:
            storage.writer_lock(keys.WRITER_LOCK).release()
            return
        except LockedError:
            time.sleep(0.05)
    raise LakeFSError(f"the mount process of {dataset_path} did not finish committing in {UMOUNT_WAIT:.0f} s")
