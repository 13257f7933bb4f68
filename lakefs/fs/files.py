"""The pieces of a mounted file: its attributes, a directory listing, the buffer of a file
being written, and an open handle (DatasetFS in tree.py decides what they mean for the
dataset)."""

from __future__ import annotations

import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

DIR, FILE = "dir", "file"


class Attr(NamedTuple):
    """What a stat shows. A tuple, not a frozen dataclass: made once per FUSE getattr and
    per listed entry, where a frozen dataclass's __init__ costs ~4x more."""

    kind: str  # DIR or FILE
    size: int
    mtime_ns: int
    mode: int  # permission bits only

    def is_dir(self) -> bool:
        return self.kind == DIR


class Listing:
    """A directory's entries at one moment, as parallel sequences: ``names``, ``types``
    (``stat.S_IFDIR``/``S_IFREG`` of each) and sizes, mtimes and modes kept in int64
    arrays. A tensor's part comes in bulk from its index; an entry's :class:`Attr` is
    made only when asked for, and READDIRPLUS takes the arrays whole (:meth:`columns`)."""

    def __init__(self, names: list[str], types: list[int], sizes: Any, mtimes: Any, modes: Any):
        self.names = names
        self.types = types
        self._sizes = np.asarray(sizes, dtype=np.int64)
        self._mtimes = np.asarray(mtimes, dtype=np.int64)
        self._modes = np.asarray(modes, dtype=np.int64)
        self._where: dict[str, int] | None = None
        self._types: np.ndarray | None = None

    @classmethod
    def of(cls, entries: Sequence[tuple[str, Attr]]) -> Listing:
        """A listing of a few entries given one by one."""
        return cls([n for n, _ in entries], [stat.S_IFDIR if a.is_dir() else stat.S_IFREG for _, a in entries],
                   [a.size for _, a in entries], [a.mtime_ns for _, a in entries], [a.mode for _, a in entries])

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

    def find(self, name: str) -> int | None:
        """The index of entry ``name`` (a dict built at the first call)."""
        if self._where is None:
            self._where = dict(zip(self.names, range(len(self.names))))
        return self._where.get(name)

    def attr(self, i: int) -> Attr:
        return Attr(DIR if self.types[i] == stat.S_IFDIR else FILE,
                    self._sizes.item(i), self._mtimes.item(i), self._modes.item(i))

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(types, modes, sizes, mtimes)`` as int64 arrays, one value per entry."""
        if self._types is None:
            self._types = np.array(self.types, dtype=np.int64)
        return self._types, self._modes, self._sizes, self._mtimes

    def items(self) -> Iterator[tuple[str, Attr]]:
        for i, name in enumerate(self.names):
            yield name, self.attr(i)

    def __add__(self, other: Listing) -> Listing:
        return Listing(self.names + other.names, self.types + other.types,
                       np.concatenate([self._sizes, other._sizes]),
                       np.concatenate([self._mtimes, other._mtimes]),
                       np.concatenate([self._modes, other._modes]))


class OpenFile:
    """A file being written: one buffer shared by every handle open on the path."""

    def __init__(self, path: str, data: bytes, *, mode: int, mtime_ns: int, exists: bool, spill: int):
        self.path = path
        self.buf = tempfile.SpooledTemporaryFile(max_size=spill)
        self.buf.write(data)
        self.size = len(data)
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.exists = exists  # committed content exists under this path
        self.dirty = not exists
        self.version = 0  # counts changes to the contents
        self.refs = 0
        self.detached = False  # unlinked or failed: never committed
        self.lock = threading.Lock()

    def write(self, data: bytes, offset: int) -> int:
        if not data:  # pwrite(2) of 0 bytes changes nothing, even past the end
            return 0
        with self.lock:
            if offset > self.size:  # sparse write: fill the hole with zeros
                self.buf.seek(self.size)
                self.buf.write(b"\0" * (offset - self.size))
            self.buf.seek(offset)
            self.buf.write(data)
            self.size = max(self.size, offset + len(data))
            self.dirty = True
            self.version += 1
            self.mtime_ns = time.time_ns()
            return len(data)

    def read(self, size: int, offset: int) -> bytes:
        with self.lock:
            self.buf.seek(offset)
            return self.buf.read(max(0, min(size, self.size - offset)))

    def truncate(self, length: int) -> None:
        with self.lock:
            if length > self.size:
                self.buf.seek(self.size)
                self.buf.write(b"\0" * (length - self.size))
            else:
                self.buf.truncate(length)
            self.size = length
            self.dirty = True
            self.version += 1
            self.mtime_ns = time.time_ns()

    def snapshot(self) -> tuple[bytes, int]:
        """(contents, version) taken together: ``mark_clean(version)`` later clears
        ``dirty`` only if no write came in between (another handle, another thread)."""
        with self.lock:
            self.buf.seek(0)
            return self.buf.read(self.size), self.version

    def mark_clean(self, version: int) -> None:
        with self.lock:
            if self.version == version:
                self.dirty = False

    def getvalue(self) -> bytes:
        return self.snapshot()[0]

    def close(self) -> None:
        self.buf.close()


class Handle:
    """An open file descriptor: a write buffer, or a lazily read snapshot of a file."""

    def __init__(self, path: str, openfile: OpenFile | None = None, loader: Any = None,
                 ranged: Any = None):
        self.path = path
        self.openfile = openfile
        self._loader = loader
        self._ranged = ranged  # read(offset, size) of a large sample: no whole-file load
        self._data: bytes | None = None
        self._lock = threading.Lock()

    def read(self, size: int, offset: int) -> bytes:
        if self.openfile is not None:
            return self.openfile.read(size, offset)
        if self._ranged is not None:
            return self._ranged(offset, size)
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._loader()
        return self._data[offset : offset + size]


def split(path: str) -> tuple[str, str]:
    """``/a/b/c.jpg`` → ``("a/b", "c.jpg")``; the root's parent is ``""``."""
    path = path.strip("/")
    if "/" in path:
        parent, name = path.rsplit("/", 1)
        return parent, name
    return "", path
