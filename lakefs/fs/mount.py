"""Mounting a dataset: open it, build the filesystem, run FUSE, commit on the way out.

The periodic commit thread makes closed files durable within ``commit_interval``;
unmount, SIGTERM and SIGINT end the FUSE loop, after which everything is committed and
the writer lock released (DESIGN §5). A read-only mount looks for a newer commit of the
dataset's writer every ``refresh_interval`` seconds (:class:`Refresher`).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from lakefs.config import Config, parse_seconds
from lakefs.errors import ConfigError, LakeFSError, LeaseLostError, LockedError
from lakefs.storage.mounts import MountEntry, is_dead, mount_entry, table_path

if TYPE_CHECKING:
    from lakefs.dataset import Dataset
    from lakefs.dataset.dataset import LeaseLoss
    from lakefs.fs.tree import DatasetFS

log = logging.getLogger("lakefs.mount")

# -o options passed through to libfuse (mount.fuse(8)); anything else is refused at start.
FUSE_OPTIONS = {
    "ro", "rw", "allow_other", "allow_root", "default_permissions", "auto_unmount", "kernel_cache",
    "auto_cache", "noauto_cache", "entry_timeout", "attr_timeout", "negative_timeout",
    "max_read", "debug", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime",
    "noatime", "sync_read", "async_read", "max_write", "max_readahead",
}
MAX_READAHEAD = 1 << 20
# Of those, libfuse 2's only: libfuse 3 refuses sync_read and async_read ("fuse: unknown
# option(s)", at mount time) and fails a max_read that init does not set too
# (docs/FUSE-BINDING.md); binding.mount_options dropped the other two without a word.
# Refused up front on libfuse 3, with why.
LIBFUSE2_OPTIONS = {
    "sync_read": "refuses it (it reads asynchronously)",
    "async_read": "always reads asynchronously (leave it out)",
    "max_read": "does not take it",
}
# Set by lakefs itself, never by -o: `lakefs umount` (and `lakefs mount`, finding a dead
# mount) know a lakefs mount by its source "lakefs:<dataset>" and type fuse.lakefs
# (MountEntry.is_lakefs); -o fsname=x made umount return before the final commit.
RESERVED_OPTIONS = {"fsname", "subtype"}

# -o options lakefs itself understands.
LAKEFS_OPTIONS = {"noxattr", "xattr", "commit_interval", "refresh_interval", "nothreads", "threads",
                  "snapshot_opens"}

# What each option with a value takes; every other option is a flag and takes none.
SECONDS_OPTIONS = {"entry_timeout", "attr_timeout", "negative_timeout", "refresh_interval"}  # >= 0
POSITIVE_SECONDS_OPTIONS = {"commit_interval"}  # > 0
BYTES_OPTIONS = {"max_read", "max_write", "max_readahead"}  # a whole number > 0
# max_write's bounds: libfuse 3 sizes its read buffer for max_write, while the kernel
# sends writes of at least 4096 bytes, and libfuse's buffer holds at most 1 MiB (256
# pages): outside them "fuse: reading device: Invalid argument" ended the mount at once.
MAX_WRITE_RANGE = (4096, 1 << 20)

MountOptions = dict[str, str | bool | float | int]


def parse_options(text: str | None) -> MountOptions:
    """``"ro,attr_timeout=5"`` → ``{"ro": True, "attr_timeout": 5.0}``.

    Each option is checked by kind, so a bad one is one ConfigError before anything is
    mounted: a flag takes no value, seconds are a finite number >= 0 (``commit_interval``
    > 0), byte counts a whole number > 0 (``max_write`` within MAX_WRITE_RANGE);
    ``fsname``/``subtype`` are lakefs's own; libfuse 2's own on libfuse 3 are refused
    (LIBFUSE2_OPTIONS). Of ``ro`` and ``rw`` the last one given wins,
    as with mount(8): only that one is kept, for lakefs and for the kernel alike.
    """
    out: MountOptions = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if key in RESERVED_OPTIONS:
            raise ConfigError(f"mount option {key} cannot be given: lakefs sets it itself (the mount table shows "
                              "lakefs:DATASET, type fuse.lakefs, by which `lakefs umount` knows the mount)")
        if key not in FUSE_OPTIONS and key not in LAKEFS_OPTIONS:
            raise ConfigError(f"unknown mount option {key!r}")
        if key in LIBFUSE2_OPTIONS:
            from lakefs.fs.binding import LIBFUSE_MAJOR  # (loads libfuse: only for these)

            if LIBFUSE_MAJOR >= 3:
                raise ConfigError(f"mount option {key} is libfuse 2's: libfuse 3, which this lakefs uses, "
                                  f"{LIBFUSE2_OPTIONS[key]}")
        if key in ("ro", "rw"):
            out.pop("rw" if key == "ro" else "ro", None)
        out[key] = _option_value(key, value if sep else None)
    return out


def _option_value(key: str, value: str | None) -> str | bool | float | int:
    takes_value = key in SECONDS_OPTIONS | POSITIVE_SECONDS_OPTIONS | BYTES_OPTIONS
    if not takes_value:
        if value is not None:
            raise ConfigError(f"mount option {key} takes no value, got {key + '=' + value!r}")
        return True
    if not value:
        raise ConfigError(f"mount option {key} needs a value ({key}=...)")
    if key in BYTES_OPTIONS:
        try:
            number = int(value)
        except ValueError:
            number = 0
        low, high = MAX_WRITE_RANGE if key == "max_write" else (1, None)
        if number < low or (high is not None and number > high):
            wanted = f"from {low} to {high}" if high is not None else "> 0"
            raise ConfigError(f"mount option {key} needs a whole number of bytes {wanted}, got {value!r}")
        return number
    return parse_seconds(value, f"mount option {key}", positive=key in POSITIVE_SECONDS_OPTIONS)


def fuse_escape(value: str) -> str:
    """``value`` as one ``-o`` option value: libfuse splits the option string at commas and
    reads a backslash as an escape, so a dataset path or URL holding a comma (``s3://b/a,b``)
    failed to mount ("fuse: unknown option(s): `-o b'")."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def fuse_kwargs(config: Config, options: MountOptions, dataset_url: str) -> tuple[dict, object]:
    """(FUSE keyword arguments, connection tuning) from the config and ``-o`` options."""
    from lakefs.fs.binding import LIBFUSE_MAJOR, mount_options

    f = config.fuse
    extra = {k: v for k, v in options.items() if k in FUSE_OPTIONS}
    # 1 MiB readahead: a large file reads 6-9% faster; small files do not change
    # (docs/BENCHMARKS.md). libfuse 3: set at init (ConnTuning); libfuse 2: a -o option.
    extra.setdefault("max_readahead", MAX_READAHEAD)
    if f.allow_other:
        extra.setdefault("allow_other", True)
    if extra.get("allow_other") or extra.get("allow_root"):
        # Files show as the mounting user's with the modes stored (644, 755, chmod'ed):
        # without default_permissions the kernel did not check them, and any other user
        # could delete or overwrite every file. With it, the kernel checks them as on a
        # local disk (lakefs itself does no permission check).
        extra["default_permissions"] = True
    kw, tuning = mount_options(
        fsname=fuse_escape(f"lakefs:{dataset_url}"),
        kernel_cache=False,
        attr_timeout=f.attr_timeout,
        entry_timeout=f.entry_timeout,
        negative_timeout=f.negative_timeout,
        extra=extra,
    )
    if f.auto_cache and "kernel_cache" not in kw and not options.get("noauto_cache"):
        kw["auto_cache"] = True
    kw.pop("noauto_cache", None)
    kw.setdefault("subtype", "lakefs")
    if LIBFUSE_MAJOR >= 3:
        kw.setdefault("max_threads", 16)
        # Unset, libfuse 3.14 warns "Ignoring invalid max threads value 4294967295" at every
        # threaded start (its idle-thread setter checks the unset value); as many idle
        # threads as threads keeps its default of never ending one.
        kw.setdefault("max_idle_threads", kw["max_threads"])
    return kw, tuning


def mount_cache_dir(dataset_url: str, config: Config) -> str | None:
    """The chunk cache root a mount of ``dataset_url`` uses (an object store's only):
    ``storage.cache_dir`` or, when unset, ``~/.cache/lakefs`` (``$XDG_CACHE_HOME/lakefs``);
    None without one (``storage.cache_size`` 0)."""
    from lakefs.storage.remote import default_cache_root, is_object_store

    if not is_object_store(dataset_url) or config.cache_size <= 0:
        return None
    return config.cache_dir or default_cache_root()


def _local_path(url: str) -> str | None:
    from lakefs.storage.remote import scheme_of

    scheme = scheme_of(url)
    if scheme == "file":
        return url[len("file://"):]
    return url if not scheme else None


def refuse_what_is_inside(mountpoint: str, dataset_url: str, *, cache_dir: str | None = None,
                          log_file: str | None = None) -> None:
    """ConfigError when the mount's dataset, chunk cache or log file is ``mountpoint``
    (as :func:`table_path` spells it) or inside it: the mount would reach it through
    itself, and a request that waits on its own answer hangs the mount for good
    (SIGTERM cannot end it, only kill -9). Symlinks are followed (the mountpoint is not
    mounted yet: nothing stats a mount)."""

    def inside(path: str) -> tuple[str, bool] | None:
        real = os.path.realpath(os.path.expanduser(path))
        if real == mountpoint or real.startswith(mountpoint.rstrip("/") + "/"):
            return real, real == mountpoint
        return None

    hang = "the mount would {} it through itself (and hang)"
    local = _local_path(dataset_url)
    if local is not None and (found := inside(local)) is not None:
        shown = os.path.abspath(local)
        real, same = found
        seen = f"{shown} ({real})" if real != shown else shown
        raise ConfigError(f"the dataset {seen} is {'' if same else 'inside '}the mountpoint {mountpoint}: "
                          f"{hang.format('read')}; mount it elsewhere")
    if cache_dir is not None and inside(cache_dir) is not None:
        raise ConfigError(f"chunk cache {os.path.abspath(os.path.expanduser(cache_dir))} is inside the mountpoint "
                          f"{mountpoint}: {hang.format('read')}; choose one outside it (storage.cache_dir in the "
                          "config)")
    if log_file is not None and inside(log_file) is not None:
        raise ConfigError(f"log file {os.path.abspath(log_file)} is inside the mountpoint {mountpoint}: "
                          f"{hang.format('write')}; choose one outside it (--log-file, or logging.file in the "
                          "config)")


def write_protected(dataset_url: str) -> str | None:
    """Why a writable mount of ``dataset_url`` must be read-only, else None: a dataset
    whose folder is on a read-only file system could not even take its writer lock, so
    it is mounted read-only, as mount(8) mounts a write-protected disk (DESIGN §4: a
    read-only storage answers writes with EROFS). Asks no object store anything."""
    from lakefs.format import keys
    from lakefs.storage import open_storage
    from lakefs.storage.remote import is_object_store

    if is_object_store(dataset_url):
        return None
    try:
        storage = open_storage(dataset_url, read_only=True)
        if not storage.write_protected() or not storage.exists(keys.MARKER):
            return None
    except LakeFSError:
        return None  # (mounting says what is wrong)
    shown = dataset_url if "://" in dataset_url else os.path.abspath(dataset_url)
    return f"{shown} is write-protected (its folder is on a read-only file system), mounting read-only"


def open_mount_storage(dataset_url: str, config: Config, *, read_only: bool):
    """The dataset's storage for a mount, checked before anything else is done with it.

    An object-store dataset is read through the on-disk chunk cache: ``storage.cache_dir``
    or, when unset, ``~/.cache/lakefs`` (``$XDG_CACHE_HOME/lakefs``); ``storage.cache_size``
    0 turns it off. An unreachable endpoint, bad credentials or a missing bucket is one
    ``StorageError`` line here, before FUSE starts.
    """
    from lakefs.storage.remote import open_dataset_storage

    cache_dir = mount_cache_dir(dataset_url, config)
    storage = open_dataset_storage(dataset_url, read_only=read_only,
                                   options=dict(config.storage_options) or None,
                                   cache_dir=cache_dir, cache_size=config.cache_size, check=True)
    where = getattr(storage, "cache_dir", None)
    if where:
        log.info("chunk cache of %s: %s (at most %d bytes)", dataset_url, where, config.cache_size)
    return storage


def state_path(mountpoint: str, name: str) -> str:
    """``~/.local/state/lakefs/<name>-<tag>`` ($XDG_STATE_HOME), ``tag`` a hash of the
    mountpoint as the mount table spells it: where a mount and ``lakefs umount`` find
    each other's files, whichever symlink either was given."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    tag = hashlib.sha1(table_path(mountpoint).encode()).hexdigest()[:10]
    return os.path.join(state, "lakefs", f"{name}-{tag}")


def final_failure_path(mountpoint: str) -> str:
    """Where a mount whose final commit failed says so, for ``lakefs umount`` (which
    cannot see the exit status of a background mount)."""
    return state_path(mountpoint, "final-commit-failed")


def not_stored_path(mountpoint: str) -> str:
    """Where a mount lists the files it could not store as it stopped, for ``lakefs
    umount`` (the rest was committed: not a failed final commit)."""
    return state_path(mountpoint, "not-stored")


def lease_lost_path(mountpoint: str) -> str:
    """Where a mount whose writer lease another writer took over says what was lost, for
    ``lakefs umount``."""
    return state_path(mountpoint, "lease-lost")


def final_commit_pending_path(mountpoint: str) -> str:
    """Where a read-write mount notes its process (pid and start time) from before it
    serves until its final commit is over, done or its failure recorded: a process
    killed during it (kill -9, an OOM kill) lets go of the writer lock as a finished one
    does, so ``lakefs umount`` knows it died by this note outliving it."""
    return state_path(mountpoint, "final-commit-pending")


def _write_state(path: str, text: str) -> bool:
    """Whether it was written (a state file is not worth failing a mount for)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return False
    return True


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, proc(5)), None if it is
    gone or a zombie: with the pid, it names one process (a pid is reused)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def _note_final_commit_pending(mountpoint: str) -> None:
    _write_state(final_commit_pending_path(mountpoint), f"{os.getpid()} {_start_time(os.getpid())}\n")


def end_final_commit_pending(mountpoint: str) -> None:
    """Forget the note (the mount's outcome is recorded, or its death was reported)."""
    with contextlib.suppress(OSError):
        os.remove(final_commit_pending_path(mountpoint))


def final_commit_pending(mountpoint: str) -> tuple[int, bool] | None:
    """(pid, alive) of the read-write mount at ``mountpoint`` whose final commit is not
    over, as its note says; None if there is none. A note whose process is gone (or
    that cannot be read: it died writing it) is a mount that died before its final
    commit finished; :func:`end_final_commit_pending` forgets it once reported."""
    try:
        with open(final_commit_pending_path(mountpoint), encoding="utf-8") as f:
            pid_text, _, started = f.read().strip().partition(" ")
    except FileNotFoundError:
        return None
    except OSError:
        return 0, False
    if not pid_text.isdigit():
        return 0, False
    pid = int(pid_text)
    return pid, _start_time(pid) == started

def _take_state(path: str) -> str | None:
    """The contents of a state file, which is removed: each is reported once."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        os.remove(path)
    except OSError:
        return None
    return text


def _write_failure(mountpoint: str, message: str) -> bool:
    return _write_state(final_failure_path(mountpoint), message.splitlines()[0] if message else "unknown error")


def take_final_failure(mountpoint: str) -> str | None:
    """The error a mount at ``mountpoint`` recorded for its final commit (then forgotten)."""
    message = _take_state(final_failure_path(mountpoint))
    if message is None:
        return None
    return message.strip() or "unknown error"


def lease_lost_text(loss: LeaseLoss, files: list[str]) -> str:
    """What a mount that lost its writer lease lost (``files``: those being written then):
    one line for its last log line, ``lakefs umount`` and its exit status."""
    named = "".join(f" /{p}" for p in files[:5]) + (" ..." if len(files) > 5 else "")
    return (f"its writer lease was lost to another writer at {loss.when}, so nothing changed through it "
            f"since {loss.since} was stored" + (f" (files being written then:{named})" if files else "")
            + "; writes were refused from then on, and the dataset holds the other writer's commits")


def take_lease_lost(mountpoint: str) -> str | None:
    """What a mount at ``mountpoint`` recorded as lost with its writer lease (then
    forgotten), or None if it did not lose it."""
    text = _take_state(lease_lost_path(mountpoint))
    if text is None:
        return None
    return text.strip() or "its writer lease was lost to another writer (the record of it is damaged)"


def _write_not_stored(mountpoint: str, paths: list[str]) -> bool:
    return _write_state(not_stored_path(mountpoint), json.dumps(["/" + p for p in paths]))


def take_not_stored(mountpoint: str) -> list[str] | None:
    """The files a mount at ``mountpoint`` recorded as not stored (then forgotten); None
    when it recorded some but the record cannot be read (cut short, or left empty: the
    disk holding it was full)."""
    text = _take_state(not_stored_path(mountpoint))
    if text is None:  # (only written when files were not stored)
        return []
    try:
        paths = json.loads(text)
    except ValueError:
        return None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        return None
    return paths


def _mounted_already(mountpoint: str, entry: MountEntry) -> str:
    """The error for mounting on ``mountpoint`` where ``entry`` is mounted already."""
    if entry.is_lakefs and is_dead(mountpoint):
        return (f"{mountpoint} is a dead lakefs mount (its mount process is gone); "
                f"clear it with `lakefs umount {mountpoint}`, then mount again")
    if entry.is_lakefs:
        return (f"{mountpoint} is already mounted (lakefs mount of {entry.dataset or entry.source}); "
                f"unmount it first with `lakefs umount {mountpoint}`")
    return f"{mountpoint} is already a mount point ({entry.fstype} {entry.source}); unmount it first"


#: Allocations between two young-generation collections in a mount process (Python's
#: default is 700). Every FUSE call allocates a few dozen objects, and each collection
#: also walks what survived the last one (cached samples, listings): in-process,
#: scripts/bench_ops.py's Python cost per copied photo fell from 150-159 us to 138-148 us
#: and the close-time store from 84-89 us to 74-77 us. Reference cycles are rare here;
#: the few are still collected, a little later.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Before serving: what the mount set up (the dataset's tables, caches, modules) is
    moved out of the collector's sight (``gc.freeze``), and young collections are rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class LibfuseOutput:
    """What libfuse and fusermount3 print on the process's stderr, logged and kept.

    They say why a mount failed there and nowhere else ("fuse: failed to open /dev/fuse:
    Permission denied", "fusermount3: option allow_other only allowed if
    'user_allow_other' is set in /etc/fuse.conf", "fuse: reading device: Invalid
    argument"): a background mount's log never had it, and its error said "could not
    mount MNT: 4". :meth:`start` points file descriptor 2 at a pipe whose lines a thread
    logs (logger ``lakefs.fuse``, WARNING) and keeps; ``sys.stderr`` is first moved to a
    copy of the old descriptor 2, so Python's own output (log lines, errors) still goes
    where it went, and is never read back as libfuse's."""

    KEPT = 20
    _SYNC = "\x00lakefs-stderr-sync "

    def __init__(self) -> None:
        self._lines: deque[str] = deque(maxlen=self.KEPT)
        self._count = 0  # lines seen so far
        self._synced = 0
        self._asked = 0
        self._cond = threading.Condition()
        self._saved: int | None = None  # the old descriptor 2, while started

    def start(self) -> None:
        """Capture descriptor 2 (call before the logging handlers that write to
        ``sys.stderr`` are made)."""
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        sys.stderr = open(os.dup(self._saved), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                          errors="backslashreplace")
        threading.Thread(target=self._relay, args=(read_fd,), name="lakefs-libfuse-output", daemon=True).start()

    def stop(self) -> None:
        """Log what is still in the pipe, and give descriptor 2 back."""
        if self._saved is None:
            return
        self.sync()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None

    def send_stderr_to(self, fd: int) -> None:
        """From now on Python's stderr (and descriptor 2 after :meth:`stop`) is ``fd``: a
        background mount's log file, once the command that started it stops reading."""
        sys.stderr.flush()
        os.dup2(fd, sys.stderr.fileno())
        if self._saved is not None:
            os.dup2(fd, self._saved)

    def mark(self) -> int:
        """A point to ask :meth:`lines_since` from."""
        with self._cond:
            return self._count

    def lines_since(self, mark: int) -> list[str]:
        """The lines printed since ``mark`` (the last :data:`KEPT` of them)."""
        self.sync()
        with self._cond:
            return list(self._lines)[max(0, len(self._lines) - (self._count - mark)):]

    def sync(self, timeout: float = 2.0) -> None:
        """Wait until what was written to descriptor 2 so far has been read (a marker
        line through the pipe: what was before it has been logged once it is seen)."""
        if self._saved is None:
            return
        with self._cond:
            self._asked += 1
            token = self._asked
        try:
            os.write(2, f"{self._SYNC}{token}\n".encode())
        except OSError:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._synced >= token, timeout)

    def _relay(self, read_fd: int) -> None:
        fuse_log = logging.getLogger("lakefs.fuse")
        with open(read_fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith(self._SYNC):
                    with self._cond:
                        with contextlib.suppress(ValueError):  # (cut into by a line without its end)
                            self._synced = max(self._synced, int(line[len(self._SYNC):]))
                        self._cond.notify_all()
                    continue
                if not line.strip():
                    continue
                try:
                    fuse_log.warning("%s", line)
                except Exception:  # (a log that cannot be written must not end the relay: libfuse would block)
                    pass
                with self._cond:
                    self._lines.append(line)
                    self._count += 1


class StopSignals:
    """Keeps SIGTERM, SIGINT and SIGHUP from killing a mount that is stopping.

    The first one ends the FUSE loop (libfuse's handlers), and then every closed file is
    committed. libfuse puts the default handlers back as its loop ends, so a second
    signal (Ctrl-C twice, a supervisor's repeated SIGTERM) killed the process during that
    commit, losing every file closed since the last one. :meth:`stopping`, called as the
    loop ends (``FUSE(on_loop_end=...)``, before libfuse removes its handlers), installs
    handlers that only log: from then on only SIGKILL ends the mount before its commit.

    SIGINT gets its handler at :meth:`install` already, passing the signal on to the
    handler it had (KeyboardInterrupt) until the mount stops: the binding sets SIGINT's
    default for libfuse while it serves and then puts back what it found, which must be
    this handler, not Python's KeyboardInterrupt (raised into the final commit).
    Signal handlers can only be set from the main thread: elsewhere this does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, pending: Callable[[], int]) -> None:
        self._pending = pending  # files still to commit (DatasetFS.pending_files)
        self._count: int | None = None  # (counted as the mount began stopping)
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
        signal.signal(signal.SIGINT, self._handle)

    def stopping(self) -> None:
        """From now on SIGTERM/SIGINT/SIGHUP are logged and ignored (idempotent)."""
        if not self._previous or self._count is not None:
            return
        try:
            self._count = self._pending()
        except Exception:  # (a count for a log line must not keep the handlers out)
            self._count = 0
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        """The handlers :meth:`install` found (the final commit is done)."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: object) -> None:
        if self._count is None:  # (SIGINT before the mount stops: as before)
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt
            return
        log.warning("%s: still committing %d file(s) as the mount stops; kill -9 %d to abort, losing them",
                    signal.Signals(signum).name, self._count, os.getpid())


#: What ``fuse_main_real``'s steps return when one fails (libfuse 3 lib/helper.c), for
#: a failure libfuse printed no line about.
LIBFUSE_STATUS = {
    1: "libfuse refused its command line",
    2: "libfuse found no mountpoint",
    3: "libfuse refused its options",
    4: "the mount itself failed",
    5: "libfuse could not daemonize",
    6: "libfuse could not set its signal handlers",
    7: "libfuse could not start its threads",
    8: "reading the FUSE device failed",
}


def _libfuse_failure(code: int | None, output: LibfuseOutput | None, mark: int, why: str | None = None) -> str:
    """Why libfuse failed: the last line it (or fusermount3) printed since ``mark``, else
    what its status ``code`` means (and ``why``)."""
    lines = output.lines_since(mark) if output is not None else []
    if lines:
        return lines[-1].strip()
    text = LIBFUSE_STATUS.get(code, "libfuse failed") if code is not None else "libfuse failed"
    return f"{text}{': ' + why if why else ''} (libfuse status {code})"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_mount(dataset_url: str, mountpoint: str, *, config: Config, options: MountOptions,
              on_ready: Callable[[], None] | None = None, output: LibfuseOutput | None = None) -> list[str]:
    """Mount ``dataset_url`` at ``mountpoint`` and serve until unmounted (blocking); the
    files it could not store as it stopped (logged; everything else is committed).
    ``output``: libfuse's stderr, captured (:class:`LibfuseOutput`), for the reason of a
    failure in the error raised."""
    from lakefs.dataset import Dataset
    from lakefs.fs.binding import FUSE
    from lakefs.fs.operations import LakeOperations
    from lakefs.fs.tree import DatasetFS

    # Absolute (libfuse 3 chdirs to /, FUSE-NOTES.md) and as the mount table will have it,
    # for `lakefs umount` and the messages (a symlink to a directory mounts the directory).
    mountpoint = table_path(mountpoint)
    entry = mount_entry(mountpoint)  # before any stat: a dead mount fails it with ENOTCONN
    if entry is not None:
        raise ConfigError(_mounted_already(mountpoint, entry))
    if not os.path.isdir(mountpoint):
        missing = not os.path.lexists(mountpoint)
        raise ConfigError(f"mountpoint {mountpoint} " + ("does not exist (create it with mkdir)" if missing
                                                          else "is not a directory"))
    for record in (final_failure_path(mountpoint), not_stored_path(mountpoint),
                   lease_lost_path(mountpoint), final_commit_pending_path(mountpoint)):  # of an earlier mount here
        with contextlib.suppress(OSError):
            os.remove(record)
    read_only = bool(options.get("ro"))
    interval = float(options.get("commit_interval", config.commit_interval))  # (checked by parse_options)
    if interval <= 0:
        raise ConfigError("commit_interval must be > 0 seconds")
    refresh = float(options.get("refresh_interval", config.refresh_interval))
    if refresh < 0:
        raise ConfigError("refresh_interval must be >= 0 seconds (0: never)")
    if "://" not in dataset_url:
        dataset_url = os.path.abspath(dataset_url)
    refuse_what_is_inside(mountpoint, dataset_url, cache_dir=mount_cache_dir(dataset_url, config))
    if not read_only and not options.get("rw") and (why := write_protected(dataset_url)):
        log.warning("%s", why)  # (-o rw insists, as with mount(8): the error then says why)
        read_only, options = True, {**options, "ro": True}  # (the mount table says ro: umount waits for nothing)
    storage = open_mount_storage(dataset_url, config, read_only=read_only)
    try:
        # (the mount commits and closes its dataset as it stops: no second commit at exit)
        ds = Dataset(storage, read_only=read_only, create=not read_only, commit_interval=interval,
                     cache_bytes=config.chunk_cache_size, allow_transcode=config.allow_transcode,
                     commit_at_exit=False)
    except LockedError as e:
        storage.close()
        if e.in_this_process:  # (a program that mounts a dataset it still has open)
            raise LockedError(f"{dataset_url} is already open for writing in this process (a Dataset object not "
                              "closed): close() it first, or mount with -o ro to read it beside it",
                              holder=e.holder, in_this_process=True) from e
        if e.runs_out_in is not None:  # a killed writer's lease: no writer to read beside
            raise LockedError(f"{dataset_url}: the writer that holds its lease ({e.holder}) is not running here; "
                              f"its lease runs out in {e.runs_out_in:.0f} s: mount again then") from e
        # Readers never need the lock: say so, for the training job beside an ingest. (It
        # named the dataset twice, quoting the storage's message whole.)
        who = f" ({e.holder})" if e.holder else ""
        raise LockedError(f"{dataset_url} is already open for writing (mounted or in use) by another writer{who}; "
                          "mount it with -o ro to read it beside its writer") from e
    except BaseException:
        storage.close()
        raise
    fs = DatasetFS(ds, config, read_only=read_only)
    # Off by default: with xattrs, ls -l asks two of them per entry (docs/BENCHMARKS.md).
    xattr = bool(config.fuse.xattr or options.get("xattr")) and not options.get("noxattr")
    started = threading.Event()

    refresher: Refresher | None = None
    forgetter: KernelForgetter | None = None
    loop_status: list[int | None] = []  # (see loop_ended)

    def ready() -> None:
        nonlocal refresher, forgetter
        started.set()
        if read_only and refresh > 0:
            refresher = Refresher(fs, ops.kernel, refresh, mountpoint)
            refresher.start()
        forgetter = KernelForgetter(ops.kernel, mountpoint)  # (a read-only mount's files change too)
        forgetter.start()
        fs.forget_cached = forgetter.forget
        if on_ready is not None:
            on_ready()

    # A read-only mount skips OPEN/RELEASE per file unless each open must keep its commit.
    no_open = read_only and not (config.fuse.snapshot_opens or options.get("snapshot_opens"))
    ops = LakeOperations(fs, xattr=xattr, on_ready=ready, no_open=no_open)
    kwargs, ops.conn_tuning = fuse_kwargs(config, options, dataset_url)

    def lease_lost(stale: list[str]) -> None:
        # Another writer took the lease over: read-only from now on, as -o ro (the kernel
        # forgets what went stale, and the mount follows the dataset's latest commit).
        nonlocal refresher
        if refresher is None and started.is_set() and ops.kernel.attached:  # (not while unmounting)
            refresher = Refresher(fs, ops.kernel, refresh, mountpoint, stale=stale)
            refresher.start()

    fs.after_lease_lost = lease_lost
    threads = config.fuse.threads
    if threads is None:  # auto: several threads only when requests wait on a network
        threads = "://" in dataset_url and not dataset_url.startswith("file://")
    threads = (threads or bool(options.get("threads"))) and not options.get("nothreads")
    log.info("mounting %s at %s (%s)", dataset_url, mountpoint, "read-only" if read_only else "read-write")
    tune_gc()
    signals = StopSignals(fs.pending_files)

    def loop_ended(status: int | None) -> None:
        loop_status.append(status)
        signals.stopping()  # before libfuse puts back the handlers that kill

    mark = output.mark() if output is not None else 0
    failure: str | None = None  # why a mount that served stopped on its own
    if not read_only:
        _note_final_commit_pending(mountpoint)  # (until _stop_mount has its outcome recorded)
    signals.install()
    try:
        try:
            # The kernel cache is let go as the loop ends, before libfuse frees what it walks.
            FUSE(ops, mountpoint, foreground=True, nothreads=not threads, raw_fi=True,
                 after_loop=ops.kernel.detach, on_loop_end=loop_ended, **kwargs)
        except RuntimeError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            if not started.is_set():
                raise ConfigError(f"could not mount {mountpoint}: {_libfuse_failure(code, output, mark)}") from e
            status = loop_status[0] if loop_status else None
            if status is not None and status < 0:  # reading the device failed: nothing was served after it
                failure = _libfuse_failure(code, output, mark, os.strerror(-status))  # (raised below)
            elif status is not None and status > 0:
                log.info("stopped by a signal (%s)", _signal_name(status))
            else:  # (libfuse's own main: its status is 8 for a signal too)
                log.info("stopped by a signal (libfuse status %s)", e)
        finally:
            signals.stopping()  # (where FUSE did not: libfuse before 3.12, or it never served)
            fs.after_lease_lost = None  # (no refresher starts while stopping)
            lost = _stop_mount(ds, fs, mountpoint, refresher, forgetter, served=started.is_set())
    finally:
        signals.restore()
        storage.close()  # (opened here: the dataset's close leaves it open)
    if failure is not None:
        raise LakeFSError(f"the mount at {mountpoint} stopped: {failure}")
    return ["/" + p for p in lost]


def _stop_mount(ds: Dataset, fs: DatasetFS, mountpoint: str, refresher: Refresher | None,
                forgetter: KernelForgetter | None, *, served: bool) -> list[str]:
    """After the FUSE loop: stop the mount's threads, commit everything, close the dataset;
    the files that could not be stored (logged). ``served``: the kernel answered INIT;
    else nothing was ever mounted, and the log says nothing of an unmount."""
    if refresher is not None:
        refresher.stop()
    if forgetter is not None:
        fs.forget_cached = None
        forgetter.stop()
    ds.stop_autocommit()  # no periodic commit may run during or after the final one
    # The note that the final commit is pending goes once its outcome is where `lakefs
    # umount` looks; one that could not be recorded leaves it (umount then fails too).
    recorded = True
    try:
        try:
            fs.shutdown()  # (the second, after destroy's: it finds nothing left to store)
        except LakeFSError as e:  # ds.close() below commits again
            if ds.lease_lost is None:
                log.warning("final commit failed, trying again: %s", e)
        finally:
            lost = list(dict.fromkeys(fs.not_stored))  # (in order, each once)
            if lost:  # for `lakefs umount`: before ds.close() lets go of the writer lock it waits for
                recorded = _write_not_stored(mountpoint, lost)
            if ds.lease_lost is not None:
                _write_state(lease_lost_path(mountpoint), lease_lost_text(ds.lease_lost, fs.lost_with_lease))
            ds.close()
    except BaseException as e:
        if ds.lease_lost is None or not isinstance(e, LakeFSError):
            # `lakefs umount` of a background mount reports it from here (exit 1).
            if _write_failure(mountpoint, f"{e}"):
                end_final_commit_pending(mountpoint)
            # The mount gives up what it could not commit: the chunks of those files are
            # deleted (found by QA: a remount found the disk as full as the mount left it).
            try:
                ds.abandon()
            except LakeFSError as gone:  # (the store is down: compact deletes them later)
                log.warning("could not delete the objects of what was not committed: %s", gone)
            raise
        # (else: the lease was lost, found by this very close; reported below)
    if ds.lease_lost is not None:
        # Exit 1 (a foreground mount), and `lakefs umount` says it (a background one).
        text = lease_lost_text(ds.lease_lost, fs.lost_with_lease)
        if _write_state(lease_lost_path(mountpoint), text):
            end_final_commit_pending(mountpoint)
        log.warning("unmounted %s; %s", mountpoint, text)
        raise LeaseLostError(f"{mountpoint}: {text}")
    if recorded:
        end_final_commit_pending(mountpoint)
    if not served:  # (never mounted: the error raised says why)
        return lost
    if lost:
        log.warning("unmounted %s; everything committed except %d file(s) not stored (logged above): %s",
                    mountpoint, len(lost), ", ".join("/" + p for p in lost[:5]) + (" ..." if len(lost) > 5 else ""))
    else:
        log.info("unmounted %s; everything committed", mountpoint)
    return lost


class NodeIds:
    """libfuse's node ids of a mount's directories, by which the kernel knows them
    (:meth:`KernelCache.forget_name` wants them). The high-level API keeps them to itself
    but shows them as ``st_ino`` (without ``use_ino``; the root's is 1), so they are
    looked up through the mount. For one batch only: a directory the kernel forgot gets
    another id at its next lookup."""

    def __init__(self, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        self._ids: dict[str, int] = {}

    def of(self, directory: str) -> int | None:
        """The node id of ``directory`` (relative; "" is the root), None where the mount
        shows no node ids (``use_ino``); OSError where it is not there (any more)."""
        if not self._ids:
            if os.stat(self.mountpoint).st_ino != 1:
                return None
            self._ids[""] = 1
        if directory not in self._ids:
            self._ids[directory] = os.stat(os.path.join(self.mountpoint, directory)).st_ino
        return self._ids[directory]


class KernelForgetter(threading.Thread):
    """Has the kernel forget paths whose refused writes or older contents it may still
    cache (see ``DatasetFS.forget_cached``), and the names of new files refused at their
    close (given the ``mountpoint``), from its own thread: an invalidation issued inside
    the request handler that answers for the same file could wait on that very request
    (dropping a name waits for its directory's lock, which the request answered may hold)."""

    def __init__(self, kernel, mountpoint: str | None = None) -> None:
        super().__init__(name="lakefs-forget", daemon=True)
        self.kernel, self.mountpoint = kernel, mountpoint
        self._paths: queue.SimpleQueue[tuple[str, bool] | None] = queue.SimpleQueue()

    def forget(self, path: str, *, name: bool = False) -> None:
        """Queue ``path`` (absolute); ``name``: its name too."""
        self._paths.put((path, name))

    def run(self) -> None:
        while (item := self._paths.get()) is not None:
            path, name = item
            try:
                self.kernel.invalidate(path)
                if name:
                    self._forget_name(path)
            except Exception:
                log.exception("could not have the kernel forget %s", path)

    def _forget_name(self, path: str) -> None:
        """Drop the kernel's name ``path``, which it would otherwise keep for
        entry_timeout (60 s) after a new file's refusal (it was told the file exists at
        the create): an ``rm`` of it worked, and an open without O_CREAT made it again
        (:meth:`DatasetFS.open`), where a missing name answers ENOENT. Its next lookup
        asks the mount; one made again meanwhile is only looked up again."""
        if self.mountpoint is None or not self.kernel.attached:
            return
        parent, _, name = path.strip("/").rpartition("/")
        try:
            ino = NodeIds(self.mountpoint).of(parent)
        except OSError as e:  # its directory went meanwhile, and the name with it
            log.debug("could not have the kernel forget the name %s: %s", path, e)
            return
        if ino is not None:  # (else: not libfuse's node ids; entry_timeout ends it)
            self.kernel.forget_name(ino, name)

    def stop(self) -> None:
        self._paths.put(None)
        if self.is_alive():
            self.join()


def _is_dir(attr) -> bool:
    return attr is not None and attr.is_dir()


class Refresher(threading.Thread):
    """Moves a read-only mount to the dataset's latest commit every ``interval``
    seconds, and has the kernel forget what it cached of files that changed, and the
    names of those deleted (given the ``mountpoint``).

    A failed look (the store unreachable) is logged and the mount goes on serving the
    commit it has; the next tick tries again. Any other failure of a tick is one logged
    traceback, not the end of the thread: the mount would silently stay on that commit."""

    def __init__(self, fs, kernel, interval: float, mountpoint: str | None = None, *,
                 stale: list[str] | None = None) -> None:
        super().__init__(name="lakefs-refresh", daemon=True)
        self.fs, self.kernel, self.interval, self.mountpoint = fs, kernel, interval, mountpoint
        self._stale = stale  # paths a refresh made stale before it started (a lost writer lease)
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self._stale:
            try:
                self.forget(self._stale)
            except Exception:
                log.exception("could not have the kernel forget what the move to the latest commit changed")
        if self.interval <= 0:
            return  # (refresh_interval=0: never; a lost lease's move above was the only one)
        while not self._stop_event.wait(self.interval):
            try:
                self.refresh_once()
            except Exception:
                log.exception("a refresh failed; the next one is in %g s", self.interval)

    def refresh_once(self) -> None:
        try:
            stale = self.fs.refresh()
        except LakeFSError as e:
            log.warning("could not look for a newer commit (still serving the one we have): %s", e)
            return
        except Exception:
            log.exception("could not look for a newer commit (still serving the one we have)")
            return
        if stale:
            log.info("now serving the dataset's latest commit (%d cached paths refreshed)", len(stale))
            self.forget(stale)

    def forget(self, stale: list[str]) -> None:
        """Have the kernel forget the ``stale`` paths of a refresh: their names if deleted,
        their attributes and pages."""
        try:
            self._forget_deleted_names(stale)  # first: one call can drop a whole tensor
        except Exception:  # (the pages below matter more: they would show old bytes)
            log.exception("could not have the kernel forget deleted names (it keeps them "
                          "up to entry_timeout)")
        for path in stale:
            if not self.kernel.attached:
                return  # unmounting
            self.kernel.invalidate("/" + path if path else "/")

    def _forget_deleted_names(self, stale: list[str]) -> None:
        """Have the kernel drop the names of deleted paths (the topmost deleted directory
        takes what is below it along). It would otherwise hold a name it looked up for
        entry_timeout (60 s): an open found it and its read failed with ENOENT. A name
        that is a file now and was a directory (or the reverse) goes too: the kernel's
        inode for it took the new type for damage, and a stat failed with EIO. The
        parents' node ids are looked up through the mount itself (:class:`NodeIds`)."""
        if self.mountpoint is None:
            return
        was_dir = getattr(self.fs, "dirs_before_refresh", frozenset())
        node_ids = NodeIds(self.mountpoint)
        for path in stale:
            parent, _, name = path.rpartition("/")
            try:
                if not self.kernel.attached:
                    return  # unmounting
                if not path:
                    continue
                attr = self.fs.find_attr(path)
                if attr is not None and attr.is_dir() == (path in was_dir):
                    continue  # still there, and what it was
                if parent and not _is_dir(self.fs.find_attr(parent)):
                    continue  # its parent went too (or is a file now): forgotten with it
                ino = node_ids.of(parent)
                if ino is None:
                    return  # not libfuse's node ids (use_ino): leave it to entry_timeout
                self.kernel.forget_name(ino, name)
            except (OSError, LakeFSError) as e:
                log.debug("could not have the kernel forget the name %s: %s", path, e)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join()
