"""Filesystem semantics of a mounted dataset, with no FUSE import (DESIGN §4).

Paths are ``/``-rooted strings. Directories are the root, groups, tensors, pending
directories (``mkdir`` not yet used) and plain directories (a hidden name such as
``.git`` or ``.ipynb_checkpoints``, in any directory, and everything made inside one:
they hold plain files and plain directories only, and leave their parent's kind alone).
Files are samples (``<key><ext>`` in a tensor that
accepts the extension, one per key: see :meth:`DatasetFS._tensor_for`), staged files
(anything else: rsync temp files, a README, ``index.tmp`` beside ``index.db``), and
files being written, which live in an :class:`OpenFile` buffer until ``flush``/``close``
commits them, which is where errors (undecodable content, refused transcodes) reach the
writer. A closed staging file that fits in memory is *held*: kept in its buffer until it
is renamed (rsync's ``.name.XXXXXX`` → ``name.jpg`` then stores it once, as the sample),
unlinked, or the next commit stores it (``Dataset.before_commit``), instead of being
stored at close, read back at the rename and deleted after the commit.
:class:`lakefs.fs.operations.LakeOperations` translates FUSE calls into these.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from lakefs.config import Config
from lakefs.dataset import Dataset, Sample, Tensor
from lakefs.dataset.names import NAME_MAX, is_plain_path, split_filename
from lakefs.dataset.samples import Ahead
from lakefs.errors import (
    BadHandleError,
    BusyError,
    CrossDeviceError,
    DirectoryNotEmptyError,
    InvalidNameError,
    InvalidSampleError,
    IsADirectoryError_,
    LakeFSError,
    LeaseLostError,
    NameTooLongError,
    NoSuchAttributeError,
    NotADirectoryError_,
    NotPermittedError,
    ReadOnlyError,
    SampleNotFoundError,
    StoredExtensionError,
    TensorExistsError,
    UnsupportedError,
)
from lakefs.fs.files import DIR, FILE, Attr, Handle, Listing, OpenFile, PathReaders, RangeReader, same_process, split
from lakefs.storage.base import pieces, read_exactly

log = logging.getLogger("lakefs.fs")

BLKSIZE = 128 << 10  # st_blksize: makes cat/cp read in large pieces (FUSE-NOTES.md)
LOOKUP_CACHE = 1 << 16  # paths whose lookup is remembered between changes
# Directory entries kept in listings between changes: ~500 B each with the names, the
# lookup dict and the packed stats the mount keeps with them (tracemalloc, 100k-file
# tensor), so at most ~130 MB. A bigger directory is listed afresh at each opendir.
LISTING_CACHE = 1 << 18
LISTING_AFTER = 8  # lookups in 1/8 of a tensor's rows make its listing answer the rest
# Closed staging files kept in memory until their rename or the next commit, at most
# (see DatasetFS._may_hold): rsync -a stages every file it copies and renames it at once.
# libfuse renames a file that is unlinked (or renamed over) while open to
# ".fuse_hidden%08x%08x" and unlinks that name at its last close (lib/fuse.c,
# hide_node; no hard_remove).
_HIDDEN_NAME = re.compile(r"\.fuse_hidden[0-9a-f]{16}")
# Handles opened this soon after a file's old pages were sent away read past the cache
# (the kernel forgets them from another thread, normally within milliseconds).
FORGET_SECONDS = 1.0
HOLD_BYTES = 64 << 20
HOLD_FILES = 4096
# A file stored under another name than it was written under (a PNG into a jpeg tensor
# shows as .jpg) takes touch, chmod and chown, and writes, under the name written for
# this long (the kernel keeps that name for entry_timeout; see DatasetFS._set_meta):
# shutil.copy2/copytree and unzip set times and modes by name after the close.
WRITTEN_NAME_SECONDS = 60.0
NAMES_KEPT = 4096  # of those, and of refused new names (DatasetFS._vanished), at most
#: A tensor this mount made of a first file, given a subdirectory, becomes a group of
#: plain files while it holds at most this many samples, this many bytes in all
#: (DatasetFS._regroup): a folder's few loose files. Any other tensor refuses it.
REGROUP_FILES = 64
REGROUP_BYTES = 64 << 20

#: Errors refusing a file's contents under its name: the same again for the same ones.
_REFUSALS = (InvalidSampleError, UnsupportedError, InvalidNameError)

# First file in a pending directory → tensor settings (DESIGN §4), unless the config
# has defaults for that tensor name.
INFER_BY_EXT: dict[str, dict[str, Any]] = {
    ".json": {"htype": "json"},
    ".txt": {"htype": "text"},
    ".npy": {"htype": "generic"},
}


class _Ready:
    """A file's contents (``version`` of them) prepared as a sample of ``tensor`` without
    the locks (:meth:`DatasetFS.flush`): the probe and transcode's result, or refusal."""

    __slots__ = ("tensor", "name", "version", "data", "done", "ahead", "error", "key")

    def __init__(self, tensor: Tensor, name: str, version: int, data: bytes):
        self.tensor, self.name, self.version, self.data = tensor, name, version, data
        self.done = False
        self.ahead: Ahead | None = None
        self.error: LakeFSError | None = None
        self.key: tuple | None = None  # the settings it was prepared by

    def refusal(self) -> LakeFSError | None:
        """Its refusal, if the tensor's settings are still those it was refused by."""
        return self.error if self.error is not None and self.tensor.format.ahead_key() == self.key else None


class DatasetFS:
    """The mount's semantics over one :class:`Dataset`."""

    def __init__(self, dataset: Dataset, config: Config | None = None, *, read_only: bool = False):
        self.ds = dataset
        self.config = config or Config()
        self.read_only = read_only or dataset.read_only
        self._lock = threading.RLock()
        self._open: dict[str, OpenFile] = {}
        self._handles: dict[int, Handle] = {}
        self._next_fh = 1
        self._dirs_changed = 0  # bumped by every change of a directory's mode or mtime
        self.uid, self.gid = os.getuid(), os.getgid()
        self._lookups: dict[str, Sample | None] = {}
        self._lookups_gen = -1
        self._listings: dict[str, Listing] = {}
        self._listings_key: tuple[int, int] = (-1, -1)
        self._dir_lookups: dict[str, int] = {}  # getattr misses per tensor since the key changed
        self._held: dict[str, int] = {}  # path of a held staging file (in _open) → its size when held
        self._held_bytes = 0
        self._second: dict[str, OpenFile] = {}  # path → a file created as a second name (see _claimed)
        self._made_here: set[str] = set()  # ids of the tensors this mount made of a first file (see _regroup)
        self._tensor_memo: tuple[tuple | None, Tensor | None] = (None, None)  # (see _tensor_for)
        # Called (by the mount) with the absolute path of a file whose refused writes, or
        # older contents, the kernel may still hold: pages, a size; with name=True its
        # name too (a new file refused: see open). It must only queue the path: the
        # kernel forgets it outside the request answered.
        self.forget_cached: Callable[..., None] | None = None
        self._readers: dict[str, dict[tuple | None, int]] = {}  # path → snapshot → handles
        # libfuse's .fuse_hidden* names of unlinked files open for reading → (attr, what
        # the file is made of: see _source, _hide)
        self._hidden: dict[str, tuple[Attr, Any]] = {}
        self._forgetting: dict[str, float] = {}  # path → when its pages were sent away
        self._path_readers = PathReaders()  # (read_path)
        self._written_as: dict[str, tuple[str, float]] = {}  # name written → (name shown, when)
        self._answering = threading.local()  # .setattr: (name written, name shown) (see _set_meta)
        self._vanished: dict[str, int] = {}  # a new file refused at its close → its mode (see open)
        self.not_stored: list[str] = []  # files :meth:`shutdown` could not store (logged)
        self.lost_with_lease: list[str] = []  # files being written or held when the lease was lost
        # Called (by the mount) with the paths the move to the latest commit made stale,
        # once the writer lease is lost (see :meth:`_lease_lost`).
        self.after_lease_lost: Callable[[list[str]], None] | None = None
        self.dirs_before_refresh: frozenset[str] = frozenset()  # (see :meth:`refresh`)
        self._stored_since_commit = 0  # files stored since the last commit began (see pending_files)
        if not self.read_only:
            dataset.before_commit(self.store_held)
            dataset.before_commit(self._commit_begins)  # (after store_held: its files are in this commit)
            dataset.on_lease_lost(self._lease_lost)

    # --- lookup ------------------------------------------------------------------------

    def _dir_kind(self, d: str) -> str | None:
        """"root", "tensor", "group", "pending", "plain" or None for the directory path ``d``."""
        if d == "":
            return "root"
        ds = self.ds
        if d in ds._tensors:
            return "tensor"
        m = ds._manifest
        if d in m.groups:
            return "group"
        if d in m.pending_dirs:
            return "plain" if is_plain_path(d) else "pending"
        return None

    def _tensor_for(self, parent: str, name: str, moving: str | None = None) -> Tensor | None:
        """The tensor ``name`` would be a sample of, or None for a staged (plain) file: a
        name the tensor does not take, or a second name for a row key a stored sample of
        the tensor holds (``report.docx`` beside ``report.pdf``, ``index.db-journal``
        beside ``index.db``): a row holds one file per tensor, and storing it would
        replace that sample. ``moving``: the path renamed to ``name`` (a sample renamed
        to another name of its own key stays that sample).

        Storing one file asks this four times (hold it? prepare it? store it where?), so
        the last answer is kept until the dataset or a directory changes."""
        memo_key = (parent, name, moving, self.ds.generation, self._dirs_changed)
        if self._tensor_memo[0] == memo_key and not self._second:
            return self._tensor_memo[1]
        tensor = self.ds._tensors.get(parent)
        if tensor is not None and tensor.accepts_filename(name):
            other = tensor.key_conflict(name)
            if (other is not None and f"{parent}/{other}" != moving) or (
                    self._second and self._claimed(f"{parent}/{name}")):
                tensor = None
        else:
            tensor = None
        # (Not kept while second names are claimed: a claim ends without a change.)
        self._tensor_memo = (None if self._second else memo_key, tensor)
        return tensor

    def _makes_tensor(self, parent: str, name: str) -> bool:
        """Whether a file stored as ``name`` in ``parent`` makes a pending directory a
        tensor (its first sample-named file)."""
        return self._dir_kind(parent) == "pending" and bool(split_filename(name)) and not (
            self._second and self._claimed(f"{parent}/{name}"))

    def _claimed(self, p: str) -> bool:
        """Whether ``p`` is open as a second name for a row key that another file, not
        stored yet, held under a sample name when ``p`` was created (SQLite writes and
        fsyncs ``index.db-journal`` before the new ``index.db`` it was made for): a plain
        file while it is open under that name, so that the first one created is the
        sample, whichever is stored first."""
        of = self._second.get(p)
        if of is None:
            return False
        if self._open.get(p) is of and not of.detached:
            return True
        del self._second[p]  # closed, renamed or replaced since: decided as any file
        return False

    def _key_held_open(self, p: str) -> bool:
        """Whether another file open under a sample name of the row key of ``p`` (a new
        sample name) is not stored yet (call at ``p``'s creation)."""
        parent, name = split(p)
        kind = self._dir_kind(parent)
        parts = split_filename(name)
        if kind not in ("tensor", "pending") or parts is None or len(self._open) < 2:
            return False
        tensor = self.ds._tensors.get(parent)
        if tensor is not None and not tensor.accepts_filename(name):
            return False
        prefix = parent + "/"
        for q, of in self._open.items():
            if q == p or of.exists or of.detached or not q.startswith(prefix) or "/" in q[len(prefix):]:
                continue
            other = split_filename(q[len(prefix):])
            if other and other[0] == parts[0] and not self._claimed(q) and (
                    tensor is None or tensor.accepts_filename(q[len(prefix):])):
                return True
        return False

    def _sample(self, path: str) -> Sample | None:
        """The sample shown at ``path``, or None. Cached until the dataset next changes:
        every file costs the kernel several calls (lookup, getattr, open, read)."""
        if self._lookups_gen != self.ds.generation or len(self._lookups) > LOOKUP_CACHE:
            self._lookups.clear()
            self._lookups_gen = self.ds.generation
        try:
            return self._lookups[path]
        except KeyError:
            pass
        parent, name = split(path)
        tensor = self.ds._tensors.get(parent)
        sample = tensor.find_file(name) if tensor is not None else None
        self._lookups[path] = sample
        return sample

    def _file_stat(self, parent: str, name: str) -> tuple[int, int, int] | None:
        """``(size, mtime_ns, mode)`` of the sample ``name`` in ``parent``, or None.
        Cheaper than :meth:`_sample` on a miss (no Sample is made): a ``stat`` of every
        file in a fresh mount is one LOOKUP each, and each comes here once."""
        tensor = self.ds._tensors.get(parent)
        return None if tensor is None else tensor.file_stat(name)

    def _check_name(self, path: str) -> None:
        if len(path.encode("utf-8", "surrogateescape")) <= NAME_MAX:
            return  # no part can be longer than the whole: the common case, one encode
        for part in path.strip("/").split("/"):
            if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise NameTooLongError(f"{part[:40]}...: name longer than {NAME_MAX} bytes")

    def _require_dir(self, parent: str) -> str:
        kind = self._dir_kind(parent)
        if kind is None:
            if self._file_on_the_way(parent):  # also a file being written or held
                raise NotADirectoryError_(f"{parent!r} is not a directory")
            raise SampleNotFoundError(f"no directory {parent!r}")
        return kind

    def _file_on_the_way(self, d: str) -> bool:
        """Whether the missing directory ``d`` or a missing one above it is a file: the
        kernel's walk to ``d/.g/a`` says ENOTDIR when ``d`` is a file (call with the lock)."""
        while d and self._dir_kind(d) is None:
            if self._exists_file(d):
                return True
            d = split(d)[0]
        return False

    def _writable(self) -> None:
        if self.read_only or self.ds.lease_lost is not None:
            if self.ds.lease_lost is not None:
                raise LeaseLostError(self.ds.lease_lost.refusal())
            raise ReadOnlyError("the mount is read-only")

    # --- attributes --------------------------------------------------------------------

    def getattr(self, path: str) -> Attr:
        attr = self.find_attr(path)
        if attr is None:
            raise SampleNotFoundError(f"no such file {path!r}")
        return attr

    def find_attr(self, path: str) -> Attr | None:
        """:meth:`getattr`, with None for a missing path: every file created through the
        mount starts with lookups of its missing name, which need no exception."""
        self._check_name(path)
        p = path.strip("/")
        with self._lock:
            if self._dir_kind(p) is not None:
                return self._dir_attr(p)
            of = self._open.get(p)
            if of is not None:
                return Attr(FILE, of.size, of.mtime_ns, of.mode)
            if self._hidden and p in self._hidden:
                return self._hidden[p][0]
            parent, name = split(p)
            listing = self._lookup_listing(parent)
            if listing is not None:  # it holds the directory's samples and staged files
                i = listing.find(name)
                if i is not None:
                    return listing.attr(i)
            else:
                st = self._file_stat(parent, name)
                if st is not None:
                    return Attr(FILE, *st)
                f = self.ds._manifest.files.get(p)
                if f is not None:
                    return Attr(FILE, f.size, f.mtime_ns, f.mode)
            answering = getattr(self._answering, "setattr", None)
            if answering is not None and answering[0] == p:
                self._answering.setattr = None
                return self.find_attr("/" + answering[1])
            if parent and self._dir_kind(parent) is None and self._file_on_the_way(parent):
                raise NotADirectoryError_(f"{parent!r} is not a directory")
        return None

    def _note_written_as(self, p: str, shown: str) -> None:
        """The file written (or renamed) as ``p`` is shown as ``shown`` (see :meth:`_shown_as`)."""
        if len(self._written_as) >= NAMES_KEPT:
            del self._written_as[next(iter(self._written_as))]  # the oldest
        self._written_as.pop(p, None)  # (re-inserted last: the newest)
        self._written_as[p] = (shown, time.monotonic())

    def _shown_as(self, p: str) -> str | None:
        """The path of the file written as ``p`` and stored under another name, for
        WRITTEN_NAME_SECONDS after (call with the lock); None once it is gone."""
        entry = self._written_as.get(p)
        if entry is None:
            return None
        shown, since = entry
        if time.monotonic() - since > WRITTEN_NAME_SECONDS or not self._exists_file(shown):
            del self._written_as[p]
            return None
        return shown

    def _exists_file(self, p: str) -> bool:
        return p in self._open or p in self.ds._manifest.files or self._sample(p) is not None

    def readdir(self, path: str) -> list[tuple[str, Attr]]:
        return list(self.listing(path).items())

    def listing(self, path: str) -> Listing:
        """The entries of directory ``path``: a tensor's samples, then subdirectories,
        staged files, and files being written or held (with their current attributes,
        also when a committed version exists).

        Everything but the files being written is kept until the dataset next changes
        (``generation``, or ``_dirs_changed`` for the directories' own mode and mtime,
        which listings of the root and groups show), as ``_sample``
        keeps lookups: a warm ``ls -l`` of a 100k-file tensor rebuilt it every time."""
        d = path.strip("/")
        with self._lock:
            kind = self._require_dir(d)
            committed = self._kept_listing(d)
            if committed is None:
                committed = self._keep_listing(d, kind)
            writing = [(name, Attr(FILE, of.size, of.mtime_ns, of.mode)) for p, of in self._open.items()
                       for parent, name in (split(p),) if parent == d and not of.detached]
            return committed.overlaid(writing) if writing else committed

    def _kept_listing(self, d: str) -> Listing | None:
        """The committed listing of ``d`` if it is kept and still valid (call with the lock)."""
        key = (self.ds.generation, self._dirs_changed)
        if self._listings_key != key:
            self._listings.clear()
            self._dir_lookups.clear()
            self._listings_key = key
        return self._listings.get(d)

    def _keep_listing(self, d: str, kind: str) -> Listing:
        """Build the committed listing of ``d`` and keep it if it fits in LISTING_CACHE,
        forgetting the oldest kept ones as needed."""
        listing = self._build_listing(d, kind)
        if len(listing) <= LISTING_CACHE:
            self._listings[d] = listing
            total = sum(len(x) for x in self._listings.values())
            while total > LISTING_CACHE:  # the newest fits alone: it is popped last, never
                total -= len(self._listings.pop(next(iter(self._listings))))
        return listing

    def _lookup_listing(self, d: str) -> Listing | None:
        """The committed listing of ``d`` to answer a lookup from, or None: a kept one, or
        a tensor's, built once lookups there since the last change reach 1/LISTING_AFTER
        of its rows (a stat of every file). Building costs about what that many lookups
        cost one by one, and each lookup it answers is ~5x cheaper; a few lookups in a
        big tensor, or lookups between writes, never build it."""
        listing = self._kept_listing(d)
        if listing is None and d in self.ds._tensors:
            n = self._dir_lookups[d] = self._dir_lookups.get(d, 0) + 1
            if not n & 63 and n * LISTING_AFTER >= (rows := len(self.ds._tensors[d])) and rows <= LISTING_CACHE:
                listing = self._keep_listing(d, "tensor")
                if d not in self._listings:  # staged files made it too big to keep: count again
                    self._dir_lookups[d] = 0
        return listing

    def _build_listing(self, d: str, kind: str) -> Listing:
        m = self.ds._manifest
        if kind == "tensor":
            names, e = self.ds._tensors[d].file_table()
            out = Listing(names, [stat.S_IFREG] * len(names), e["file_size"], e["mtime_ns"], e["mode"])
            prefix = d + "/"
            plain = [(sub[len(prefix):], self._dir_attr(sub)) for sub in m.pending_dirs
                     if sub.startswith(prefix) and "/" not in sub[len(prefix):]]
            if plain:  # (.ipynb_checkpoints beside the notebooks)
                out = out + Listing.of(plain)
        else:
            prefix = d + "/" if d else ""
            out = Listing.of([(sub[len(prefix):], self._dir_attr(sub))
                              for sub in [*self.ds._tensors, *m.groups, *m.pending_dirs]
                              if sub.startswith(prefix) and "/" not in sub[len(prefix):]])
        staged = [(name, Attr(FILE, f.size, f.mtime_ns, f.mode)) for p, f in m.files.items()
                  for parent, name in (split(p),) if parent == d]
        # By name: the order a reloaded manifest gives them (it keeps files sorted), so a
        # listing shows them in the same order before and after a remount.
        staged = sorted((name, attr) for name, attr in staged if name not in out)
        return out + Listing.of(staged) if staged else out

    def _dir_attr(self, d: str) -> Attr:
        mode, mtime_ns = self.ds.dir_attr(d)  # (lakefs ls shows the same)
        return Attr(DIR, 0, mtime_ns, mode)

    def _dir_changed(self, *dirs: str, now: int | None = None) -> None:
        """An entry was created, removed or renamed in each of ``dirs``: their mtime
        becomes now, as on a local disk (storing or rewriting a file's contents changes
        no directory). One in-memory value each, committed with the dataset."""
        now = now or time.time_ns()
        for d in dirs:
            self.ds.touch_dir(d, now)
        self._dirs_changed += 1

    # --- open / read / write -----------------------------------------------------------

    def _new_handle(self, handle: Handle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = handle
        return fh

    def handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise BadHandleError(f"bad file handle {fh}") from None

    def open(self, path: str, flags: int, *, pid: int | None = None) -> int:
        """A handle of ``path``; ``pid``: the thread opening it (see :meth:`flush`)."""
        p = path.strip("/")
        write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        with self._lock:
            if self._dir_kind(p) is not None:
                raise IsADirectoryError_(f"{path!r} is a directory")
            of = self._open.get(p)
            if not write:
                if of is not None:
                    of.refs += 1
                    return self._new_handle(Handle(p, of))
                if self._hidden and p in self._hidden and self._hidden[p][1] is not None:  # (see _hide)
                    source = self._hidden[p][1]
                    ranged = self._ranged_of(source)
                    handle = Handle(p, ranged=ranged[0]) if ranged else Handle(p, loader=self._loader_of(source))
                    return self._new_handle(handle)
                ranged = self._ranged(p)
                if ranged is not None:
                    handle = Handle(p, ranged=ranged[0])
                else:
                    handle = Handle(p, loader=self._loader(p))
                self._add_reader(handle)
                return self._new_handle(handle)
            self._writable()
            if of is None and (self._vanished or self._written_as) and not self._exists_file(p):
                # The kernel keeps the name of a new file refused at its close (until
                # the mount has it dropped: see _refused), or stored under another name
                # (told it exists at the create), for entry_timeout, and opens it
                # instead of creating it: np.save of a fixed array, or a PNG written
                # again into a jpeg tensor, got ENOENT for a minute.
                if p in self._vanished:
                    return self.create(path, self._vanished.pop(p), pid=pid)
                if (shown := self._shown_as(p)) is not None:
                    return self.create(path, self.getattr("/" + shown).mode, pid=pid)
            if of is None:
                of = self._open_committed(path, empty=bool(flags & os.O_TRUNC))
                self._open[p] = of
                self._adopt_readers(of)
            self._unhold(p)  # being written again: stored (or held) at its next close
            if flags & os.O_TRUNC and of.size:
                of.truncate(0)
            elif flags & os.O_TRUNC:
                of.dirty, of.mtime_ns = True, time.time_ns()
                of.version += 1
            of.refs += 1
            of.writers += 1
            return self._new_handle(Handle(p, of, writes=True, pid=pid))

    def _ranged(self, p: str) -> tuple[Any, int] | None:
        """(read(offset, size), size) for a big committed file read in pieces (a tiled
        sample stored as the file, a staged file past ``spill_size``), else None."""
        return self._ranged_of(self._source(p))

    def _source(self, p: str) -> Sample | Any:
        """What file ``p`` is made of: its Sample, its staged file's record, or None.
        Bound to these contents: they stay readable after ``p`` is replaced (for the
        commit's garbage grace), as open handles read them."""
        sample = self._sample(p)
        return sample if sample is not None else self.ds.staged(p)

    def _ranged_of(self, source: Sample | Any) -> tuple[Any, int] | None:
        if isinstance(source, Sample):
            if source.is_large and source.tensor.format.file_is_stored:  # else: decode once
                return source.file_reader(), source.size  # its own window of tiles
            return None
        f = source
        if f is not None and f.size > self.config.spill_size:
            return self.ds.staged_reader(f), f.size  # (checks its crc32 once read through)
        return None

    def _open_committed(self, path: str, *, empty: bool) -> OpenFile:
        """An :class:`OpenFile` holding the committed contents of ``path`` (or none with
        ``empty``); big contents are copied into its temp file in pieces."""
        p = path.strip("/")
        attr = self.getattr(path)
        of = OpenFile(p, b"", mode=attr.mode, mtime_ns=attr.mtime_ns, exists=True, spill=self.config.spill_size)
        if not empty:
            ranged = self._ranged(p)
            if ranged is not None:
                of.fill(RangeReader(*ranged), ranged[1])
            else:
                data = self._loader(p)()
                of.fill(io.BytesIO(data), len(data))
        return of

    def _loader(self, p: str):
        """A function returning the committed bytes of file ``p`` (read outside the lock)."""
        source = self._source(p)
        if source is None:
            raise SampleNotFoundError(f"no such file '/{p}'")
        return self._loader_of(source)

    def _loader_of(self, source: Sample | Any):
        if isinstance(source, Sample):
            return source.file_bytes
        return lambda: self.ds.read_staged(source)

    def create(self, path: str, mode: int, *, pid: int | None = None) -> int:
        """A new (or emptied) file open for writing; ``pid``: the thread creating it."""
        self._check_name(path)
        p = path.strip("/")
        parent, name = split(p)
        with self._lock:
            self._writable()
            kind = self._require_dir(parent)
            if kind == "root" and not name:
                raise IsADirectoryError_("/ is a directory")
            if self._dir_kind(p) is not None:
                raise IsADirectoryError_(f"{path!r} is a directory")
            self._vanished.pop(p, None)
            self._hidden.pop(p, None)  # (kept after libfuse's unlink of it: see _hide)
            if p in self._open:
                of = self._open[p]
                self._unhold(p)  # being written again: stored (or held) at its next close
                of.truncate(0)
            else:
                now = time.time_ns()
                of = OpenFile(p, b"", mode=stat.S_IMODE(mode), mtime_ns=now,
                              exists=self._exists_file(p), spill=self.config.spill_size)
                of.dirty = True
                self._open[p] = of
                if not of.exists and self._key_held_open(p):
                    for q in list(self._second):  # forget the ones closed since
                        self._claimed(q)
                    self._second[p] = of
                self._adopt_readers(of)
                if not of.exists:  # a new name in parent
                    self._dir_changed(parent, now=now)
            of.refs += 1
            of.writers += 1
            return self._new_handle(Handle(p, of, writes=True, pid=pid))

    def read(self, fh: int, size: int, offset: int) -> bytes:
        return self.handle(fh).read(size, offset)

    def read_path(self, path: str, size: int, offset: int) -> bytes:
        """A READ with no handle (a read-only mount in the kernel's no-open mode, see
        LakeOperations): the file as the mount's current commit has it. The reader of a
        path is kept for its next READs (PathReaders) until the commit changes."""
        p = path.strip("/")
        with self._lock:
            handle = self._path_readers.get(p, self.ds.generation)
            if handle is None:
                if self._dir_kind(p) is not None:
                    raise IsADirectoryError_(f"{path!r} is a directory")
                source = self._source(p)  # (one lookup: its sample, or its staged file)
                if source is None:
                    raise SampleNotFoundError(f"no such file {path!r}")
                ranged = self._ranged_of(source)
                if ranged is None:  # read whole at its first READ, then held
                    handle, held, window = Handle(p, loader=self._loader_of(source)), source.size, False
                else:  # a tiled sample's window of tiles, or a big staged file read in place
                    handle, held, window = Handle(p, ranged=ranged[0]), 0, isinstance(source, Sample)
                self._path_readers.put(p, self.ds.generation, handle, held, window=window)
        return handle.read(size, offset)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        of = self.handle(fh).openfile
        if of is None:
            raise BadHandleError("file is not open for writing")
        if self.ds.lease_lost is not None:  # (a file opened before: it is gone, see _lease_lost)
            raise LeaseLostError(self.ds.lease_lost.refusal())
        n = of.write(data, offset)
        if of.wants_stream:
            self._start_stream(of)
        return n

    def _start_stream(self, of: OpenFile) -> None:
        """A big file written front to back: store it as tiles while it arrives when its
        tensor keeps files unchanged (lakefs.chunks.stream), else spill it to a temp file."""
        stream = None
        with self._lock:
            parent, name = split(of.path)
            if not of.detached and not self.read_only:
                tensor = self._tensor_for(parent, name)
                if tensor is None and self._makes_tensor(parent, name):
                    tensor = self._tensor_from_first_file(parent, name)
                if tensor is not None:
                    threshold = tensor.stream_threshold
                    if threshold is not None and of.size <= threshold:
                        return  # not yet: it stays in memory until it outgrows a chunk
                    stream = tensor.open_file_stream(name, of.size)
            of.begin_stream(stream)
            if of.stream is not None:
                log.info("/%s: big file, stored as tiles while it is written", of.path)

    def flush(self, fh: int, *, pid: int | None = None) -> None:
        """Commit the file's data if it changed: errors are returned to ``close``. A
        staging file that may be held is held instead (nothing to check).

        ``pid``: the thread closing. A close by another process than the one that opened
        the handle is the close of a copy it inherited (a child started while the file
        is being written: its exec closes the copy) and stores nothing: the file is
        half written. The opener's close stores it, or the last close (:meth:`release`).

        Every ``close`` of a descriptor sends FLUSH, also of one of several that share
        the handle (``cat x > f``: the shell opens ``f``, dups it to stdout and closes
        the first; ``dd``). A refused file therefore stays open as it was: more writes
        and the last close may still make it whole, and RELEASE (the last one) drops
        it if it is still refused.

        A sample's probe and transcode (tens of ms per photo) run without the lock
        (:meth:`_prepare`): files closed in parallel transcode in parallel, and the
        mount's other calls do not wait for them. Only the store itself takes the lock,
        for the contents prepared: a file written again meanwhile is prepared again (or
        left to the newer writer's close), one unlinked or replaced meanwhile is not
        stored."""
        handle = self.handle(fh)
        of = handle.openfile
        if of is not None and of.lost and handle.writes:
            raise LeaseLostError(self.ds.lease_lost.refusal())  # (see _lease_lost)
        if of is None or not handle.writes or not of.dirty or of.detached:
            return
        if pid is not None and handle.pid is not None and not same_process(pid, handle.pid):
            return
        ready: _Ready | None = None
        while True:
            with self._lock:
                if of.detached or not of.dirty:
                    return  # unlinked or replaced while prepared (never stored), or stored
                if ready is None or ready.version != of.version:
                    # Only the last writer's close decides, so that a store error still
                    # reaches a close: while another handle may still write, the file may
                    # be half written (a second opener that closes without writing, or
                    # parallel writers of parts), and storing it would store half a
                    # sample. (Written again while prepared: by a writer that closed
                    # since, whose close left it to this one, or still writing.)
                    if of.writers != 1:
                        return
                    ready = None
                with self._answered_refusal(of):
                    hold = self._may_hold(of)  # (asked once: it costs a tenth of a photo's store)
                    if not of.size and not hold:
                        self._check_empty(of)  # stored at its last close (release)
                        return
                    if ready is None and not hold:
                        ready = self._to_prepare(of)
                    if ready is None or ready.done:
                        self._hold_or_commit(of, final=False, ready=ready, hold=hold)
                        return
            self._prepare(ready)

    def _check_empty(self, of: OpenFile) -> None:
        """Refuse an empty file as storing it would, storing nothing (call with the lock).

        A close of an empty file is often not its last: ``dd of=f`` and ``cmd > f`` close
        the descriptor they opened before writing through its copy. Stored there, the
        empty file (or the truncation of an existing one) would be committed and survive
        a crash in place of the file being written, or of its previous version; so it
        is only checked (``touch images/new.jpg`` still fails), and its last close stores
        it. A pending directory becomes the tensor the file makes, as at a store.

        Its log line waits for the last close too (:meth:`_settle`): the file written
        through the copy is stored, and was never refused."""
        parent, name = split(of.path)
        tensor = self._tensor_for(parent, name)
        try:
            if tensor is None and self._makes_tensor(parent, name):
                with self._undone_if_refused(parent):
                    tensor = self._tensor_from_first_file(parent, name)
                    if tensor is not None:
                        tensor.check_file(name, b"")
            elif tensor is not None:
                tensor.check_file(name, b"")
        except _REFUSALS as e:
            e.reported = e.logged_at_release = True  # type: ignore[attr-defined]
            raise

    def _to_prepare(self, of: OpenFile) -> _Ready | None:
        """The contents of ``of``, which is not to be held, to prepare as a sample without
        the lock (call with it), or None when storing it needs nothing costly first (a
        staging file, a tensor storing files as they are, a stream, a big file in its
        temp file)."""
        if of.stream is not None or of.spilled:
            return None
        parent, name = split(of.path)
        tensor = self._tensor_for(parent, name)
        if tensor is None or not tensor.format.prepares(split_filename(name)[1]):  # type: ignore[index]
            return None
        data, version = of.snapshot()
        if tensor.format.passes_through(data):  # a header probe, no transcode: stored as before,
            return None  # in one go under the lock (every cp of a photo into its own format)
        return _Ready(tensor, name, version, data)

    @staticmethod
    def _prepare(ready: _Ready) -> None:
        """Probe and transcode ``ready``'s contents (without the locks); a refusal is kept
        for the store, which raises it if the contents are still those."""
        ready.key = ready.tensor.format.ahead_key()
        try:
            ready.ahead = ready.tensor.prepare_file(ready.name, ready.data)
        except LakeFSError as e:
            ready.error = e
        finally:
            ready.data, ready.done = b"", True

    # --- snapshot readers and the kernel's page cache ---------------------------------

    def _content_token(self, p: str) -> tuple | None:
        """What identifies the committed contents of ``p`` (None: no file)."""
        sample = self._sample(p)
        if sample is not None and sample._entry is not None:
            _, chunk, offset, _, _, crc, *_ = sample._entry.item()  # (ENTRY field order)
            return chunk, offset, crc
        f = self.ds.staged(p)
        return None if f is None else ("file", f.file_id)

    def _add_reader(self, handle: Handle) -> None:
        """Register a handle reading a snapshot of committed contents. The kernel keeps
        one page cache per file, not per handle: while a handle of older contents is open
        (the file was rewritten in place, or a read-only mount moved to a newer commit),
        its reads may fill that cache with old pages under the new size, so a newer
        handle reads past the cache (direct_io); the old pages are dropped when the last
        old handle closes (found by review: new opens read old bytes cut to the new size)."""
        p = handle.path
        handle.token = token = self._content_token(p)
        handle.generation = self.ds.generation
        readers = self._readers.get(p)
        if readers is None:  # the common case: nobody else has it open
            self._readers[p] = {token: 1}
            direct = False
        else:
            direct = len(readers) > 1 or token not in readers
            readers[token] = readers.get(token, 0) + 1
        if self._forgetting and not direct:
            since = self._forgetting.get(p)
            direct = since is not None and time.monotonic() - since < FORGET_SECONDS
        handle.direct = direct

    def _drop_reader(self, handle: Handle) -> None:
        p, token = handle.path, handle.token
        readers = self._readers.get(p)
        if readers is None or token not in readers:
            return
        readers[token] -= 1
        if readers[token]:
            return
        del readers[token]
        if not readers:
            del self._readers[p]
        if self.forget_cached is None or handle.generation == self.ds.generation:
            return  # nothing changed since it was opened: its pages are current
        if token != self._content_token(p):
            # The last handle of older contents: its pages may be in the cache.
            self._forgetting[p] = time.monotonic()
            if len(self._forgetting) > 1024:
                now = time.monotonic()
                self._forgetting = {k: t for k, t in self._forgetting.items() if now - t < FORGET_SECONDS}
            self.forget_cached("/" + p)

    def _adopt_readers(self, of: OpenFile) -> None:
        """Handles reading the committed contents of a file now opened for writing in
        place read the file being written from now on, as on a local disk (one file, one
        size). The kernel keeps one size per file, not per handle: a snapshot's short reads
        cut it back to the old end, and an O_APPEND writer then wrote over its own lines
        (found by review: ``tail -f log`` beside a loop appending to it)."""
        if of.path not in self._readers:
            return
        for handle in list(self._handles.values()):
            if handle.path == of.path and handle.openfile is None and handle.generation >= 0:
                self._drop_reader(handle)
                handle.generation = -1  # (no longer a registered snapshot reader)
                handle.openfile = of
                of.refs += 1

    def release(self, fh: int) -> None:
        with self._lock:
            handle = self._handles.pop(fh, None)
            of = handle.openfile if handle else None
            if of is None:
                if handle is not None and handle.generation >= 0:  # (a registered snapshot reader)
                    self._drop_reader(handle)
                return
            of.refs -= 1
            of.writers -= handle.writes
            if of.refs > 0:
                if handle.writes and not of.writers and of.dirty and not of.detached:
                    # The last writer is gone, readers remain: settle it now, so that a
                    # refused file never stands in for the committed one (a refusal
                    # detaches it; the readers keep reading its buffer).
                    self._settle(of)
                return
            held = False
            try:
                if of.dirty and not of.detached:
                    held = self._settle(of)
            finally:
                if not held:
                    self._drop_open(of)

    def _settle(self, of: OpenFile) -> bool:
        """Store (or hold) a file whose last writer is gone; whether it is held. Its
        contents refused already (the writer's close got the error) are dropped without
        trying again; a refusal no writer heard of gets its log line here, and so does an
        empty file's, left to its last close (see :meth:`_check_empty`)."""
        try:
            refusal = of.refused()
            if refusal is not None:
                if getattr(refusal, "logged_at_release", False):
                    log.warning("flush /%s: %s", of.path, refusal)
                self._forget_refused(of)
                return False
            return self._hold_or_commit(of)
        except LakeFSError as e:
            log.error("%s: not stored: %s", of.path, e)
            return False

    @contextlib.contextmanager
    def _answered_refusal(self, of: OpenFile) -> Iterator[None]:
        """Around a store whose error goes to a writer (flush, fsync): the same contents
        refused again raise the same error without being stored or logged again (vim
        fsyncs, then closes; one refusal is one log line). Only a refusal of the contents
        is remembered: a storage failure (a full disk) is tried again each time."""
        error = of.refused()
        if error is not None:
            error.reported = True  # (the operations layer logged it the first time)
            raise error
        try:
            yield
        except _REFUSALS as e:  # the contents (and name): the same again
            of.refusal = (of.version, of.path, e)
            raise

    def fsync(self, fh: int) -> None:
        """Commit the file's buffer and the dataset. A buffer another handle is still
        writing is left to that writer's close when this handle only reads it (it may be
        half written); a writer's own fsync commits what it wrote so far, and a refusal
        (a JPEG not finished yet) leaves the file to its close, as it was."""
        handle = self.handle(fh)
        of = handle.openfile
        if of is not None and of.lost and handle.writes:
            raise LeaseLostError(self.ds.lease_lost.refusal())  # (see _lease_lost)
        if of is not None and of.dirty and not of.detached and (handle.writes or not of.writers):
            with self._lock, self._answered_refusal(of):
                self._commit(of, final=not of.writers)
        self.ds.flush()

    def fsyncdir(self, path: str) -> None:
        """Make the directory's entries durable (creates, renames, unlinks): a commit.
        The safe-replace pattern (write a temp file, fsync it, rename it over the old
        name, fsync the directory) relies on it."""
        if not self.getattr(path).is_dir():
            raise NotADirectoryError_(f"{path!r} is not a directory")
        self.ds.flush()

    # --- held staging files ----------------------------------------------------------

    def _may_hold(self, of: OpenFile) -> bool:
        """Whether closed ``of`` may be held instead of stored (call with the lock): a
        staging file (nothing to check at close) in memory or in its temp file, while the
        held ones stay under HOLD_BYTES (of memory) and HOLD_FILES. Errors storing it (a full disk) then come from
        the next commit, as for chunks written behind."""
        if of.stream is not None or self.read_only:
            return False
        held = self._held.get(of.path)
        if held is None and len(self._held) >= HOLD_FILES:
            return False
        if self._held_bytes - (held or 0) + self._held_size(of) > HOLD_BYTES:
            return False
        return self._is_staging_path(of.path)

    @staticmethod
    def _held_size(of: OpenFile) -> int:
        """Memory a held file takes: none for one spilled to a temp file (rsync's temp
        file of a big sample: held, its rename stores it once instead of uploading it as
        a staged file, reading it back and uploading it again)."""
        return 0 if of.spilled else of.size

    def _is_staging_path(self, p: str) -> bool:
        """Whether a file stored at ``p`` would be a staged file, not a sample."""
        parent, name = split(p)
        if self._tensor_for(parent, name) is not None:
            return False
        return not self._makes_tensor(parent, name)  # a tensor's first file

    def _hold_or_commit(self, of: OpenFile, *, final: bool = True, ready: _Ready | None = None,
                        hold: bool | None = None) -> bool:
        """Hold ``of`` if it may be held, else store it now (see :meth:`_commit` for
        ``final`` and ``ready``); whether it is held. ``hold``: :meth:`_may_hold`, asked
        already under this lock."""
        if self._may_hold(of) if hold is None else hold:
            self._hold(of)
            return True
        self._unhold(of.path)
        self._commit(of, final=final, ready=ready)
        return False

    def _hold(self, of: OpenFile) -> None:
        size = self._held_size(of)
        self._held_bytes += size - self._held.get(of.path, 0)
        self._held[of.path] = size

    def _unhold(self, path: str) -> None:
        self._held_bytes -= self._held.pop(path, 0)

    def _drop_open(self, of: OpenFile) -> None:
        """Forget a file no handle has open any more, and free its buffer."""
        if self._open.get(of.path) is of:
            del self._open[of.path]
            self._unhold(of.path)
        of.close()

    def store_held(self, prefix: str = "") -> None:
        """Store the held staging files (under ``prefix``) as staged files: called at the
        start of every commit, so they are durable with it.

        The bytes are uploaded without the lock (on an object store that is a network
        call per file, and the mount's other operations wait for the lock), then each is
        published unless its file changed meanwhile; a changed one stays held for the
        next commit. A failed upload fails the commit and keeps the files held."""
        with self._lock:
            if self.read_only:  # (the writer lease was lost meanwhile: see _lease_lost)
                return
            batch = []
            for path in [p for p in self._held if p.startswith(prefix)]:
                of = self._open.get(path)
                if of is not None and of.writers:
                    continue  # being written (or closing): its last close decides
                if of is not None and of.dirty and not of.detached and of.spilled:
                    # Copied from its temp file in pieces, under the lock: never read
                    # whole into memory (rare: a commit between a big file's close and
                    # its rename).
                    self._commit(of, final=False)  # (a failure fails the commit: kept held)
                    self._unhold(path)
                    if of.refs == 0:
                        self._drop_open(of)
                elif of is not None and of.dirty and not of.detached:
                    batch.append((of, *of.snapshot()))
                elif of is not None and of.refs == 0:
                    self._drop_open(of)  # stored since (fsync): nothing left to hold
                else:
                    self._unhold(path)
        for of, data, version in batch:
            file_id = self.ds.stage_file(data, len(data))
            with self._lock:
                # (Also when its name is a sample name now, the sample holding its key
                # removed: it was closed as a plain file and stays one until rewritten.)
                if self._open.get(of.path) is of and of.path in self._held and of.version == version:
                    self.ds.publish_file(of.path, file_id, len(data), mtime_ns=of.mtime_ns, mode=of.mode)
                    self._stored_since_commit += 1
                    of.mark_clean(version)
                    of.exists = True
                    if of.refs == 0:
                        self._drop_open(of)
                    else:
                        self._unhold(of.path)
                else:
                    self.ds.drop_staged(file_id)

    def _commit(self, of: OpenFile, *, final: bool = True, ready: _Ready | None = None) -> None:
        """Store the buffer of ``of`` as a sample or staged file (called with the lock).
        If that fails, a ``final`` commit (the last writer's close) forgets the file: the
        error is the writer's answer and the committed version stays. Otherwise (a
        writer's fsync) the file stays open as it was, for more writes and its close.
        ``ready``: its contents prepared without the lock, used if they are still these
        contents going into that tensor."""
        try:
            if of.stream is not None and self._tensor_for(*split(of.path)) is not None:
                version = self._commit_stream(of)
            else:  # (a stream whose tensor went away is read back whole)
                with of.contents() as (data, size, version):
                    self._store(of.path, data, size=size, mtime_ns=of.mtime_ns, mode=of.mode,
                                ready=ready if ready is not None and ready.version == version else None)
        except LakeFSError:
            if not final:
                raise
            self._forget_refused(of)
            raise
        of.mark_clean(version)  # a write that raced this commit keeps the file dirty
        of.exists = True
        self._stored_since_commit += 1

    def _commit_begins(self) -> None:
        self._stored_since_commit = 0

    def pending_files(self) -> int:
        """About how many files the next commit makes durable: those stored since the last
        commit began, and those open or held with writes not stored yet. What a stopping
        mount says it is still committing; read without the lock (a signal handler in
        the thread that may hold it asks), so it may be off by the files in flight."""
        try:
            unstored = sum(1 for of in list(self._open.values()) if of.dirty and not of.detached)
        except RuntimeError:  # (changed while counted)
            unstored = 0
        return self._stored_since_commit + unstored

    def _forget_refused(self, of: OpenFile) -> None:
        """A file whose contents were refused for good: the committed version stays. A
        new one is gone, but not at once from the kernel's names (see :meth:`open`):
        the mount has it forget the name from another thread."""
        of.detached = True
        vanished = not of.exists and not _HIDDEN_NAME.fullmatch(split(of.path)[1])
        if vanished:
            if len(self._vanished) >= NAMES_KEPT:
                del self._vanished[next(iter(self._vanished))]  # the oldest
            self._vanished[of.path] = of.mode
        if self._open.get(of.path) is of:
            del self._open[of.path]
            self._unhold(of.path)
        self._refused(of.path, name=vanished)

    def _commit_stream(self, of: OpenFile) -> int:
        """Index a streamed file's tiles as its sample (they are written already); the
        version of the file that was stored."""
        parent, name = split(of.path)
        tensor = self._tensor_for(parent, name)
        with of.lock:
            tensor.commit_file_stream(name, of.stream, mtime_ns=of.mtime_ns, mode=of.mode)
            of.stream_committed, version = True, of.version
        if of.path in self.ds._manifest.files:
            self.ds.delete_file(of.path)
        return version

    def _store(self, p: str, data: bytes | BinaryIO, *, mtime_ns: int, mode: int, size: int | None = None,
               ready: _Ready | None = None) -> None:
        """Store ``data`` (bytes, or a binary file of ``size`` bytes, copied in pieces
        where the target allows: staged files, tensors storing files unchanged)."""
        parent, name = split(p)
        tensor = self._tensor_for(parent, name)
        if tensor is None and self._makes_tensor(parent, name):
            with self._undone_if_refused(parent):
                tensor = self._tensor_from_first_file(parent, name)
                if tensor is not None:
                    self._store_in(tensor, p, data, mtime_ns=mtime_ns, mode=mode, size=size)
                    return
        if tensor is None:
            self.ds.write_file(p, data, size=size, mtime_ns=mtime_ns, mode=mode)
        else:
            self._store_in(tensor, p, data, mtime_ns=mtime_ns, mode=mode, size=size,
                           ready=ready if ready is not None and ready.tensor is tensor else None)

    @contextlib.contextmanager
    def _undone_if_refused(self, parent: str) -> Iterator[None]:
        """A pending directory made a tensor for a first file that is then refused (a
        truncated JPEG, invalid JSON) goes back to pending: nothing is stored, and the
        next file decides again."""
        try:
            yield
        except LakeFSError:
            if self._dir_kind(parent) == "tensor" and not self.ds._tensors[parent].num_samples:
                self.ds.unmake_tensor(parent)  # the same directory: its mode, time, .git stay
            raise

    def _store_in(self, tensor: Tensor, p: str, data: bytes | BinaryIO, *, mtime_ns: int, mode: int,
                  size: int | None, ready: _Ready | None = None) -> None:
        """Store ``data`` as the sample ``p`` of ``tensor`` (see :meth:`_store`); ``ready``:
        ``data`` prepared for ``tensor`` already (or refused)."""
        name = split(p)[1]
        sample = None
        if ready is not None and (refusal := ready.refusal()) is not None:
            raise refusal
        if not isinstance(data, (bytes, bytearray, memoryview)):
            assert size is not None
            stream = tensor.open_file_stream(name, size)
            if stream is not None:
                sample = self._fill_stream(tensor, name, stream, data, size, mtime_ns=mtime_ns, mode=mode)
            else:  # the tensor needs the whole file (probes, transcodes, text checks)
                data = read_exactly(data, size)
        if sample is None:
            sample = tensor.write_file(name, data, mtime_ns=mtime_ns, mode=mode,
                                       ahead=ready.ahead if ready is not None else None)
        if sample.filename != name:
            log.info("/%s stored as %s (%s)", p, sample.filename,
                     "transcoded" if sample.transcoded else "canonical extension")
            self._dir_changed(split(p)[0])  # the file shows under another name
            self._note_written_as(p, f"{split(p)[0]}/{sample.filename}")
        if p in self.ds._manifest.files:
            self.ds.delete_file(p)

    @staticmethod
    def _fill_stream(tensor: Tensor, name: str, stream: Any, f: BinaryIO, size: int, *, mtime_ns: int,
                     mode: int) -> Sample:
        try:
            for piece in pieces(f, size):
                stream.write(piece)
            return tensor.commit_file_stream(name, stream, mtime_ns=mtime_ns, mode=mode)
        except BaseException:
            stream.abort()
            raise

    def _tensor_from_first_file(self, parent: str, name: str) -> Tensor | None:
        """A pending directory becomes a tensor at its first sample-named file (an image
        tensor given no dtype takes that file's where uint8 would refuse it: see
        :meth:`Dataset.create_tensor_for_first_file`)."""
        from lakefs.compression import codec_for_extension

        _, ext = split_filename(name)  # type: ignore[misc]
        leaf = parent.rsplit("/", 1)[-1]
        settings = dict(self.config.tensors.get(parent) or self.config.tensors.get(leaf) or {})
        if not settings:
            codec = codec_for_extension(ext.lower())
            if codec is not None and codec.kind in ("image", "audio", "video"):
                settings = {"htype": codec.kind, "sample_compression": codec.name}
            else:
                settings = dict(INFER_BY_EXT.get(ext.lower(), {"htype": "bytes"}))
        settings.setdefault("chunk_size", self.config.chunk_size)
        tensor = self.ds.create_tensor_for_first_file(parent, settings)
        self._made_here.add(tensor.meta.tid)
        log.info("/%s became a tensor: %s", parent,
                 ", ".join(f"{k}={v}" for k, v in settings.items() if k != "chunk_size"))
        return tensor if tensor.accepts_filename(name) else None

    # --- namespace changes -------------------------------------------------------------

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        p = path.strip("/")
        with self._lock:
            self._writable()
            of = self._handles[fh].openfile if fh in self._handles else self._open.get(p)
            if of is not None:
                of.truncate(length)
                if not of.writers and self._open.get(of.path) is of and not of.detached:
                    # No writer's close will store it (held, or open for reading only):
                    # stored (or held, still within the limits) now.
                    if not self._hold_or_commit(of) and of.refs == 0:
                        self._drop_open(of)
                return
            if self.getattr(path).is_dir():
                raise IsADirectoryError_(f"{path!r} is a directory")
            of = self._open_committed(path, empty=length == 0)
            try:
                of.truncate(length)
                with of.contents() as (data, size, _):
                    self._store(p, data, size=size, mtime_ns=of.mtime_ns, mode=of.mode)
            except LakeFSError:
                self._refused(p)
                raise
            finally:
                of.close()

    def _refused(self, p: str, *, name: bool = False) -> None:
        """The kernel saw writes to ``p`` that were refused: the page cache (auto_cache
        keeps pages while size and mtime match, and the stored ones do) or a size would
        otherwise keep showing them for up to the attribute timeout, or until caches
        drop. ``name``: ``p`` was new, and the kernel was told it exists at the create:
        it keeps that name for entry_timeout unless told to drop it too (the inode's
        invalidation leaves it; until the drop, see :meth:`open`)."""
        if self.forget_cached is not None:
            self.forget_cached("/" + p, name=name)

    def unlink(self, path: str) -> None:
        p = path.strip("/")
        with self._lock:
            self._writable()
            if self._hidden and p in self._hidden:
                # libfuse's last close of a hidden file. Kept (NAMES_KEPT): an open that
                # found the file may still reach us after it (see _hide).
                return
            of = self._open.pop(p, None)
            if of is not None:
                of.detached = True
                self._unhold(p)
                if of.refs == 0:  # a held file: never stored, nothing else to undo
                    of.close()
            sample = self._sample(p)
            if sample is not None:
                sample.tensor.delete_row(sample.row)
            elif p in self.ds._manifest.files:
                self.ds.delete_file(p)
            elif of is None:
                if _HIDDEN_NAME.fullmatch(split(p)[1]):
                    return  # a hidden file's handles are gone already (see _hide)
                if self._vanished.pop(p, None) is not None:
                    return  # a refused new file: the kernel still has its name (see open)
                if self._dir_kind(p) is not None:
                    raise IsADirectoryError_(f"{path!r} is a directory")
                self._require_dir(split(p)[0])  # "e/a" where e is a file: ENOTDIR, as the kernel
                raise SampleNotFoundError(f"no such file {path!r}")
            self._dir_changed(split(p)[0])

    def mkdir(self, path: str, mode: int) -> None:
        self._check_name(path)
        p = path.strip("/")
        parent, _ = split(p)
        with self._lock:
            self._writable()
            kind = self._require_dir(parent)
            plain = is_plain_path(p)  # a hidden name, or inside a plain directory
            if self._dir_kind(p) is not None or self._exists_file(p):
                raise TensorExistsError(f"{path!r} already exists")
            if kind == "tensor" and not plain:
                self._regroup(parent, f"'/{p}'")
            if plain:
                self.ds.make_plain_dir(p)
            else:
                self.ds.make_pending_dir(p)
            now = time.time_ns()
            self.ds.set_dir_meta(p, stat.S_IMODE(mode), now)  # the kernel applied the umask
            self._dir_changed(parent, now=now)

    def _regroup(self, d: str, why: str) -> None:
        """Make the tensor ``d``, given the subdirectory ``why``, a group whose plain files
        are its samples' files (:meth:`Dataset.regroup_tensor`), so that ``tar -x``,
        ``unzip``, ``cp -r`` and ``git clone`` of a folder holding files before folders
        (``train/metadata.csv``, then ``train/images/``) go on as on a disk. Only a
        tensor this mount made of a first file (the copy now running made it) and still
        small (REGROUP_FILES, REGROUP_BYTES: a folder's few loose files): a tensor the
        API or ``lakefs tensor create`` made, one an earlier mount made, or a big one
        (``mkdir train/cat/augmented`` beside 460 photos) refuses it, so a stray
        ``mkdir`` never turns a dataset's samples into plain files. Call with the lock.

        Busy (EBUSY) only while a handle reads one of its samples, or a big file streams
        into it: files being written in it become plain files at their close, and what is
        open in its plain directories (git's ``.git/index.lock``) is not touched."""
        tensor = self.ds._tensors[d]
        self.store_held(d + "/")  # closed plain files are not open: stay as they are
        sizes = tensor.live_entries()["file_size"]
        if tensor.meta.tid not in self._made_here or len(sizes) > REGROUP_FILES or int(sizes.sum()) > REGROUP_BYTES:
            why_not = ("the Python API, `lakefs tensor create`, ingest or an earlier mount made it"
                       if tensor.meta.tid not in self._made_here else
                       f"it holds {len(sizes)} files, {int(sizes.sum()) / 1e6:.0f} MB: only one of up to"
                       f" {REGROUP_FILES} files and {REGROUP_BYTES >> 20} MB made by this mount becomes a group")
            raise NotPermittedError(f"{why}: tensor '/{d}' holds sample files, not directories ({why_not});"
                                    " make directories before files, as rsync does")
        for h in self._handles.values():
            if split(h.path)[0] != d:
                continue  # (in a plain directory of it)
            of = h.openfile
            if of is not None and of.stream is not None:
                raise BusyError(f"{why}: a big file is being written into tensor '/{d}' ('/{h.path}')")
            if of is None and h.path not in self.ds._manifest.files:
                raise BusyError(f"{why}: a sample of tensor '/{d}' is open for reading ('/{h.path}')")
        self.ds.regroup_tensor(d)

    def rmdir(self, path: str) -> None:
        p = path.strip("/")
        with self._lock:
            self._writable()
            kind = self._dir_kind(p)
            if kind is None:
                if self._file_on_the_way(p):
                    raise NotADirectoryError_(f"{path!r} is not a directory")
                raise SampleNotFoundError(f"no directory {path!r}")
            if kind == "root":
                raise NotPermittedError("cannot remove the root")
            if self.readdir(path):
                raise DirectoryNotEmptyError(f"{path!r} is not empty")
            if kind == "tensor":
                self.ds.delete_tensor(p)
            elif kind == "plain":
                self.ds.remove_plain_dir(p)
            else:
                self.ds.delete_group(p)
            self._dir_changed(split(p)[0])

    def rename(self, old: str, new: str) -> None:
        self._check_name(new)
        o, n = old.strip("/"), new.strip("/")
        if o == n:
            return
        with self._lock:
            self._writable()
            new_parent, new_name = split(n)
            # As the kernel's rename: both parents are walked, then the source looked up.
            self._require_dir(split(o)[0])
            self._require_dir(new_parent)
            if self._dir_kind(o) is None and not self._exists_file(o):
                raise SampleNotFoundError(f"no such file '/{o}'")
            if self._dir_kind(o) is not None:
                return self._rename_dir(o, n)
            if self._dir_kind(n) is not None:
                raise IsADirectoryError_(f"{new!r} is a directory")
            if self._keeps_name(o, n):
                return self._keep_name(o, n)
            if split(o)[0] == new_parent and _HIDDEN_NAME.fullmatch(new_name) and (
                    o in self._open or o in self._readers):  # (libfuse hides open files only)
                return self._hide(o, n)
            self._hidden.pop(n, None)  # (kept after libfuse's unlink of it: see _hide)
            try:
                self._rename_a_file(o, n)
            except (InvalidSampleError, StoredExtensionError) as e:
                # Content the new name's tensor refuses (text renamed to notes.jpg), or an
                # extension a sample's stored form cannot show (a.jpg to c.png): not
                # EINVAL, which mv reports as "cannot move to a subdirectory of itself".
                # EXDEV makes mv (and shutil.move, rsync) copy instead, as cp would: the
                # copy's close answers "Invalid argument", or stores the file under the
                # name cp gives it (c.jpg); the file stays where it was until then.
                raise CrossDeviceError(f"'/{o}' cannot become '/{n}': {e}") from e

    def _keeps_name(self, o: str, n: str) -> bool:
        """Whether the sample ``o`` renamed to ``n`` stays as it is: ``n`` is another name
        of its row key that its tensor would show as ``o`` (``a.png`` in a jpeg tensor
        holding ``a.jpg``; ``P.jpg`` in a png one holding ``P.png``)."""
        parent, name = split(n)
        tensor = self.ds._tensors.get(parent)
        return (split(o)[0] == parent and tensor is not None and tensor.accepts_filename(name)
                and tensor.shown_name(name) == split(o)[1] and self._sample(o) is not None)

    def _keep_name(self, o: str, n: str) -> None:
        """A rename of the sample ``o`` to a name its tensor shows as ``o`` (see
        :meth:`_keeps_name`): done, and the sample keeps its name, as ``cp`` of ``n``
        into the tensor would show it. Not EXDEV: ``mv`` would copy it to ``n``, stored
        into that very row as ``o``, then unlink ``o``, the copy (found by QA: the sample
        was gone; ``shutil.move`` copies on any error). A file at ``n`` is replaced, as by
        any rename. The kernel moved its entry of ``o`` to ``n`` and is told to drop it:
        ``n`` is not found, ``o`` is looked up again. For a minute ``n`` takes ``touch``,
        ``chmod`` and a rewrite for ``o``, as a name a file was written under (see
        :meth:`_shown_as`)."""
        log.info("/%s keeps its name: renamed to %s, which its tensor shows as %s (the sample's "
                 "stored form)", o, split(n)[1], split(o)[1])
        replaced = n in self._open or n in self.ds._manifest.files
        self._detach(n)
        if n in self.ds._manifest.files:
            self.ds.delete_file(n)
        if replaced:
            self._dir_changed(split(n)[0])
        self._note_written_as(n, o)
        if self.forget_cached is not None:
            self.forget_cached("/" + n, name=True)

    def _rename_a_file(self, o: str, n: str) -> None:
        """:meth:`rename` of a file (call with the lock)."""
        new_parent = split(n)[0]
        of = self._open.get(o)
        parents = dict.fromkeys((split(o)[0], new_parent))  # both change (once if one)
        if of is not None and of.writers and not of.detached:
            self._rename_open(of, n)
            self._dir_changed(*parents)
            return
        if of is not None and of.dirty and not of.detached:
            if o in self._held:
                self._rename_held(of, n)
                self._dir_changed(*parents)
                return
            self._commit(of)
        self._rename_file(o, n)
        of = self._open.pop(o, None)
        self._unhold(o)
        self._detach(n)  # a file being written or held at the new name is replaced
        if of is not None:  # handles still open on the old name keep their buffer
            of.path = n
            self._open[n] = of
        self._dir_changed(*parents)

    def _hide(self, o: str, n: str) -> None:
        """libfuse's rename of a file still open that is unlinked or renamed over (no
        ``hard_remove``): to the dataset it is an unlink. The handles open on it go on
        reading (and writing) what they have, under the hidden name, which is never
        listed nor stored: libfuse unlinks it at the last close. (It was stored as a
        plain file: a copy of the sample, and after a crash before that last close, a
        deleted file back from the dead.) An open that found the file before it was
        renamed away reaches us under the hidden name too, also after that last close,
        and reads it as those handles do (found by review: readers of a file replaced
        by a rename got ENOENT for ~15% of their opens)."""
        attr = self.getattr("/" + o)
        of = self._open.pop(o, None)
        if of is not None:
            of.detached = True  # an unlinked file's contents go with its last handle
            self._unhold(o)
            of.path = n
            self._open[n] = of
        else:
            if len(self._hidden) >= NAMES_KEPT:
                del self._hidden[next(iter(self._hidden))]  # the oldest
            self._hidden[n] = (attr, self._source(o))
        sample = self._sample(o)
        if sample is not None:
            sample.tensor.delete_row(sample.row)
        elif o in self.ds._manifest.files:
            self.ds.delete_file(o)
        self._dir_changed(split(o)[0])

    def _rename_open(self, of: OpenFile, n: str) -> None:
        """Rename a file that handles are still writing (``mv`` or ``rm`` of a file a
        copy is writing: libfuse renames an open file it unlinks to ``.fuse_hidden*``).
        Its buffer, half written, cannot be stored now (a partial JPEG is refused, and
        the writer would lose the rest): it moves to the new name and is stored there at
        its last close. A committed version moves along, so a refusal then keeps it."""
        o = of.path
        src, dst = self._tensor_for(*split(o)), self._tensor_for(*split(n))
        if src is not None and dst is not None and src is not dst:
            raise CrossDeviceError(f"cannot move a sample of {src.name!r} into {dst.name!r}")
        if of.exists and (self._sample(o) is not None or o in self.ds._manifest.files):
            self._rename_file(o, n)
        del self._open[o]
        self._unhold(o)
        self._detach(n)
        of.path = n
        self._open[n] = of

    def _rename_held(self, of: OpenFile, n: str) -> None:
        """Rename a held staging file. To another staging name it stays held, under the
        new name; to a sample name its buffer is stored once, as that sample (its checks
        fail the rename, and the file stays held under its old name)."""
        o = of.path
        staging = self._is_staging_path(n)
        if not staging:
            with of.contents() as (data, size, version):
                self._store(n, data, size=size, mtime_ns=of.mtime_ns, mode=of.mode)
            of.mark_clean(version)
        del self._open[o]
        self._unhold(o)
        self._detach(n)  # a stored staged file at n stays until the held one replaces it
        if staging or of.refs:  # handles still open (a reader, a close in progress) follow it
            of.path = n
            self._open[n] = of
            if staging:
                self._hold(of)
        else:
            of.close()
        if o in self.ds._manifest.files:  # a version stored before it was held
            self.ds.delete_file(o)

    def _detach(self, p: str) -> None:
        """Forget the file being written or held at ``p`` (replaced by a rename): handles
        still open on it keep their buffer; a held one is dropped."""
        stale = self._open.pop(p, None)
        if stale is not None:
            stale.detached = True
            self._unhold(p)
            if stale.refs == 0:
                stale.close()

    def _rename_file(self, o: str, n: str) -> None:
        new_parent, new_name = split(n)
        dst_tensor = self._tensor_for(new_parent, new_name, moving=o)
        if dst_tensor is None and self._dir_kind(new_parent) == "pending" and split_filename(new_name):
            with self._undone_if_refused(new_parent):
                self._move_file(o, n, self._tensor_from_first_file(new_parent, new_name))
        else:
            self._move_file(o, n, dst_tensor)

    def _move_file(self, o: str, n: str, dst_tensor: Tensor | None) -> None:
        new_name = split(n)[1]
        src = self._sample(o)
        if src is not None:
            if dst_tensor is src.tensor:  # a sample already at the new key is replaced by the move,
                dst_tensor.rename_file(src.filename, new_name)  # after the new name is checked
                if n in self.ds._manifest.files:
                    self.ds.delete_file(n)
                return
            if dst_tensor is not None:
                raise CrossDeviceError(f"cannot move a sample of {src.tensor.name!r} into {dst_tensor.name!r}")
            ranged = self._ranged(o)
            if ranged is not None:  # a big sample: copied in pieces
                self.ds.write_file(n, RangeReader(*ranged), size=ranged[1], mtime_ns=src.mtime_ns, mode=src.mode)
            else:
                self.ds.write_file(n, src.file_bytes(), mtime_ns=src.mtime_ns, mode=src.mode)
            src.tensor.delete_row(src.row)
            return
        if o not in self.ds._manifest.files:
            raise SampleNotFoundError(f"no such file '/{o}'")
        if dst_tensor is None:
            self.ds.rename_file(o, n)
            return
        f = self.ds._manifest.files[o]  # e.g. rsync's .name.XXXXXX renamed to its sample name
        reader = RangeReader(self.ds.staged_reader(f), f.size)  # (checked: damage is never stored as a sample)
        self._store(n, reader, size=f.size, mtime_ns=f.mtime_ns, mode=f.mode)
        self.ds.delete_file(o)

    def _rename_dir(self, o: str, n: str) -> None:
        """Rename a directory in place where its kind allows, with the plain files and
        plain directories in it: a pending or plain one (to a hidden name it is plain
        from then on), a tensor, a group (with everything under it). Otherwise ``EXDEV``,
        and ``mv`` copies: a plain directory to an ordinary name (its copy is made of
        ordinary directories: tensors, groups), a tensor or group to a hidden name
        (copied as plain files)."""
        kind = self._dir_kind(o)
        to_plain = is_plain_path(n)
        if n.startswith(o + "/"):
            raise InvalidNameError(f"cannot move '/{o}' into itself")
        self.store_held(o + "/")  # held files are not open: mv of the directory just rsynced
        if any(p.startswith(o + "/") for p in self._open):
            raise BusyError(f"'/{o}' holds files open for writing")
        if kind == "pending" or (kind == "plain" and to_plain):
            rename = self.ds.rename_pending_dir
        elif kind == "tensor" and not to_plain:
            rename = self.ds.rename_tensor
        elif kind == "group" and not to_plain:
            rename = self.ds.rename_group
        else:
            raise CrossDeviceError(f"'/{o}' cannot be renamed in place")  # before touching n
        if self._dir_kind(n) is not None:
            if self.readdir("/" + n):
                raise DirectoryNotEmptyError(f"'/{n}' is not empty")
            self.rmdir("/" + n)
        if self._exists_file(n):
            raise NotADirectoryError_(f"'/{n}' is not a directory")
        if self._dir_kind(split(n)[0]) == "tensor" and not to_plain:  # as mkdir
            self._regroup(split(n)[0], f"'/{n}'")
        rename(o, n)  # (a renamed directory keeps its mode and time)
        self._dir_changed(*dict.fromkeys((split(o)[0], split(n)[0])))

    # --- metadata ----------------------------------------------------------------------

    def utimens(self, path: str, mtime_ns: int | None) -> None:
        self._set_meta(path, mtime_ns=mtime_ns)

    def chmod(self, path: str, mode: int) -> None:
        self._set_meta(path, mode=stat.S_IMODE(mode))

    def _set_meta(self, path: str, *, mtime_ns: int | None = None, mode: int | None = None) -> None:
        """Set a file's or directory's times and mode. A file stored under another name
        than it was written under (a PNG into a jpeg tensor) takes them under the name
        written, for WRITTEN_NAME_SECONDS: the kernel keeps that name (entry_timeout) and
        sends the SETATTR of a ``utime``/``chmod`` by name after the close (shutil.copy2,
        unzip) for it. libfuse answers a SETATTR with a getattr of the same name, in the
        same thread: that one getattr shows the file (``_answering``); to any other
        lookup the name written does not exist (the kernel is told to forget what that
        answer showed)."""
        p = path.strip("/")
        with self._lock:
            self._writable()
            if self._dir_kind(p) is not None:  # kept in the dataset (Dataset.set_dir_meta)
                attr = self._dir_attr(p)
                self.ds.set_dir_meta(p, attr.mode if mode is None else mode,
                                     attr.mtime_ns if mtime_ns is None else mtime_ns)
                self._dirs_changed += 1
                return
            of = self._open.get(p)
            if of is not None:
                if mtime_ns is not None:
                    of.mtime_ns = mtime_ns
                if mode is not None:
                    of.mode = mode
                if of.dirty:
                    return  # applied at commit
            sample = self._sample(p)
            if sample is not None:
                sample.tensor.set_meta(sample.row, mtime_ns=mtime_ns, mode=mode)
            elif p in self.ds._manifest.files:
                self.ds.set_file_meta(p, mtime_ns=mtime_ns, mode=mode)
            elif (shown := self._shown_as(p)) is not None:  # (also while its last handle closes)
                self._set_meta("/" + shown, mtime_ns=mtime_ns, mode=mode)
                self._answer_setattr(p, shown)
            elif of is None:
                raise SampleNotFoundError(f"no such file {path!r}")

    def chown(self, path: str) -> None:
        """Ownership is the mounting user's: accepted and ignored, for a file that exists
        (or the name a file was written under: see :meth:`_set_meta`)."""
        p = path.strip("/")
        with self._lock:
            if self.find_attr(path) is None:
                shown = self._shown_as(p)
                if shown is None:
                    raise SampleNotFoundError(f"no such file {path!r}")
                self._answer_setattr(p, shown)

    def _answer_setattr(self, p: str, shown: str) -> None:
        """The getattr answering this SETATTR of name written ``p`` shows file ``shown``;
        the attributes the kernel keeps from that answer it is told to forget."""
        self._answering.setattr = (p, shown)
        if self.forget_cached is not None:
            self.forget_cached("/" + p)

    XATTRS = ("htype", "compression", "shape", "dtype", "row", "key")

    def listxattr(self, path: str) -> list[str]:
        with self._lock:
            sample = self._sample(path.strip("/"))
        return [f"user.lakefs.{n}" for n in self.XATTRS] if sample is not None else []

    def getxattr(self, path: str, name: str) -> bytes:
        if not name.startswith("user.lakefs."):
            raise NoSuchAttributeError(name)
        with self._lock:
            sample = self._sample(path.strip("/"))
        if sample is None:
            raise NoSuchAttributeError(name)
        field = name[len("user.lakefs."):]
        t = sample.tensor
        values = {
            "htype": t.htype,
            "compression": t.sample_compression or t.chunk_compression or "none",
            "shape": ",".join(str(x) for x in sample.shape),
            "dtype": t.dtype or "",
            "row": str(sample.row),
            "key": sample.key,
        }
        if field not in values:
            raise NoSuchAttributeError(name)
        return values[field].encode("utf-8")

    def statfs(self) -> dict[str, int]:
        total, free, avail = self.ds.storage.statfs()
        bsize = 4096
        with self._lock:  # df -i: files and directories in use; there is no inode limit
            ds = self.ds
            used = (sum(t.num_samples for t in ds._tensors.values()) + len(ds._manifest.files.keys() | self._held)
                    + len(ds._manifest.tensors) + len(ds._manifest.groups) + len(ds._manifest.pending_dirs) + 1)
        files = 1 << 32
        return {
            "f_bsize": bsize, "f_frsize": bsize, "f_blocks": total // bsize, "f_bfree": free // bsize,
            "f_bavail": avail // bsize, "f_files": files, "f_ffree": max(files - used, 0),
            "f_favail": max(files - used, 0), "f_namemax": NAME_MAX,
        }

    # --- commits -----------------------------------------------------------------------

    def commit(self) -> None:
        """Make everything closed so far durable: closed files were stored at their
        flush, and the held ones are stored by the dataset's commit (``store_held``)."""
        self.ds.flush()

    def refresh(self) -> list[str]:
        """Move a read-only mount to the dataset's latest commit (another process writes
        it); the paths whose cached attributes or pages went stale (changed, deleted,
        and every directory), for the kernel to forget. Empty when nothing changed.

        New files need nothing: listings are rebuilt for the new commit and the kernel
        keeps no negative lookups by default. Open files go on reading what they opened.
        ``dirs_before_refresh`` keeps the directories of the commit left: a name that
        was a directory and is a file now, or the reverse, is as stale as a deleted one."""
        ds = self.ds
        if not self.read_only:
            return []
        old_tensors, old_files = dict(ds._tensors), dict(ds._manifest.files)
        old_dirs = {*old_tensors, *ds._manifest.groups, *ds._manifest.pending_dirs}
        if not ds.refresh(swap_lock=self._lock):  # no operation sees half of a swap
            return []
        m = ds._manifest
        self.dirs_before_refresh = frozenset(old_dirs)
        stale = ["", *old_dirs]
        for name, old in old_tensors.items():
            new = ds._tensors.get(name)
            gone = old.file_table()[0] if new is None else new.changed_files(old)
            stale += [f"{name}/{n}" for n in gone]
        stale += [p for p, f in old_files.items() if m.files.get(p) != f]
        return stale

    def _lease_lost(self) -> None:
        """Another writer took the dataset's writer lease over for good (the dataset's
        hook, outside its lock; the dataset logged it): nothing more can be committed, so
        the mount turns read-only, as ``-o ro``. Files being written or held are dropped
        (listed in ``lost_with_lease``): their writes and closes answer EROFS. The mount
        moves to the dataset's latest commit (the other writer's): what it showed of its
        own uncommitted changes is gone, and the kernel is told which paths went stale
        (``after_lease_lost``)."""
        with self._lock:
            self.read_only = True
            dropped = list(self._open)
            for p, of in list(self._open.items()):
                if of.dirty and not of.detached and not _HIDDEN_NAME.fullmatch(split(p)[1]):
                    self.lost_with_lease.append(p)
                    of.lost = True
                of.detached = True
                del self._open[p]
                if of.refs == 0:
                    of.close()
            self._held.clear()
            self._held_bytes = 0
            self._second.clear()
            self._vanished.clear()
            self._written_as.clear()
        if self.lost_with_lease:
            log.warning("not stored, being written or waiting for a commit when the writer lease was lost: %s",
                        ", ".join("/" + p for p in self.lost_with_lease))
        try:
            stale = self.refresh()
            log.info("read-only from now on, serving the dataset's latest commit (%d)", self.ds._manifest.seq)
        except LakeFSError as e:  # (the mount's refresher tries again)
            log.warning("could not load the dataset's latest commit (still serving what this mount had): %s", e)
            stale = []
        known = set(stale)
        stale += [p for p in dropped if p not in known]  # (files the kernel was told exist)
        if self.after_lease_lost is not None:
            self.after_lease_lost(stale)

    def shutdown(self) -> None:
        """Commit every buffer, then the dataset (unmount, SIGTERM). A sample still being
        written (the mount stopped under its writer) is not stored: a sample is stored
        whole or not at all, and its first half would look whole. A plain staging file
        keeps what was written, as a file on a disk would. Files not stored are logged
        and added to ``not_stored``: the mount's last line must not say all was stored.
        After the writer lease was lost nothing can be stored (see :meth:`_lease_lost`):
        closing the dataset says whether changes were lost with it."""
        if self.ds.lease_lost is not None:
            return
        with self._lock:
            for of in list(self._open.values()):
                if not of.dirty or of.detached:
                    continue
                if of.writers and not self._is_staging_path(of.path):
                    log.error("/%s: not stored: still being written when the mount stopped", of.path)
                    of.detached = True
                    self._drop_open(of)
                    self.not_stored.append(of.path)
                    continue
                try:
                    self._commit(of)
                except LakeFSError as e:
                    log.error("/%s: not stored at unmount: %s", of.path, e)
                    self.not_stored.append(of.path)
        self.ds.flush()
