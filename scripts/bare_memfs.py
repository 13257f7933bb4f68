#!/usr/bin/env python3
"""A bare in-memory filesystem: the floor that lakefs's mount is benchmarked against.

It is written against the same binding (lakefs.fs.binding) and mounted with the same FUSE
options lakefs uses (attr/entry timeouts, kernel_cache, big_writes on libfuse 2,
max_write 1 MiB on libfuse 3), with no storage behind it: what it costs is the binding's
and the kernel's own cost. Directories and regular files only; everything lives in one
dict keyed by absolute path, guarded by one lock (the mount runs multi-threaded).

    python scripts/bare_memfs.py MOUNTPOINT [-f] [-s] [-o opts]
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lakefs.fs.binding import (  # noqa: E402
    FUSE,
    BaseOperations,
    FuseOSError,
    fuse_get_context,
    mount_options,
    parse_mount_options,
    resolve_utimens,
)

BLOCK_SIZE = 128 << 10  # st_blksize: makes cp/cat read in large pieces (FUSE-NOTES.md)
NAME_MAX = 255


class FileData:
    """File contents as a list of blocks of at most 1 MiB.

    One growing bytearray would be re-copied on every reallocation (measured: 130 MB/s
    for 1 MiB appends instead of ~800). A block holds only the bytes written so far;
    anything between its end and the next block, or the file size, reads as zeros.
    A small file written in one piece (``cp`` of a photo) keeps the written ``bytes`` as
    its block, as lakefs keeps them: copying it into fresh memory cost this floor ~60 µs
    a file that no filesystem needs to pay, which flattered every ratio to it.
    """

    BLOCK = 1 << 20

    def __init__(self) -> None:
        self.blocks: list[bytes | bytearray] = []
        self.size = 0

    def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)
        parts = []
        while offset < end:
            idx, start = divmod(offset, self.BLOCK)
            stop = min(self.BLOCK, start + end - offset)
            part = self.blocks[idx][start:stop] if idx < len(self.blocks) else b""
            parts.append(bytes(part) + bytes(stop - start - len(part)))
            offset += stop - start
        return b"".join(parts)

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return  # a zero-length write does not extend the file (pwrite(2))
        if not self.blocks and offset == 0 and type(data) is bytes and len(data) <= self.BLOCK:
            self.blocks.append(data)  # (immutable: made a bytearray at its first change)
            self.size = max(self.size, len(data))
            return
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            idx, start = divmod(offset + pos, self.BLOCK)
            n = min(self.BLOCK - start, len(view) - pos)
            while len(self.blocks) <= idx:
                self.blocks.append(bytearray())
            block = self.blocks[idx]
            if type(block) is bytes:
                block = self.blocks[idx] = bytearray(block)
            if len(block) < start:
                block.extend(bytes(start - len(block)))
            block[start : start + n] = view[pos : pos + n]
            pos += n
        self.size = max(self.size, offset + len(data))

    def truncate(self, size: int) -> None:
        if size < self.size:
            keep = -(-size // self.BLOCK)  # blocks still (partly) inside the file
            del self.blocks[keep:]
            if keep and keep <= len(self.blocks):
                self.blocks[keep - 1] = self.blocks[keep - 1][: size - (keep - 1) * self.BLOCK]
        self.size = size


@dataclass
class Node:
    mode: int
    uid: int
    gid: int
    atime: int
    mtime: int
    ctime: int
    data: FileData | None = None  # None for directories
    children: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return self.data.size if self.data is not None else 0

    def attrs(self) -> dict[str, Any]:
        size = self.size
        return {
            "st_mode": self.mode,
            "st_nlink": 2 + len(self.children) if self.data is None else 1,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": BLOCK_SIZE,
            "st_atime": self.atime,
            "st_mtime": self.mtime,
            "st_ctime": self.ctime,
        }


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise FuseOSError(errno.ENAMETOOLONG)
    return parent or "/", name


class BareMemFS(BaseOperations):
    """Only the operations ordinary tools need; no flush (it costs reads 25-50%)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        now = time.time_ns()
        root = Node(stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), now, now, now)
        self._nodes: dict[str, Node] = {"/": root}
        self._statfs_blocks = 1 << 24  # 64 GiB of 4 KiB blocks: plausible for df/cp

    @staticmethod
    def _new(mode: int, data: FileData | None) -> Node:
        uid, gid, _pid = fuse_get_context()
        now = time.time_ns()
        return Node(mode, uid, gid, now, now, now, data)

    def _get(self, path: str) -> Node:
        node = self._nodes.get(path)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        return node

    def _file(self, path: str) -> Node:
        node = self._get(path)
        if node.data is None:
            raise FuseOSError(errno.EISDIR)
        return node

    def _add(self, path: str, node: Node) -> None:
        parent_path, name = _split(path)
        parent = self._get(parent_path)
        if parent.data is not None:
            raise FuseOSError(errno.ENOTDIR)
        if path in self._nodes:
            raise FuseOSError(errno.EEXIST)
        self._nodes[path] = node
        parent.children.add(name)
        parent.mtime = parent.ctime = node.ctime

    def _remove(self, path: str) -> Node:
        parent_path, name = _split(path)
        node = self._nodes.pop(path)
        parent = self._nodes[parent_path]
        parent.children.discard(name)
        parent.mtime = parent.ctime = time.time_ns()
        return node

    # --- metadata -------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        with self._lock:
            return self._get(path).attrs()

    def readdir(self, path: str, fh: int) -> list[str]:
        with self._lock:
            node = self._get(path)
            if node.data is not None:
                raise FuseOSError(errno.ENOTDIR)
            return [".", "..", *sorted(node.children)]

    def chmod(self, path: str, mode: int) -> int:
        with self._lock:
            node = self._get(path)
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            node.ctime = time.time_ns()
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._lock:
            node = self._get(path)
            # (uid_t)-1 / (gid_t)-1 mean "leave unchanged" (chown(2)).
            if uid not in (-1, 0xFFFFFFFF):
                node.uid = uid
            if gid not in (-1, 0xFFFFFFFF):
                node.gid = gid
            node.ctime = time.time_ns()
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        atime, mtime = resolve_utimens(times)
        with self._lock:
            node = self._get(path)
            if atime is not None:
                node.atime = atime
            if mtime is not None:
                node.mtime = mtime
            node.ctime = time.time_ns()
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        with self._lock:
            used = sum(n.size for n in self._nodes.values())
        used_blocks = (used + 4095) // 4096
        free = max(self._statfs_blocks - used_blocks, 0)
        return {
            "f_bsize": 4096,
            "f_frsize": 4096,
            "f_blocks": self._statfs_blocks,
            "f_bfree": free,
            "f_bavail": free,
            "f_files": 1 << 20,
            "f_ffree": (1 << 20) - len(self._nodes),
            "f_favail": (1 << 20) - len(self._nodes),
            "f_namemax": NAME_MAX,
        }

    # --- namespace ------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        with self._lock:
            self._add(path, self._new(stat.S_IFDIR | (mode & 0o7777), None))
        return 0

    def rmdir(self, path: str) -> int:
        with self._lock:
            node = self._get(path)
            if node.data is not None:
                raise FuseOSError(errno.ENOTDIR)
            if node.children:
                raise FuseOSError(errno.ENOTEMPTY)
            self._remove(path)
        return 0

    def unlink(self, path: str) -> int:
        with self._lock:
            if self._get(path).data is None:
                raise FuseOSError(errno.EISDIR)
            self._remove(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            node = self._get(old)
            if old == new:
                return 0
            _split(new)
            target = self._nodes.get(new)
            if target is not None:
                if node.data is None and target.data is not None:
                    raise FuseOSError(errno.ENOTDIR)
                if node.data is not None and target.data is None:
                    raise FuseOSError(errno.EISDIR)
                if target.data is None and target.children:
                    raise FuseOSError(errno.ENOTEMPTY)
                self._remove(new)
            if new.startswith(old + "/"):
                raise FuseOSError(errno.EINVAL)
            moved = {p: n for p, n in self._nodes.items() if p.startswith(old + "/")}
            self._remove(old)
            self._add(new, node)
            for p, n in moved.items():
                del self._nodes[p]
                self._nodes[new + p[len(old):]] = n
            node.ctime = time.time_ns()
        return 0

    # --- file data ------------------------------------------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        with self._lock:
            self._add(path, self._new(stat.S_IFREG | (mode & 0o7777), FileData()))
        return 0

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            node = self._file(path)
            if flags & os.O_TRUNC and node.data is not None and node.size:
                node.data.truncate(0)
                node.mtime = node.ctime = time.time_ns()
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            node = self._file(path)
            assert node.data is not None
            return node.data.read(offset, size)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            node = self._file(path)
            assert node.data is not None
            node.data.write(offset, data)
            node.mtime = node.ctime = time.time_ns()
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._lock:
            node = self._file(path)
            assert node.data is not None
            node.data.truncate(length)
            node.mtime = node.ctime = time.time_ns()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    parser.add_argument("-s", "--single-threaded", action="store_true", help="one FUSE thread")
    parser.add_argument("-o", dest="options", default="", help="mount options, comma separated")
    parser.add_argument("-d", "--debug", action="store_true", help="libfuse debug output")
    args = parser.parse_args(argv)

    # libfuse 3 chdir("/")s even in the foreground: resolve the mountpoint first.
    mountpoint = os.path.abspath(args.mountpoint)
    if not os.path.isdir(mountpoint):
        print(f"bare_memfs: mountpoint {mountpoint} is not a directory", file=sys.stderr)
        return 2
    options, tuning = mount_options(fsname="bare_memfs", extra=parse_mount_options(args.options))
    operations = BareMemFS()
    operations.conn_tuning = tuning
    try:
        FUSE(
            operations,
            mountpoint,
            foreground=args.foreground,
            nothreads=args.single_threaded,
            debug=args.debug,
            **options,
        )
    except RuntimeError as exc:  # libfuse's own message is already on stderr
        print(f"bare_memfs: mount of {mountpoint} failed ({exc})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
