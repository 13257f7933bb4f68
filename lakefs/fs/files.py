"""The pieces of a mounted file: its attributes, the buffer of a file being written, and
an open handle (DatasetFS in tree.py decides what they mean for the dataset)."""

from __future__ import annotations

import tempfile
import threading
import time
from typing import Any, NamedTuple

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
