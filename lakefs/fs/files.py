"""The pieces of a mounted file: its attributes, a directory listing, the buffer of a file
being written, and an open handle (DatasetFS in tree.py decides what they mean for the
dataset)."""

from __future__ import annotations

import contextlib
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from lakefs.storage.base import pieces

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

    def overlaid(self, entries: Sequence[tuple[str, Attr]]) -> Listing:
        """This listing with ``entries`` (files being written or held) shown instead of the
        entries of the same names, and the others added; this one is left as it is."""
        out = self + Listing.of([(name, attr) for name, attr in entries if name not in self])  # new arrays
        for name, attr in entries:
            i = self.find(name)
            if i is not None:
                out._sizes[i], out._mtimes[i], out._modes[i] = attr.size, attr.mtime_ns, attr.mode
        return out

    def __add__(self, other: Listing) -> Listing:
        return Listing(self.names + other.names, self.types + other.types,
                       np.concatenate([self._sizes, other._sizes]),
                       np.concatenate([self._mtimes, other._mtimes]),
                       np.concatenate([self._modes, other._modes]))


class OpenFile:
    """A file being written: one buffer shared by every handle open on the path.

    The contents live in one of three places. In memory, where a file written in one
    piece keeps the very bytes object its write brought (no copy). In a temp file once it
    passes ``spill`` bytes. Or, for a big file written front to back into a tensor that
    stores files unchanged, in a :class:`~lakefs.chunks.stream.TileStream` that writes
    each tile as it fills: the file is never held whole nor written twice. The stream is
    offered by :class:`~lakefs.fs.tree.DatasetFS` (``wants_stream`` → ``begin_stream``),
    which knows the tensor; any write that is not an append moves it to a temp file.
    """

    def __init__(self, path: str, data: bytes, *, mode: int, mtime_ns: int, exists: bool, spill: int):
        self.path = path
        self._mem: bytes | bytearray | None = data
        self._file: Any = None  # temp file once spilled
        self.stream: Any = None  # TileStream while streaming
        self.stream_committed = False  # the stream's tiles are a committed sample
        self.spill = spill
        self.appended = not data  # every write so far went to the end: may stream
        self.wants_stream = False  # past spill, in memory, waiting for begin_stream
        self.size = len(data)
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.exists = exists  # committed content exists under this path
        self.dirty = not exists
        self.version = 0  # counts changes to the contents
        self.refs = 0
        self.writers = 0  # handles open for writing (of refs)
        self.detached = False  # unlinked or failed: never committed
        self.lost = False  # dropped with the writer lease (its writers' closes say so)
        # (version, path, error) of the last refusal already answered to a writer
        # (flush, fsync): the same contents under the same name are not stored, nor
        # reported, again (see refused).
        self.refusal: tuple[int, str, Exception] | None = None
        self.lock = threading.Lock()

    def refused(self) -> Exception | None:
        """The refusal answered for these very contents under this very name, if any (a
        rename while open may make them a sample of another tensor, or a plain file)."""
        if self.refusal is None or self.refusal[:2] != (self.version, self.path):
            return None
        return self.refusal[2]

    def write(self, data: bytes, offset: int) -> int:
        if not data:  # pwrite(2) of 0 bytes changes nothing, even past the end
            return 0
        with self.lock:
            if offset != self.size:
                self.appended = False
                if self.stream is not None:
                    self._unstream()
            if self.stream is not None:
                if self.stream_committed:  # appending after a commit: a new version
                    self._unstream()
                    self._file_write(data, offset)
                else:
                    self.stream.write(data)
            else:
                if self._mem is not None and offset + len(data) > self.spill and not self.appended:
                    self._spill()  # never a big hole or rewrite in memory
                if self._file is not None:
                    self._file_write(data, offset)
                else:
                    self._mem_write(data, offset)
            self.size = max(self.size, offset + len(data))
            self.dirty = True
            self.version += 1
            self.mtime_ns = time.time_ns()
            if self._mem is not None and self.size > self.spill:
                if self.appended:
                    self.wants_stream = True  # DatasetFS decides (it knows the tensor)
                else:
                    self._spill()
            return len(data)

    def _mem_write(self, data: bytes, offset: int) -> None:
        mem = self._mem
        if not mem and offset == 0 and isinstance(data, bytes):
            self._mem = data  # the usual case: the whole file in one write, kept as is
            return
        if not isinstance(mem, bytearray):
            mem = self._mem = bytearray(mem)
        if offset > len(mem):  # sparse write: the hole reads as zeros
            mem.extend(bytes(offset - len(mem)))
        mem[offset : offset + len(data)] = data

    def _file_write(self, data: bytes, offset: int) -> None:
        f = self._file
        if offset > self.size:  # sparse write: the hole reads as zeros
            f.truncate(offset)
        f.seek(offset)
        f.write(data)

    def _spill(self) -> None:
        f = tempfile.TemporaryFile()
        f.write(self._mem)
        self._file, self._mem, self.wants_stream = f, None, False

    def fill(self, source: Any, size: int) -> None:
        """Start from ``size`` bytes of the binary file ``source`` (committed contents
        opened for writing), copied into a temp file when they pass ``spill``."""
        with self.lock:
            if size <= self.spill:
                self._mem = source.read(size)
            else:
                f = tempfile.TemporaryFile()
                for piece in pieces(source, size):
                    f.write(piece)
                self._file, self._mem = f, None
            self.size = size
            self.appended = False

    @contextlib.contextmanager
    def contents(self) -> Iterator[tuple[bytes | BinaryIO, int, int]]:
        """(data, size, version) to commit: bytes, or a spilled file's temp file at its
        start, held locked while it is read (``mark_clean(version)`` afterwards)."""
        if self._file is None or self.stream is not None:
            data, version = self.snapshot()
            yield data, len(data), version
            return
        with self.lock:
            self._file.seek(0)
            yield self._file, self.size, self.version

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def begin_stream(self, stream: Any) -> None:
        """Move the contents into ``stream`` (None: this file cannot stream; spill)."""
        with self.lock:
            if not self.wants_stream:
                if stream is not None:
                    stream.abort()
                return
            if stream is None or not self.appended:
                if stream is not None:
                    stream.abort()
                self._spill()
                return
            stream.write(self._mem)
            self.stream, self._mem, self.wants_stream = stream, None, False

    def _unstream(self) -> None:
        """The stream's contents into a temp file (a write that is not an append)."""
        f = tempfile.TemporaryFile()
        step = 8 << 20
        for pos in range(0, self.size, step):
            f.write(self.stream.read(pos, step))
        if not self.stream_committed:
            self.stream.abort()
        self._file, self.stream, self.stream_committed = f, None, False

    def read(self, size: int, offset: int) -> bytes:
        with self.lock:
            size = max(0, min(size, self.size - offset))
            if self.stream is not None:
                return self.stream.read(offset, size)
            if self._file is not None:
                self._file.seek(offset)
                return self._file.read(size)
            return bytes(self._mem[offset : offset + size])

    def truncate(self, length: int) -> None:
        with self.lock:
            if self.stream is not None and length != self.size:
                self._unstream()
            if self._mem is not None and length > self.spill:
                self._spill()
            if self._file is not None:
                self._file.truncate(length)
            elif self._mem is not None:
                if length == 0:
                    self._mem, self.appended = b"", True
                else:
                    mem = self._mem = bytearray(self._mem)
                    if length > len(mem):
                        mem.extend(bytes(length - len(mem)))
                    else:
                        del mem[length:]
                    self.appended = False
            self.size = length
            self.dirty = True
            self.version += 1
            self.mtime_ns = time.time_ns()

    def snapshot(self) -> tuple[bytes, int]:
        """(contents, version) taken together: ``mark_clean(version)`` later clears
        ``dirty`` only if no write came in between (another handle, another thread)."""
        with self.lock:
            if self.stream is not None:
                return self.stream.read(0, self.size), self.version
            if self._file is not None:
                self._file.seek(0)
                return self._file.read(self.size), self.version
            return bytes(self._mem), self.version  # bytes: no copy; a bytearray: a frozen copy

    def mark_clean(self, version: int) -> None:
        with self.lock:
            if self.version == version:
                self.dirty = False

    def close(self) -> None:
        with self.lock:
            if self.stream is not None and not self.stream_committed:
                self.stream.abort()  # never committed: its tiles are garbage
            self.stream = None
            if self._file is not None:
                self._file.close()
                self._file = None
            self._mem = b""


class Handle:
    """An open file descriptor: a write buffer, or a lazily read snapshot of a file."""

    def __init__(self, path: str, openfile: OpenFile | None = None, loader: Any = None,
                 ranged: Any = None, *, writes: bool = False, pid: int | None = None):
        self.path = path
        self.openfile = openfile
        self.writes = writes  # opened for writing (counted in openfile.writers)
        self.pid = pid  # the thread that opened it (FUSE's caller), when known
        self._loader = loader
        self._ranged = ranged  # read(offset, size) of a large sample: no whole-file load
        self._data: bytes | None = None
        self._lock = threading.Lock()
        # A snapshot handle's committed contents (see DatasetFS._content_token), and
        # whether its reads must bypass the kernel's page cache (direct_io).
        self.token: tuple | None = None
        self.generation = -1  # the dataset's generation when it was opened
        self.direct = False

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


class PathReaders:
    """Readers of files by path, for READs that come without a handle (a read-only
    mount in the kernel's no-open mode): the handle a path's reads share, kept for the
    dataset's current generation only (an older one's would keep that commit's tables
    alive), the oldest dropped first past ``max_files``, past ``max_bytes`` of files
    held whole (a small sample, or a big one that must be decoded: an lz4 sample, an
    array's .npy), or past ``max_windows`` big files read through a window of tiles
    (each holds up to lakefs.chunks.tiles WINDOW + SPARE tile buffers, 40 MB of 8 MB
    tiles, and the decompressed payloads of chunk-compressed ones).
    The kernel asks for a file in a few large READs (its readahead), so a handful of
    recent paths covers every file being read."""

    def __init__(self, max_bytes: int = 64 << 20, max_files: int = 256, max_windows: int = 4) -> None:
        self.max_bytes, self.max_files, self.max_windows = max_bytes, max_files, max_windows
        self._readers: dict[str, tuple[Handle, int, bool]] = {}  # path → (handle, bytes held, a window)
        self._generation: int | None = None
        self._bytes = self._windows = 0

    def get(self, path: str, generation: int) -> Handle | None:
        self._at(generation)
        kept = self._readers.get(path)
        return None if kept is None else kept[0]

    def put(self, path: str, generation: int, handle: Handle, held: int, *, window: bool = False) -> None:
        """Keep ``handle`` of ``path``: it holds ``held`` bytes once read, or a window of tiles."""
        self._at(generation)
        self._drop(path)
        self._readers[path] = (handle, held, window)
        self._bytes += held
        self._windows += window
        while len(self._readers) > 1 and (self._bytes > self.max_bytes or len(self._readers) > self.max_files
                                          or self._windows > self.max_windows):
            if self._windows > self.max_windows:  # the oldest window; other readers cost no tiles
                self._drop(next(p for p, kept in self._readers.items() if kept[2]))
            else:
                self._drop(next(iter(self._readers)))

    def _at(self, generation: int) -> None:
        if generation != self._generation:  # the dataset moved on (a refresh): read it again
            self._readers.clear()
            self._bytes = self._windows = 0
            self._generation = generation

    def _drop(self, path: str) -> None:
        kept = self._readers.pop(path, None)
        if kept is not None:
            self._bytes -= kept[1]
            self._windows -= kept[2]


def _tgid(pid: int) -> int | None:
    """The process of thread ``pid`` (/proc), None if it is gone or unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def same_process(a: int, b: int) -> bool:
    """Whether threads ``a`` and ``b`` are of one process; True when it cannot be told
    (one of them is gone)."""
    if a == b:
        return True
    ta, tb = _tgid(a), _tgid(b)
    return ta is None or tb is None or ta == tb


class RangeReader:
    """A read-only binary file over ``read(offset, size)`` (committed contents read in
    pieces: a big sample or staged file is copied without being held whole)."""

    def __init__(self, read: Any, size: int) -> None:
        self._read = read
        self.size = size
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        data = bytes(self._read(self.pos, n)) if n > 0 else b""  # a tile view: copied out
        self.pos += len(data)
        return data


def split(path: str) -> tuple[str, str]:
    """``/a/b/c.jpg`` → ``("a/b", "c.jpg")``; the root's parent is ``""``."""
    path = path.strip("/")
    if "/" in path:
        parent, name = path.rsplit("/", 1)
        return parent, name
    return "", path
