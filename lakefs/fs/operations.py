"""The FUSE adapter: a thin translator from FUSE calls to :class:`DatasetFS`.

Every operation goes through :func:`_op`, which maps a lakefs error to its ``errno``
(each error class carries it) and logs one line naming the path and the reason; any
other exception is logged with its traceback and answered with EIO, never the silent
EINVAL the binding would give (FUSE-NOTES.md).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
import weakref
from itertools import repeat
from typing import Any

from lakefs.errors import LakeFSError, LeaseLostError, StorageError
from lakefs.fs.binding import (
    LIBFUSE_MAJOR,
    READ_TAKES_VIEWS,
    BaseOperations,
    DirEntries,
    FuseOSError,
    KernelCache,
    StatRecord,
    fuse_get_context,
    resolve_utimens,
)
from lakefs.fs.files import DIR, Attr, Listing
from lakefs.fs.tree import BLKSIZE, DatasetFS

log = logging.getLogger("lakefs.fs")

# libfuse 3's conn->capable bit for a kernel that takes ENOSYS from OPEN as "no opens"
# (fuse_common.h; the kernel's FUSE_NO_OPEN_SUPPORT, Linux 4.19).
FUSE_CAP_NO_OPEN_SUPPORT = 1 << 17

# Failures that are part of normal operation: not worth a log line. (A lookup of a
# name that cannot exist is one: the create of that name logs the reason.) On a
# read-only mount so is a name not found: the writer deleted what a reader had just
# listed. A stored object not found is not (a plain file's contents gone: damage). Nor
# is a rename answered EXDEV: that is how `mv` of a sample into another tensor works (mv
# copies it), and a copy refused at its close logs why there (a WARNING per file moved
# was found by QA).
_QUIET = {("getattr", errno.ENOENT), ("getattr", errno.EINVAL), ("getattr", errno.ENAMETOOLONG),
          ("getxattr", errno.ENODATA), ("readdir", errno.ENOENT), ("readdir_stat", errno.ENOENT),
          ("rename", errno.EXDEV)}


def _op(func):
    name = func.__name__

    @functools.wraps(func)
    def wrapper(self, *args):
        try:
            return func(self, *args)
        except FuseOSError:
            raise
        except LakeFSError as e:
            # (reported: the same error answered again, e.g. close after fsync)
            quiet = (name, e.errno) in _QUIET or (
                e.errno == errno.ENOENT and self.fs.read_only and not isinstance(e, StorageError))
            if not quiet and not getattr(e, "reported", False):
                log.warning("%s %s: %s", name, args[0] if args else "", e)
            raise FuseOSError(e.errno) from e
        except OSError as e:
            log.warning("%s %s: %s", name, args[0] if args else "", e)
            raise FuseOSError(e.errno or errno.EIO) from e
        except Exception as e:
            log.exception("%s %s: internal error: %s", name, args[0] if args else "", e)
            raise FuseOSError(errno.EIO) from e

    return wrapper


def _xattr_refusal(name: str) -> int:
    """No attribute can be set or removed: ENOTSUP, what a filesystem without settable
    xattrs answers. Also for the ``user.lakefs.*`` that describe a sample (read-only):
    EPERM there made ``cp -a`` and ``mv`` of a file copied out of a mount with its
    attributes print six "Operation not permitted" lines per file, where coreutils takes
    ENOTSUP as "this filesystem keeps no such attributes" and goes on quietly."""
    return errno.ENOTSUP


def _fh(fi: Any) -> int:
    """The handle number from a raw ``fuse_file_info`` (``raw_fi=True``) or an int."""
    return fi if isinstance(fi, int) else fi.fh


class LakeOperations(BaseOperations):
    """fusepy ``Operations`` for a mounted dataset. Use with ``FUSE(..., raw_fi=True)``."""

    def __init__(self, fs: DatasetFS, *, xattr: bool = True, on_ready=None, no_open: bool = False) -> None:
        self.fs = fs
        # A read-only mount answers the first OPEN with ENOSYS: the kernel then sends no
        # OPEN or RELEASE for files (FUSE no-open), keeps their pages across opens, and
        # READs come without a handle (DatasetFS.read_path). Two round trips fewer per
        # file, and a warm read never reaches this process (docs/BENCHMARKS.md).
        # Only libfuse 3 says whether the kernel can (init_with_config); fusepy has no init
        # with the connection, and libfuse 2 does not pass the kernel's flag on.
        self.no_open = no_open and fs.read_only and LIBFUSE_MAJOR >= 3
        self._on_ready = on_ready
        self.kernel = KernelCache()  # for changes the kernel did not see (refresh)
        self._dirs: dict[int, DirEntries | None] = {}  # open directory → its listing (readdir_stat)
        self._dirs_lock = threading.Lock()
        # The entries made from a listing, for as long as DatasetFS keeps that listing
        # (until the dataset changes): a warm ls -l reuses names encoded and stats packed.
        self._entries: weakref.WeakKeyDictionary[Listing, DirEntries] = weakref.WeakKeyDictionary()
        self._next_dir = 0
        if not xattr:  # no getxattr/listxattr ops at all: ls -l skips the round trips
            self.getxattr = None  # type: ignore[assignment]
            self.listxattr = None  # type: ignore[assignment]

    def _stat(self, attr: Attr) -> dict[str, int]:
        return self._stat_fields(stat.S_IFDIR if attr.is_dir() else stat.S_IFREG, attr.mode, attr.size, attr.mtime_ns)

    def _stat_fields(self, file_type: Any, mode: Any, size: Any, mtime_ns: Any) -> dict[str, Any]:
        """A getattr dict from ints, or from arrays (one value per entry of a listing):
        the same expressions serve both."""
        return {
            "st_mode": file_type | mode, "st_nlink": 1 + (file_type == stat.S_IFDIR), "st_size": size,
            "st_mtime": mtime_ns, "st_ctime": mtime_ns, "st_atime": mtime_ns,
            "st_uid": self.fs.uid, "st_gid": self.fs.gid,
            # st_blocks counts 512-byte units (stat(2)); du reads it.
            "st_blksize": BLKSIZE, "st_blocks": (size + 511) // 512,
        }

    def init_with_config(self, conn: Any, config: Any) -> None:
        super().init_with_config(conn, config)
        if self.no_open and not getattr(conn, "capable", 0) & FUSE_CAP_NO_OPEN_SUPPORT:
            # A kernel before Linux 4.19 fails every open answered ENOSYS.
            self.no_open = False
            log.info("the kernel cannot read files without opens (FUSE no-open): files are opened")
        self.kernel.attach()
        if self._on_ready is not None:  # the kernel has answered INIT: we are mounted
            self._on_ready()

    def destroy(self, path: str) -> None:
        self.kernel.detach()
        try:
            self.fs.shutdown()
        except LeaseLostError:
            pass  # (logged once as it was found; the mount's last line says what was lost)
        except LakeFSError as e:  # e.g. the disk is full: one clear line, no traceback
            log.error("final commit at unmount failed: %s", e)
        except Exception:
            log.exception("final commit at unmount failed")

    @_op
    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        return self._stat(self.fs.getattr(path))

    @_op
    def stat_record(self, path: str, fh: Any = None) -> StatRecord | int:
        """getattr as the binding's fast path takes it (lakefs.fs.binding.FUSE.fgetattr):
        a missing name is -ENOENT, not an exception."""
        attr = self.fs.find_attr(path)
        if attr is None:
            return -errno.ENOENT
        if attr.kind == DIR:
            return StatRecord(stat.S_IFDIR | attr.mode, 2, attr.size, attr.mtime_ns, self.fs.uid, self.fs.gid,
                              BLKSIZE)
        return StatRecord(stat.S_IFREG | attr.mode, 1, attr.size, attr.mtime_ns, self.fs.uid, self.fs.gid, BLKSIZE)

    @_op
    def readdir(self, path: str, fh: Any) -> list:
        listing = self.fs.listing(path)
        return [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0), *zip(listing.names, listing.types, repeat(0))]

    def opendir(self, path: str) -> int:
        with self._dirs_lock:
            self._next_dir += 1
            self._dirs[self._next_dir] = None
            return self._next_dir

    def releasedir(self, path: str, fh: int) -> int:
        with self._dirs_lock:
            self._dirs.pop(fh, None)
        return 0

    @_op
    def readdir_stat(self, path: str, fh: int, offset: int = 0) -> DirEntries:
        """The listing for READDIRPLUS (see lakefs.fs.binding.FUSE), "." and ".." first:
        taken at offset 0 and kept with the open directory for the calls that continue it."""
        entries = self._dirs.get(fh) if offset else None
        if entries is None:
            listing = self.fs.listing(path)
            with self._dirs_lock:
                entries = self._entries.get(listing)
            if entries is None:
                entries = DirEntries([".", "..", *listing.names], [stat.S_IFDIR, stat.S_IFDIR, *listing.types],
                                     self._stat_fields(*listing.columns()), first_stat=2)
            with self._dirs_lock:
                self._entries[listing] = entries
                if fh in self._dirs:
                    self._dirs[fh] = entries
        return entries

    @_op
    def open(self, path: str, fi: Any) -> int:
        if self.no_open:
            raise FuseOSError(errno.ENOSYS)  # (not an error: the open goes on without us)
        writes = (fi.flags & os.O_ACCMODE) != os.O_RDONLY
        fi.fh = self.fs.open(path, fi.flags, pid=fuse_get_context()[2] if writes else None)
        if (fi.flags & os.O_ACCMODE) == os.O_RDONLY:
            if hasattr(fi, "noflush"):
                fi.noflush = 1  # nothing to commit on close: skip the FLUSH round trip
            if self.fs.handle(fi.fh).direct:  # older contents of it still open (DatasetFS)
                fi.direct_io = 1
        return 0

    @_op
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        fh = self.fs.create(path, mode, pid=fuse_get_context()[2])
        if fi is None:
            return fh
        fi.fh = fh
        return 0

    @_op
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes | memoryview:
        fh = _fh(fi)
        data = self.fs.read_path(path, size, offset) if self.no_open and not fh else self.fs.read(fh, size, offset)
        return data if READ_TAKES_VIEWS or type(data) is bytes else bytes(data)

    @_op
    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self.fs.write(_fh(fi), data, offset)

    @_op
    def flush(self, path: str, fi: Any) -> int:
        if self.no_open and not _fh(fi):
            raise FuseOSError(errno.ENOSYS)  # nothing to commit: the kernel stops sending FLUSH
        self.fs.flush(_fh(fi), pid=fuse_get_context()[2])
        return 0

    @_op
    def release(self, path: str, fi: Any) -> int:
        self.fs.release(_fh(fi))
        return 0

    @_op
    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        if self.no_open and not _fh(fi):
            return 0  # a read-only file: nothing to sync
        self.fs.fsync(_fh(fi))
        return 0

    @_op
    def fsyncdir(self, path: str, datasync: int, fi: Any) -> int:
        self.fs.fsyncdir(path)
        return 0

    @_op
    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        self.fs.truncate(path, length, None if fh is None else _fh(fh))
        return 0

    @_op
    def unlink(self, path: str) -> int:
        self.fs.unlink(path)
        return 0

    @_op
    def mkdir(self, path: str, mode: int) -> int:
        self.fs.mkdir(path, mode)
        return 0

    @_op
    def rmdir(self, path: str) -> int:
        self.fs.rmdir(path)
        return 0

    @_op
    def rename(self, old: str, new: str) -> int:
        self.fs.rename(old, new)
        return 0

    @_op
    def utimens(self, path: str, times: Any = None) -> int:
        _, mtime_ns = resolve_utimens(times)
        if mtime_ns is not None:
            self.fs.utimens(path, mtime_ns)
        return 0

    @_op
    def chmod(self, path: str, mode: int) -> int:
        self.fs.chmod(path, mode)
        return 0

    @_op
    def chown(self, path: str, uid: int, gid: int) -> int:
        self.fs.chown(path)  # ownership is the mounting user's; accept and ignore
        return 0

    @_op
    def statfs(self, path: str) -> dict[str, int]:
        return self.fs.statfs()

    @_op
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.fs.getxattr(path, name)

    @_op
    def listxattr(self, path: str) -> list[str]:
        return self.fs.listxattr(path)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise FuseOSError(_xattr_refusal(name))

    def removexattr(self, path: str, name: str) -> int:
        raise FuseOSError(_xattr_refusal(name))

    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise FuseOSError(errno.EPERM)
