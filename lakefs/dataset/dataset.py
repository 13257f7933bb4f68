"""The dataset: tensors, groups, keyed rows, staging files, and commits.

Concurrency model (DESIGN §5): one writer process holds the storage's writer lock;
inside it every mutation takes ``_lock`` (the mount calls in from many FUSE threads).
Readers open a snapshot (``HEAD`` at open time) and never take the lock;
``refresh()`` moves a reader (and a writer between ``with`` blocks) to the latest commit.

A commit (``flush``) seals open chunks, writes new index and row segments, writes a new
manifest and finally replaces ``HEAD``: data first, visible last, one atomic step.
Objects made obsolete (merged segments, old manifests) are deleted only after that.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import difflib
import functools
import json
import logging
import os
import secrets
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np

from lakefs.chunks.cache import ChunkCache
from lakefs.chunks.chunk import ChunkKind
from lakefs.chunks.engine import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, ChunkEngine, IdAllocator
from lakefs.chunks.writer import ChunkWriter
from lakefs.compression import get_codec
from lakefs.config import parse_size
from lakefs.dataset import maintenance
from lakefs.dataset.compat import DATASET_ATTRIBUTE_HINTS, TENSOR_ARGUMENT_HINTS
from lakefs.dataset.htypes import get_htype
from lakefs.dataset.info import TENSOR_ARGUMENTS, json_info
from lakefs.dataset.names import check_key, check_path, check_plain_path, is_plain_path
from lakefs.dataset.samples import SUPPORTED_DTYPES, Encoded, SampleFormat, check_class_names, supported_dtype
from lakefs.dataset.tensor import Sample, Tensor, item_error, list_positions, position, untuple
from lakefs.dataset.views import Group, Row, RowList, item_as_attribute, refuse_hiding_an_item
from lakefs.errors import (
    ConfigError,
    CorruptionError,
    DatasetClosedError,
    DatasetExistsError,
    DatasetNotFoundError,
    DirectoryNotEmptyError,
    FormatVersionError,
    InvalidNameError,
    InvalidSampleError,
    KeyExistsError,
    LakeFSError,
    LeaseLostError,
    LockedError,
    ObjectExistsError,
    ObjectNotFoundError,
    ReadOnlyError,
    SampleNotFoundError,
    StorageError,
    StorageFullError,
    TensorExistsError,
    TensorNotFoundError,
    UnsupportedError,
)
from lakefs.format import keys, segments
from lakefs.format.checksum import ChecksumReader, crc32
from lakefs.format.manifest import (
    DIR_MODE,
    Manifest,
    StagedFile,
    TensorMeta,
    check_version,
    head_bytes,
    marker_bytes,
    parse_head,
)
from lakefs.format.rows import RowTable
from lakefs.storage.base import LOCK_PREFIX, Storage, WriterLock, read_verified

log = logging.getLogger("lakefs.dataset")

DEFAULT_CACHE_BYTES = 256 << 20
KEEP_MANIFESTS = 2  # older manifests are deleted after a commit
SESSION_ID_BITS = 32  # ids stay far below 2**64 for billions of sessions
OPEN_RETRIES = 8  # a concurrent commit may delete what a reader is about to read
GARBAGE_GRACE = 10.0  # seconds what a commit superseded (segments, manifests) outlives it
EXIT_COMMIT_SECONDS = 10.0  # the bound of the commit at exit on a store without op_timeout


def orphaned_dataset(storage: Storage) -> str | None:
    """What of a committed dataset lies at ``storage`` although its marker is missing, or
    None if nothing does beyond an interrupted creation (it commits an empty first
    manifest, then HEAD, then the marker: those may be completed or replaced). A dataset
    that lost its marker must never be taken for an empty place: a new dataset created
    over it would leave all of its data unreferenced, for ``compact`` to delete."""
    try:
        seq, _ = parse_head(storage.get(keys.HEAD), keys.HEAD)
        if seq > 1:
            return f"{keys.HEAD} names commit {seq}"
    except ObjectNotFoundError:
        pass
    except (CorruptionError, FormatVersionError):
        return f"a damaged {keys.HEAD}"
    first = keys.manifest(1)
    for key in storage.list(keys.MANIFESTS):
        if key != first and keys.is_dataset_key(key):
            return f"{key} is there"
        if key == first:
            try:
                m = Manifest.from_bytes(storage.get(key), key)
            except ObjectNotFoundError:
                continue
            except (LakeFSError, ValueError):
                return f"a damaged {key}"
            if m.tensors or m.row_count or m.files or m.groups or m.pending_dirs:
                return f"{key} holds tensors or rows"
    for prefix in (keys.TENSORS, keys.ROWS, keys.FILES):
        key = next((k for k in storage.list(prefix) if keys.is_dataset_key(k)), None)
        if key is not None:
            return f"{key} is there"
    return None


def take_writer_lock(storage: Storage) -> WriterLock:
    """The dataset's writer lock. Held by this very process, the refusal says so, and how
    to go on: it named "another writer" with this process's own pid (a notebook cell
    that opens the dataset, run again)."""
    try:
        return storage.writer_lock(keys.WRITER_LOCK)
    except LockedError as e:
        if not e.in_this_process:
            raise
        raise LockedError(f"{storage.where} is already open for writing in this process: another Dataset object "
                          "holds its writer lock; close() that one (or end its `with` block) first, or load this "
                          "one with read_only=True", holder=e.holder, in_this_process=True) from e


def holds_dataset(storage: Storage) -> bool:
    """Whether ``storage`` holds a dataset: its marker, or a dataset that lost it, which
    every command refuses with :func:`lost_marker_message` rather than "no dataset"."""
    return storage.exists(keys.MARKER) or orphaned_dataset(storage) is not None


def fsck_hint(where: str) -> str:
    """The advice that ends an error about damage found reading the dataset at ``where``."""
    return f"run `lakefs fsck {shlex.quote(where)}`"


def lost_marker_message(where: str, what: str) -> str:
    """One line for a dataset whose marker is gone: what is left, and how to recover."""
    return (f"{where}: the dataset marker {keys.MARKER} is missing, but a dataset is there ({what}); "
            f"it was left untouched: `lakefs fsck --repair {where}` restores the marker "
            f"(`lakefs create --overwrite {where}` deletes the dataset instead)")


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """One commit, loaded: what a reader serves until it refreshes."""

    head: bytes
    manifest: Manifest
    ids: IdAllocator
    rows: RowTable
    tensors: dict[str, Tensor]


def _local_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@dataclasses.dataclass(frozen=True)
class LeaseLoss:
    """A writer's lease lost for good (:attr:`Dataset.lease_lost`): when, why, and the
    last commit this writer made (or opened), after which nothing it changed is stored."""

    where: str
    why: str
    at: float  # time.time() when it was found
    seq: int
    seq_at: float
    seq_ours: bool  # commit ``seq`` was made by this writer (else: it opened that one)

    @property
    def when(self) -> str:
        return _local_time(self.at)

    @property
    def since(self) -> str:
        how = "committed by this writer" if self.seq_ours else "opened by this writer"
        return f"commit {self.seq} ({how} at {_local_time(self.seq_at)})"

    def message(self) -> str:
        """The one line logged when the loss is found, and the error of every commit after."""
        return (f"{self.where}: the writer lease was lost to another writer ({self.why}): every change "
                f"made since {self.since} cannot be committed and is lost; read-only from now on")

    def refusal(self) -> str:
        """The error of a write refused after the loss."""
        return (f"{self.where} is read-only: its writer lease was lost to another writer at "
                f"{self.when} (changes since commit {self.seq} were lost)")


def _not_an_attribute(name: str, what: str) -> str:
    """Refuse, as Deep Lake does, a tensor or group name that ``ds.<name>`` (or
    ``group.<name>``) would not reach, an attribute answering first: ``ds.files`` of a
    tensor ``files`` was the dict of plain files, and ``files.append`` an AttributeError.
    Only here, in the API: the mount makes a folder of any name a tensor or group, and
    ``ds["files"]`` reaches it."""
    for i, part in enumerate(name.split("/")):
        owner = Dataset if i == 0 else Group
        # (and the attributes each sets on itself: ds.storage was the storage, ds.g.name "g")
        own = ("storage", "allow_transcode", "generation", "lease_lost") if i == 0 else ("dataset", "name")
        if not part.startswith("_") and (hasattr(owner, part) or part in own):
            where = "ds" if i == 0 else "a group"
            raise InvalidNameError(f"{what} name {name!r}: {part!r} is an attribute of {where}"
                                   f" ({where}.{part} would not reach it); choose another name")
    return name


SUMMARY_DTYPES = {"text": "str", "json": "Any"}  # Deep Lake's summary() dtypes of these htypes


class Dataset:
    """A lakefs dataset. Make one with :func:`lakefs.empty`, :func:`lakefs.load` or
    :func:`lakefs.dataset`.

    A writable one still open with uncommitted changes when the interpreter exits is
    committed then (``commit_at_exit``; see :class:`_OpenWriters`), as Deep Lake keeps what
    a script wrote without flushing."""

    def __init__(self, storage: Storage, *, read_only: bool = False, create: bool = False,
                 must_create: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 allow_transcode: bool = True, commit_interval: float | None = None,
                 commit_at_exit: bool = True, _replacing: bool = False, _owns_storage: bool = False) -> None:
        if commit_interval is not None and not commit_interval > 0:
            raise ConfigError(f"commit_interval must be > 0 seconds, not {commit_interval!r}")
        self.storage = storage
        # Opened for it from a path (lakefs.load): closed with it, descriptors and threads.
        self._owns_storage = _owns_storage
        self._read_only = read_only or not storage.writable
        self.allow_transcode = allow_transcode
        self._lock = threading.RLock()
        self._cache = ChunkCache(cache_bytes)
        self._writer_lock: WriterLock | None = None
        self._closed = False
        self._with_depth = 0  # of nested `with ds:` blocks (see __exit__)
        self._closed_by = "close() was called"  # (or the end of a read-only dataset's block)
        self._head: bytes | None = None  # the HEAD object this reader loaded
        self._marker: bytes | None = None  # and the marker (a re-created dataset has another)
        self._replacing = _replacing  # empty(overwrite=True): the folder held a dataset
        self._manifest_put: str | None = None  # a manifest this writer put (HEAD may have failed)
        self._unnamed: list[str] = []  # segments of commits that failed while putting their manifest
        self._dirty = False
        self._before_commit: list[Callable[[], None]] = []
        # Ids of staged files put, not yet published or dropped → their bytes' crc32
        # (None while being put).
        self._staging: dict[int, int | None] = {}
        self.generation = 0  # bumped by every change: lets views cache lookups safely
        self._obsolete: list[str] = []
        # (when, keys, prefixes) a commit made garbage, deleted GARBAGE_GRACE s later
        self._graveyard: list[tuple[float, list[str], list[str]]] = []
        self._garbage_lock = threading.Lock()
        self._dropped_prefixes: list[str] = []
        self._chunk_writer: ChunkWriter | None = None
        # Set once another writer took the lease over for good (see _stop_writing).
        self.lease_lost: LeaseLoss | None = None
        self._lost_changes = False  # it had uncommitted changes then: every commit after fails
        self._lease_hooks: list[Callable[[], None]] | None = []  # (see on_lease_lost)
        self._stale = False  # the state held is not a commit: refresh() loads HEAD whatever it is
        self._commit_at = (time.time(), False)  # (when, made by this writer) of the last commit
        self._created_ns: int | None = None  # when the marker was written (see dir_attr)
        if not self.read_only:
            # Before the lock is taken (it makes the root and a lock object): a root that
            # is a file, a mistyped path or a folder of other files get one clear error
            # and are left as they were.
            storage.check()
            exists = storage.exists(keys.MARKER)
            if not exists:
                if not create:
                    raise self._no_marker()
                self._refuse_foreign_objects()
            try:
                self._writer_lock = take_writer_lock(storage)
            except ReadOnlyError as e:
                if not exists:
                    raise
                # (a read-only file system: "cannot take the writer lock" named no way out)
                raise ReadOnlyError(f"{e}; the dataset's folder is read-only: open it with read_only=True, "
                                    "or mount it with -o ro") from e
            self._chunk_writer = ChunkWriter(storage)
        try:
            self._open(create=create, must_create=must_create)
        except BaseException:
            self._release_lock()
            raise
        self._autocommit: _AutoCommit | None = None
        if commit_interval is not None and not self.read_only:
            self._start_autocommit(commit_interval)
        self._commit_at_exit = commit_at_exit and not self.read_only
        if self._commit_at_exit:
            _open_writers.track(self)

    # --- opening -----------------------------------------------------------------------

    def _open(self, *, create: bool, must_create: bool) -> None:
        try:
            marker = self.storage.get(keys.MARKER)
        except ObjectNotFoundError:
            marker = None
        if marker is None:
            if not create:
                raise self._no_marker()
            if self.read_only:
                raise ReadOnlyError(f"cannot create a dataset on read-only storage {self.storage.where}")
            self._refuse_foreign_objects()  # again, under the lock
            self._init_new()
            return
        if must_create:
            raise DatasetExistsError(f"a dataset already exists at {self.storage.where} (use overwrite)",
                                     replaceable=True)
        self._check_marker(marker)
        self._marker = marker
        self._adopt(self._read_head())
        if not self.read_only:
            # Ids of this writer session start at a random distance past the committed
            # next_id, so two sessions never hand out the same ids: not a writer that
            # crashed (whose uncommitted objects a read cache may still hold), nor one
            # that lost its lease while paused and still puts chunks (docs/FORMAT.md §8).
            self._ids.next_id += 1 + secrets.randbits(SESSION_ID_BITS)

    def _no_marker(self) -> LakeFSError:
        """The error for a place without a marker: a dataset that lost it, or none."""
        what = orphaned_dataset(self.storage)
        if what is not None:
            return CorruptionError(lost_marker_message(self.storage.where, what))
        return DatasetNotFoundError(f"no lakefs dataset at {self.storage.where}")

    def _refuse_foreign_objects(self) -> None:
        """A dataset is only created where nothing lies but what an interrupted creation
        leaves (an empty first commit), or where one was just deleted to be replaced:
        never over a dataset that lost its marker, nor among a user's files."""
        if self._replacing:
            return
        what = orphaned_dataset(self.storage)
        if what is not None:
            raise CorruptionError(lost_marker_message(self.storage.where, what))
        ours = {keys.MARKER, keys.HEAD, *(p.rstrip("/") for p in (keys.MANIFESTS, keys.TENSORS, keys.ROWS,
                                                                    keys.FILES, LOCK_PREFIX))}
        foreign = next((n for n in self.storage.top_names() if n not in ours), None)
        if foreign is None:
            foreign = next((k for k in self.storage.list()
                            if not k.startswith(LOCK_PREFIX) and not keys.is_dataset_key(k)), None)
        if foreign is not None:
            raise DatasetExistsError(
                f"{self.storage.where} is not empty and holds no lakefs dataset ({foreign!r} is "
                "there): refusing to create one among other files; use a new or empty folder")

    def _check_marker(self, marker: bytes) -> None:
        try:
            d = json.loads(marker)
        except ValueError as e:
            raise CorruptionError(f"{keys.MARKER} is not a lakefs dataset marker") from e
        if not isinstance(d, dict) or d.get("format") != "lakefs" or type(d.get("version")) is not int:
            raise CorruptionError(f"{keys.MARKER} is not a lakefs dataset marker")
        check_version(d["version"], keys.MARKER)

    def _init_new(self) -> None:
        # No marker: nothing here is a dataset, so a crashed creation's first manifest
        # (and one of a dataset being replaced) may be replaced.
        self._manifest_put = keys.manifest(1)
        self._manifest = Manifest()
        self._rows = RowTable()
        # From a random start, as every writer session: a dataset created again at the
        # same place never reuses the ids of the one before (caches key objects by name).
        self._ids = IdAllocator(self._manifest.next_id + secrets.randbits(SESSION_ID_BITS))
        self._tensors: dict[str, Tensor] = {}
        self._dirty = True
        self.flush()
        # The marker goes last: a creation killed before this point leaves no marker, so
        # the location still reads as "no dataset" and can be created again, instead of
        # a marker without a HEAD that no open can get past.
        self._marker = marker_bytes()
        self.storage.put(keys.MARKER, self._marker)

    def _read_head(self) -> _Snapshot:
        """The latest commit, loaded (manifest, rows, index). A writer committing at the
        same time may delete what is being read: read again, as a fresh open would.
        Damage (of HEAD, the manifest, a row or index segment) stops every open and
        refresh here: its error ends with the fsck to run, said in this one place."""
        for attempt in range(OPEN_RETRIES):
            try:
                return self._load_head()
            except CorruptionError as e:
                if attempt == OPEN_RETRIES - 1 or not isinstance(e.__cause__, ObjectNotFoundError):
                    raise CorruptionError(f"{e}; {fsck_hint(self.storage.where)}") from e
                time.sleep(min(0.05 * 2**attempt, 1.0))  # a commit replaced what we were reading
        raise AssertionError("unreachable")

    def _load_head(self) -> _Snapshot:
        try:
            head = self.storage.get(keys.HEAD)
            seq, mkey = parse_head(head, keys.HEAD)
            manifest = Manifest.from_bytes(self.storage.get(mkey), mkey)
        except ObjectNotFoundError as e:
            raise CorruptionError(f"dataset HEAD or manifest is missing: {e}") from e
        ids = IdAllocator(manifest.next_id)
        rows = RowTable()
        for ref in manifest.rows:
            key = keys.rows_segment(int(ref["id"]))
            try:
                count, body = read_verified(self.storage, key, functools.partial(self.storage.get, key),
                                            functools.partial(segments.unpack_exact, kind=segments.KIND_ROWS,
                                                              where=key, count=int(ref["count"]), what="rows"))
            except ObjectNotFoundError as e:
                raise CorruptionError(f"row segment {key} is missing") from e
            rows.load_segment(body, count, int(ref["start"]), key)
        rows.segments = [dict(r) for r in manifest.rows]
        rows.finish_load()
        if len(rows) != manifest.row_count:
            raise CorruptionError(f"manifest says {manifest.row_count} rows, segments hold {len(rows)}")
        tensors = {}
        for name, meta in manifest.tensors.items():
            tensor = self._make_tensor(name, meta, ids)
            tensor._engine.load_index(meta.segments)
            tensors[name] = tensor
        return _Snapshot(head, manifest, ids, rows, tensors)

    def _adopt(self, snap: _Snapshot) -> None:
        self._head, self._manifest, self._ids, self._rows, self._tensors = (
            snap.head, snap.manifest, snap.ids, snap.rows, snap.tensors)

    def refresh(self, *, swap_lock: Any = None) -> bool:
        """Move a read-only dataset to the latest commit of its writer; whether there
        was a newer one. Tensors and samples taken before stay readable as they were
        (chunks are immutable) until ``compact`` deletes what they point at; take them
        again from the dataset to see the new commit. A writable dataset holding the
        writer lock is at its own latest commit: nothing to do. One between ``with``
        blocks holds none (nor changes): another writer may have committed, and it
        moves there with the tensors taken from it, as its next write would
        (:meth:`_load_latest`).

        A dataset deleted and created again at the same place (its marker changed) is
        loaded whole, whatever its HEAD says; so is the latest commit by a writer whose
        lease another writer took over (:attr:`lease_lost`): it is read-only from then
        on. ``swap_lock`` is held, besides the dataset lock, while the new commit is
        swapped in (the mount's filesystem lock: its operations read the dataset's state
        more than once per call)."""
        if self._closed:
            raise DatasetClosedError(f"{self.storage.where}: the dataset is closed ({self._closed_by}): load it "
                                     f"again, lakefs.load({self.storage.where!r}, read_only=True)")
        if not self.read_only:
            with swap_lock or contextlib.nullcontext(), self._lock:
                if self._writer_lock is not None or self._dirty or self._closed:
                    return False
                return self._load_latest()
        try:
            head = self.storage.get(keys.HEAD)
            marker = self.storage.get(keys.MARKER)
        except ObjectNotFoundError as e:
            raise CorruptionError(f"dataset HEAD or marker is missing: {e}") from e
        replaced = marker != self._marker
        if head == self._head and not replaced and not self._stale:
            return False
        snap = self._read_head()  # outside the locks: readers go on meanwhile
        with swap_lock or contextlib.nullcontext(), self._lock:
            if not replaced and not self._stale and snap.manifest.seq <= self._manifest.seq:
                return False  # another refresh got as far or further meanwhile
            self._adopt(snap)
            if replaced:
                self._created_ns = None  # (another dataset: another creation time)
            self._marker = marker
            self._stale = False
            self.generation += 1
        return True

    def _make_tensor(self, name: str, meta: TensorMeta, ids: IdAllocator | None = None) -> Tensor:
        if meta.chunk_compression:
            kind = ChunkKind.CHUNK_COMPRESSED
            codec = get_codec(meta.chunk_compression)
            compress, decompress = codec.compress, codec.decompress
        else:
            kind = ChunkKind.SAMPLE_COMPRESSED if meta.sample_compression else ChunkKind.UNCOMPRESSED
            compress = decompress = None
        engine = ChunkEngine(self.storage, meta.tid, kind, ids or self._ids, self._cache, meta.chunk_size,
                             compress, decompress, self._chunk_writer, self._missing_chunk)
        fmt = SampleFormat(meta, allow_transcode=self.allow_transcode)
        return Tensor(self, name, meta, engine, fmt)

    def _missing_chunk(self, key: str) -> str:
        """Why chunk ``key``, which this dataset's commit names, is not in the store. Only
        ``compact`` and tensor deletion delete chunks: a reader whose commit is no longer
        HEAD may have lost it to them (no damage: it must move to the new commit); for a
        writer, or a reader still at HEAD, it is damage."""
        moved = False
        if self.read_only:
            try:
                moved = self.storage.get(keys.HEAD) != self._head
            except ObjectNotFoundError:
                pass  # (a HEAD gone too: damage)
            except LakeFSError:
                moved = True  # (cannot tell: the store fails)
        if not moved:
            return f"chunk {key} is missing: the dataset is damaged; {fsck_hint(self.storage.where)}"
        return (f"chunk {key} is missing: the dataset changed since this reader loaded it (a writer compacted "
                "it or deleted the tensor): refresh or reopen it to read the new commit, and "
                f"{fsck_hint(self.storage.where)} if the chunk is still missing")

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Dataset:
        with self._lock:
            self._with_depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        """The end of a block of writes, as in Deep Lake v3, where ``with ds:`` batches
        writes and any number of blocks may follow: a writer commits and releases its
        writer lock, so that another writer can open the dataset, and stays open (reads
        go on; the next write takes the lock again, :meth:`_reopen`). A read-only
        dataset, and a writer whose lease was lost, are closed, as by ``close()``.
        Only the outermost of nested blocks does this, as Deep Lake flushes only there:
        an inner block's end does nothing (it let another writer in mid-block)."""
        with self._lock:
            self._with_depth -= 1
            if self._with_depth > 0:
                return
        if self.read_only or self.lease_lost is not None:
            was_closed = self._closed
            try:
                self.close()
            finally:
                if self._closed and not was_closed:
                    self._closed_by = "its `with` block ended"
        elif not self._closed:
            self._end_writing()

    def _end_writing(self) -> None:
        """Commit everything and release the writer lock, staying open. A commit that
        fails raises with the lock still held and every change still in, as ``close``."""
        self._run_before_commit()
        try:
            with self._lock:
                garbage = self._commit()
                self._release_lock()
                _open_writers.forget(self)
        except LeaseLostError:
            self._announce_lease_lost()
            raise
        self._delete_garbage(*garbage, all_now=True)

    def _reopen(self) -> None:
        """Take the writer lock again for a write after a ``with`` block released it
        (with the dataset lock), and move to the dataset's latest commit
        (:meth:`_load_latest`) if another writer made one meanwhile."""
        try:
            lock = self.storage.writer_lock(keys.WRITER_LOCK)
        except LockedError as e:
            who = " of this process" if e.in_this_process else f" ({e.holder})" if e.holder else ""
            raise LockedError(f"{self.storage.where}: another writer{who} has the dataset open for writing (it took "
                              "the writer lock after this dataset's `with` block ended): write again once it is "
                              "closed; reads go on", holder=e.holder, in_this_process=e.in_this_process) from e
        try:
            self._load_latest()
            self._ids.next_id += 1 + secrets.randbits(SESSION_ID_BITS)  # (as at open: see _open)
        except BaseException:
            lock.release()
            raise
        self._writer_lock = lock
        if self._commit_at_exit:
            _open_writers.track(self)

    def _load_latest(self) -> bool:
        """Move a writable dataset that holds no writer lock (after a ``with`` block) to
        the dataset's latest commit, unless it holds it already; whether it moved (with
        the dataset lock). The tensors taken before (``images = ds.images``) are moved to
        it, so they write where ``ds.images`` does; those the other writer deleted (a
        tensor made again under the same name is another tensor: another id), and all of
        them when the dataset was deleted and created again, are retired: a write through
        them raises ``TensorNotFoundError``, where it went into a tensor no commit holds."""
        try:
            marker = self.storage.get(keys.MARKER)
        except ObjectNotFoundError:
            raise self._no_marker() from None
        try:
            seq, mkey = parse_head(self.storage.get(keys.HEAD), keys.HEAD)
            if (marker == self._marker and seq == self._manifest.seq
                    and self.storage.get(mkey) == self._manifest.to_bytes()):
                return False
        except ObjectNotFoundError:
            pass  # (_read_head says what is missing)
        self._check_marker(marker)
        replaced = marker != self._marker
        before = {} if replaced else {t.meta.tid: t for t in self._tensors.values()}
        gone = list(self._tensors.values())
        self._adopt(self._read_head())
        for name, tensor in self._tensors.items():
            old = before.pop(tensor.meta.tid, None)  # (the same tensor, renamed or not)
            if old is not None:
                old.name, old.meta, old._engine, old._format = name, tensor.meta, tensor._engine, tensor._format
                self._tensors[name] = old
        for tensor in gone if replaced else before.values():
            tensor._retire(f"is gone: {self.storage.where} was deleted and created again by another writer"
                           if replaced else "was deleted from the dataset by another writer")
        self._marker, self._created_ns = marker, None
        self._commit_at = (time.time(), False)
        self.generation += 1
        return True

    def __del__(self) -> None:
        # Never committed here (a dataset dropped without close keeps what it committed;
        # one still open at interpreter exit is committed by _OpenWriters, before this),
        # and no network call: at interpreter exit fsspec's event loop may be gone, and
        # waiting for it hung the process. An object store's lease then expires by itself.
        lock = getattr(self, "_writer_lock", None)
        if lock is not None and not getattr(self, "_closed", True):
            try:
                lock.abandon()
            except Exception:
                pass

    def close(self) -> None:
        """Commit everything and release the writer lock; the storage too when
        ``lakefs.load`` (``empty``, ``dataset``) opened it from a path: its descriptors and
        threads, so that a program opening datasets again and again does not run out.

        If that commit fails (a full disk, an unreachable store), the error is raised and
        the dataset stays open with everything written still in it (and its periodic
        commit, ``commit_interval``, goes on): close (or flush) again once the cause is
        fixed. A writer that lost its lock closes anyway, since nothing it holds can be
        committed any more (``LeaseLostError`` when changes were lost with it:
        :attr:`lease_lost`)."""
        thread = getattr(self, "_autocommit", None)
        interval = thread.interval if thread is not None else None
        self.stop_autocommit()  # (no periodic commit during the final one)
        if self._closed:
            return
        hook_error: LakeFSError | None = None
        try:
            self._run_before_commit()
        except LakeFSError as e:  # (files the mount keeps in memory): they stay for a retry
            hook_error = e
        try:
            self._close(keep_open=hook_error is not None)  # what is in the dataset is committed
        finally:
            if self._closed and self._owns_storage:  # (after the garbage _close deletes)
                self.storage.close()
            elif not self._closed and interval is not None and self.lease_lost is None:
                with contextlib.suppress(RuntimeError):  # (no thread starts as the interpreter exits)
                    self._start_autocommit(interval)  # still open: committed periodically again
        if hook_error is not None:
            raise hook_error

    def _close(self, *, keep_open: bool = False) -> None:
        with self._lock:  # a commit from another thread finishes first, none starts after
            if self._closed:
                return
            try:
                garbage = self._commit()
            except LockedError:
                self._finish_close()
                raise
            if not keep_open:
                self._finish_close()
        self._delete_garbage(*garbage, all_now=not keep_open)

    def abandon(self) -> None:
        """Close without committing: give up every change since the last commit.

        For a writer that stops for good after a commit failed (an ingest that exits, a
        mount that unmounts on a full disk), where :meth:`close` would keep the changes
        for a retry that never comes: the objects this writer put for them (chunks,
        segments, a manifest ``HEAD`` never named) are deleted, so their space is free
        again for a rerun, and the writer lock is released. Nothing a commit references
        is deleted."""
        self.stop_autocommit()
        with self._lock:
            if self._closed:
                return
            if self._chunk_writer is not None:
                self._chunk_writer.close()  # no put of a chunk may land after its delete
            try:
                if not self.read_only and self._writer_lock is not None:
                    maintenance.delete_unpublished(self)
            finally:
                self._finish_close()
        self._delete_garbage([], [], all_now=True)  # (the garbage of what was published)

    def _finish_close(self) -> None:
        self._closed = True
        _open_writers.forget(self)
        if self._chunk_writer is not None:
            self._chunk_writer.close()
        self._release_lock()

    def _start_autocommit(self, interval: float) -> None:
        self._autocommit = _AutoCommit(self, interval)
        self._autocommit.start()

    def stop_autocommit(self) -> None:
        """Stop the periodic commit thread (and wait for a commit it is doing)."""
        thread = getattr(self, "_autocommit", None)
        if thread is not None:
            thread.stop()
            self._autocommit = None

    def _release_lock(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    def _check_writable(self) -> None:
        """Refuse a write the dataset cannot take; take the writer lock again for the first
        write after a ``with`` block (a writable dataset holds none only then)."""
        if self.lease_lost is not None:
            raise LeaseLostError(self.lease_lost.refusal())
        if self.read_only:
            raise ReadOnlyError("the dataset is open read-only")
        if self._closed:
            raise DatasetClosedError(f"{self.storage.where}: the dataset is closed ({self._closed_by}): load it "
                                     f"again to write, lakefs.load({self.storage.where!r})")
        if self._writer_lock is None:
            with self._lock:
                if self._writer_lock is None and not self._closed:
                    self._reopen()

    def _touch(self) -> None:
        self._dirty = True
        self.generation += 1

    @property
    def has_changes(self) -> bool:
        return self._dirty

    @property
    def read_only(self) -> bool:
        """Whether writes are refused: opened so, on read-only storage, or a writer whose
        lease another writer took over (:attr:`lease_lost`)."""
        return self._read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        """Refused unless it changes nothing: a reader holds no writer lock, so turned
        writable it took writes that no commit could store; a writer turned reader kept
        its lock and dropped its uncommitted writes. Reopen instead."""
        if bool(value) == self._read_only:
            return
        where = self.storage.where
        if self.lease_lost is not None:
            raise LeaseLostError(self.lease_lost.refusal())
        if not value:
            raise ReadOnlyError(f"{where} is open read-only and cannot become writable: open it again with "
                                f"lakefs.load({where!r}), which takes the writer lock")
        raise UnsupportedError(f"{where} is open for writing and cannot become read-only: close() it (which "
                               f"commits) and open it with lakefs.load({where!r}, read_only=True)")

    # --- commit ------------------------------------------------------------------------

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` at the start of every commit (also the periodic one and the one
        at ``close``), before the dataset lock is taken: the mount stores the closed
        staging files it keeps in memory there (lakefs.fs.tree). A hook that raises
        fails the commit; the periodic commit logs it and tries again."""
        self._before_commit.append(hook)

    def _run_before_commit(self) -> None:
        if not self.read_only:
            for hook in self._before_commit:
                hook()

    def on_lease_lost(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once when another writer is found to have taken the lease over
        for good, outside the dataset lock: the mount drops the files it holds and moves
        to the latest commit (lakefs.fs.tree). Without a hook the dataset moves itself."""
        with self._lock:
            if self._lease_hooks is not None:
                self._lease_hooks.append(hook)

    def _announce_lease_lost(self) -> None:
        """Run the :meth:`on_lease_lost` hooks, once (call without the dataset lock)."""
        with self._lock:
            hooks, self._lease_hooks = self._lease_hooks, None
        if hooks is None or self._closed:
            return
        if not hooks:
            hooks = [self.refresh]
        for hook in hooks:
            try:
                hook()
            except LakeFSError as e:  # (the store does not answer: the next refresh tries again)
                log.warning("%s: could not move to the dataset's latest commit after the lost lease: %s",
                            self.storage.where, e)
            except Exception:
                log.exception("%s: a hook of the lost writer lease failed", self.storage.where)

    def check_lease(self) -> None:
        """Check the lease of a writer with nothing to commit, taking a lost one again
        when safe (:meth:`_retake_lease`); the periodic commit calls it, so that a mount
        whose lease another writer took over turns read-only before it accepts writes it
        could never commit. ``LeaseLostError`` then; a store that does not answer is left
        to the next call (the renewals log it)."""
        with self._lock:
            lock = self._writer_lock
            if lock is None or self.lease_lost is not None or self.read_only or self._closed or self._dirty:
                return
            try:
                lock.verify()
                return
            except LockedError:
                pass
            try:
                self._verify_writer(self._manifest.seq)
                return
            except LeaseLostError as e:
                error = LeaseLostError(self._stop_writing(str(e)).message())
            except LakeFSError:
                return
        self._announce_lease_lost()
        raise error

    def flush(self) -> None:
        """Commit: make every write so far durable and visible, atomically.

        On a full disk (``StorageFullError``, raised) the samples whose chunks could be
        stored are committed all the same, and the others held back: still in memory,
        readable, committed by the next flush that finds room (or given up with
        :meth:`abandon`).

        After another writer took the lease over for good (:attr:`lease_lost`) the dataset
        is read-only, and this raises ``LeaseLostError`` if changes were lost with it."""
        self._run_before_commit()
        try:
            garbage = self._commit()
        except LeaseLostError:
            self._announce_lease_lost()
            raise
        # Outside the lock: deleting what the commit left unreachable (staged files rsync
        # renamed, replaced chunks) is one storage call per object, and the mount's file
        # operations wait for this lock. Ids are never reused, so nothing can point at
        # them again.
        self._delete_garbage(*garbage)

    def _commit(self) -> tuple[list[str], list[str]]:
        """Publish a commit (with the lock); returns the keys and prefixes it made garbage."""
        with self._lock:
            if self.lease_lost is not None:
                if self._lost_changes:
                    raise LeaseLostError(self.lease_lost.message())
                return [], []
            if self.read_only or self._closed or not self._dirty:
                return [], []
            committed = self._manifest.seq
            try:
                try:
                    return self._publish(committed)
                except StorageFullError as full:
                    self._publish_stored(committed, full)
                    raise
            except LeaseLostError as e:
                raise LeaseLostError(self._stop_writing(str(e)).message()) from None

    def _publish(self, committed: int, unstored: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
        """:meth:`_commit`'s steps, after commit ``committed`` (with the lock). A failed
        one is undone in memory (:meth:`_roll_back`): the next one starts from the last
        published commit. With ``unstored`` (chunk keys whose put failed), the samples in
        those chunks, and the new rows after the last sample published, are held back:
        left as the last commit has them, still changed for the next commit."""
        self._verify_writer(committed)  # before anything of this commit is put
        m = self._manifest
        point = (list(self._rows.segments), self._rows.committed, list(self._obsolete), m.row_count, m.rows)
        held: dict[str, np.ndarray] = {}
        publishing = False
        try:
            upto = len(self._rows)
            if unstored:
                held = {name: t._engine.held_rows(unstored) for name, t in self._tensors.items()}
                upto = self._rows_to_publish(held)
            for name, tensor in self._tensors.items():
                if tensor._engine.commit_index(held.get(name)):
                    m.tensors[name].segments = tensor._engine.segment_refs()
            self._commit_rows(upto)
            if self._chunk_writer is not None:
                self._chunk_writer.drain(unstored)  # every chunk durable before anything points at it
            m.row_count = self._rows.committed
            m.rows = [dict(r) for r in self._rows.segments]
            m.next_id = self._ids.next_id
            self._prune_dirs()
            m.seq += 1
            mkey = keys.manifest(m.seq)
            publishing = True
            try:
                self._verify_writer(committed)  # a lost lease must never publish a commit
                self._put_manifest(mkey, m.to_bytes())
                self._verify_writer(committed)
                self.storage.put(keys.HEAD, head_bytes(m.seq, mkey))
            except ObjectExistsError as e:
                raise LeaseLostError(f"another writer committed {mkey} of {self.storage.where}: this "
                                     "one lost its writer lock (lease) and publishes nothing") from e
        except BaseException:
            if publishing:
                m.seq -= 1
            self._roll_back(point, publishing)
            raise
        for name, tensor in self._tensors.items():
            tensor._engine.published(held.get(name))
        self._dirty = self._rows.committed < len(self._rows) or any(len(h) for h in held.values())
        self._commit_at = (time.time(), True)
        doomed, prefixes = self._take_garbage(m.seq)
        doomed += self._unnamed  # (this commit's manifest does not name them: they are garbage)
        self._unnamed = []
        return doomed, prefixes

    def _roll_back(self, point: tuple, publishing: bool) -> None:
        """Undo in memory what a commit that failed changed before it could publish. The
        segments it put are deleted; once its manifest may have been put (``publishing``:
        a put that failed may still have landed on an object store), they are only
        remembered, for the next commit or :meth:`abandon` to delete."""
        m = self._manifest
        rows = self._rows
        segs, rows.committed, self._obsolete, m.row_count, m.rows = point
        put = [keys.rows_segment(int(r["id"])) for r in rows.segments if r not in segs]
        rows.segments = segs
        for name, tensor in self._tensors.items():
            key = tensor._engine.roll_back()
            if key is not None:
                put.append(key)
                m.tensors[name].segments = tensor._engine.segment_refs()
        if publishing:
            self._unnamed += put
            return
        for key in put:
            try:
                self.storage.delete(key)
            except LakeFSError as e:  # (compact deletes it)
                log.warning("could not delete %s of a commit that failed: %s", key, e)

    def _rows_to_publish(self, held: dict[str, np.ndarray]) -> int:
        """How many rows a commit that holds back ``held`` publishes: up to the last row
        one of its samples needs (a new row of held samples alone waits for them)."""
        last = self._rows.committed - 1
        for name, tensor in self._tensors.items():
            kept = np.setdiff1d(tensor._engine.index.dirty_rows(), held[name])
            if len(kept):
                last = max(last, int(kept[-1]))
        return last + 1

    def _publish_stored(self, committed: int, full: StorageFullError) -> None:
        """A commit failed for lack of space (``full``, which the caller raises): commit
        the samples whose chunks are stored, holding back those in the chunks that could
        not be stored (kept in memory, put again by the next commit). A mount's files
        and an ingest's samples stored before the disk filled are then kept, instead of
        every change since the last commit waiting on the ones that do not fit."""
        writer = self._chunk_writer
        if writer is None:
            return
        for tensor in self._tensors.values():
            tensor._engine.seal()
        unstored = writer.unstored()
        if not unstored:
            return  # (the chunks are stored; the index or manifest did not fit)
        if not any(len(np.setdiff1d(t._engine.index.dirty_rows(), t._engine.held_rows(unstored)))
                   for t in self._tensors.values()):
            return  # no sample to commit
        try:
            garbage = self._publish(committed, unstored)
        except StorageError as e:
            log.warning("%s: %s; not even the samples already stored could be committed: %s",
                        self.storage.where, full, e)
            return
        with self._garbage_lock:
            self._graveyard.append((time.monotonic(), *garbage))
        log.warning("%s: %s; committed the samples stored so far, the rest waits for space and the next commit",
                    self.storage.where, full)

    def _put_manifest(self, mkey: str, blob: bytes) -> None:
        """Put the manifest of the commit being made. Create-only, so a writer that lost
        its lease (paused past it while another took over and committed) can never
        replace the other's commit; a manifest that exists but that HEAD never named is
        what a writer crashing before its HEAD put left behind, and is replaced."""
        if mkey != self._manifest_put:  # (ours from an attempt that failed at HEAD: replace)
            try:
                self.storage.put_new(mkey, blob)
                self._manifest_put = mkey
                return
            except ObjectExistsError:
                seq, _ = parse_head(self.storage.get(keys.HEAD), keys.HEAD)
                if seq >= self._manifest.seq:
                    raise
        self.storage.put(mkey, blob)
        self._manifest_put = mkey

    def _verify_writer(self, committed: int) -> None:
        """Raise ``LockedError`` unless this writer holds its lock, taking a lost lease
        again when that is safe (see :meth:`_retake_lease`): ``LeaseLostError`` when it
        is lost for good, plain ``LockedError`` while the store does not answer."""
        lock = self._writer_lock
        if lock is None:
            return
        try:
            lock.verify()
        except LockedError as lost:
            self._retake_lease(lost, committed)

    def _retake_lease(self, lost: LockedError, committed: int) -> None:
        """A lease lost while nobody else wrote (a network outage longer than the lease:
        its renewals failed until it expired) is taken again, so a long-lived writer such
        as a mount commits again once the store answers. Safe only when no other writer
        held the lease meanwhile (``WriterLock.retake``: another writer may have deleted
        this one's unpublished chunks without committing, e.g. a compact with nothing to
        rewrite); HEAD and the marker are checked as well. Otherwise ``lost`` stands and
        nothing of this writer's is published: for good (``LeaseLostError``) when another
        writer held the lease, until the store answers again (``LockedError``) otherwise."""
        try:
            fresh = self._writer_lock.retake()
        except LockedError as e:  # another writer held it (or a lock that cannot be retaken)
            raise LeaseLostError(f"{lost}; {e}") from None
        except LakeFSError as e:  # the store still fails: the next commit tries again
            raise LockedError(f"{lost}; {e}: this writer's uncommitted changes cannot be"
                              " published yet") from None
        try:
            seq, _ = parse_head(self.storage.get(keys.HEAD), keys.HEAD)
            recreated = self.storage.get(keys.MARKER) != self._marker
        except BaseException:
            fresh.release()
            raise
        if seq != committed or recreated:
            fresh.release()
            what = ("the dataset was created anew" if recreated else
                    f"HEAD is at commit {seq}, this writer's last was {committed}")
            raise LeaseLostError(f"{lost}; another writer committed meanwhile ({what})") from None
        self._writer_lock = fresh
        log.warning("%s: the writer lease was lost (%s) and is taken again: no other writer"
                    " held it meanwhile", self.storage.where, lost)

    def _stop_writing(self, why: str) -> LeaseLoss:
        """Another writer took the lease over for good (with the lock): nothing this writer
        changed since its last commit can ever be committed. It becomes a reader, says so
        in one ERROR line, and every later write is refused (``LeaseLostError``, EROFS)
        instead of being accepted and lost at the next commit, whose error would repeat at
        every periodic commit. Its state is not a commit any more: :meth:`refresh` (run by
        :meth:`_announce_lease_lost`, outside the lock) loads the latest one."""
        at, ours = self._commit_at
        loss = LeaseLoss(self.storage.where, why, time.time(), self._manifest.seq, at, ours)
        self.lease_lost = loss
        self._lost_changes, self._dirty = self._dirty, False
        lock, self._writer_lock = self._writer_lock, None
        if lock is not None:
            lock.abandon()  # (puts nothing: the lease object is the other writer's now)
        self._read_only = self._stale = True
        self._obsolete = []  # what this writer made garbage is compact's now
        with self._garbage_lock:
            self._graveyard = []
        log.error("%s", loss.message())
        return loss

    def commit(self, message: str | None = None) -> None:
        """Alias of :meth:`flush` (Deep Lake's name). lakefs keeps no versions: ``message``
        is not stored, and there is no commit to check out later."""
        self.flush()

    def _commit_rows(self, n: int) -> None:
        """Put the rows from the last commit's up to ``n`` as a row segment."""
        rows = self._rows
        if rows.committed >= n:
            return
        segs = [*rows.segments, {"id": self._ids.take(), "start": rows.committed, "count": n - rows.committed}]
        k = segments.merge_start([int(s["count"]) for s in segs])
        merged = segs[k:-1]
        new = {"id": segs[-1]["id"], "start": segs[k]["start"], "count": n - segs[k]["start"]}
        self.storage.put(keys.rows_segment(new["id"]), rows.encode_range(new["start"], n))
        rows.segments = [*segs[:k], new]
        rows.committed = n
        self._obsolete += [keys.rows_segment(int(s["id"])) for s in merged]

    def _take_garbage(self, seq: int) -> tuple[list[str], list[str]]:
        """The keys and key prefixes commit ``seq`` left unreachable (with the lock)."""
        doomed = list(self._obsolete)
        for t in self._tensors.values():
            doomed += t._engine.obsolete
            t._engine.obsolete = []
        self._obsolete = []
        if seq > KEEP_MANIFESTS:
            doomed.append(keys.manifest(seq - KEEP_MANIFESTS))
        prefixes, self._dropped_prefixes = self._dropped_prefixes, []
        return doomed, prefixes

    def _delete_garbage(self, doomed: list[str], prefixes: list[str], *, all_now: bool = False) -> None:
        """Delete what a commit left unreachable, ``GARBAGE_GRACE`` seconds after it (or
        everything kept so far with ``all_now``: close, compact). A reader loading the
        previous commit, which takes a while on a big dataset, still finds its segments
        and manifest: deleted at once, a writer committing often made readers fail their
        open (found by review). A crash leaves the kept garbage for ``compact``."""
        now = time.monotonic()
        with self._garbage_lock:
            if doomed or prefixes:
                self._graveyard.append((now, doomed, prefixes))
            if all_now:
                due, self._graveyard = self._graveyard, []
            else:
                due = [g for g in self._graveyard if now - g[0] >= GARBAGE_GRACE]
                self._graveyard = [g for g in self._graveyard if now - g[0] < GARBAGE_GRACE]
        for _, doomed_keys, doomed_prefixes in due:
            for key in doomed_keys:
                try:
                    self.storage.delete(key)
                except Exception as e:  # garbage stays garbage; compact collects it later
                    log.warning("could not delete obsolete object %s: %s", key, e)
            for prefix in doomed_prefixes:
                try:
                    for key in list(self.storage.list(prefix)):
                        if keys.is_dataset_key(key):
                            self.storage.delete(key)
                except Exception as e:
                    log.warning("could not delete objects under %s: %s", prefix, e)

    # --- tensors and groups ------------------------------------------------------------

    @property
    def tensors(self) -> dict[str, Tensor]:
        """Every tensor by full name (``train/images``)."""
        with self._lock:
            return dict(self._tensors)

    @property
    def path(self) -> str:
        """Where the dataset is: its folder, or its object-store URL (Deep Lake's name)."""
        return self.storage.where

    def summary(self) -> None:
        """Print the tensors' htype, shape, dtype and compression, as Deep Lake's
        ``ds.summary()`` does (a None dimension differs between samples)."""
        head = ("tensor", "htype", "shape", "dtype", "compression")
        rows = [head, tuple("-" * len(h) for h in head)]
        for name, t in self.tensors.items():
            comp = t.sample_compression or (f"{t.chunk_compression} (chunk)" if t.chunk_compression else "None")
            dtype = SUMMARY_DTYPES.get(t.htype, str(t.dtype))  # (text and json keep no numpy dtype)
            rows.append((name, t.htype, str(t.shape), dtype, comp))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        print(f"Dataset(path={self.path!r}, tensors={list(self.tensors)})\n")
        for r in rows:
            print(" " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())

    @property
    def groups(self) -> list[str]:
        with self._lock:
            return list(self._manifest.groups)

    @property
    def pending_dirs(self) -> list[str]:
        with self._lock:
            return list(self._manifest.pending_dirs)

    def _name_taken(self, name: str) -> bool:
        m = self._manifest
        return name in self._tensors or name in m.groups or name in m.pending_dirs or name in m.files

    # --- directory metadata (the mount's directories: root, groups, tensors, pending) ---

    def _is_dir(self, path: str) -> bool:
        m = self._manifest
        return path == "" or path in self._tensors or path in m.groups or path in m.pending_dirs

    def dir_meta(self, path: str) -> tuple[int, int] | None:
        """``(mode, mtime_ns)`` stored for the directory ``path`` (``""`` is the root), or
        None when none was ever set: :meth:`dir_attr` says what is shown then."""
        return self._manifest.dirs.get(path)

    def dir_attr(self, path: str) -> tuple[int, int]:
        """``(mode, mtime_ns)`` the mount and ``lakefs ls`` show for directory ``path``:
        its stored ones, else ``DIR_MODE`` and the time the dataset was created (its
        marker's). A directory has none when it was made before tensors and groups got
        one at creation (or before format v2), or by a lakefs that set none: the mount
        showed the time of mounting (another at every mount) and ``lakefs ls`` 1970."""
        meta = self._manifest.dirs.get(path)
        return meta if meta is not None else (DIR_MODE, self._created_time_ns())

    def _created_time_ns(self) -> int:
        """When the dataset's marker was written, read once (0 where the storage keeps no
        times: memory); a failed read is not kept, and says 0 this time."""
        if self._created_ns is None:
            try:
                self._created_ns = self.storage.mtime_ns(keys.MARKER) or 0
            except LakeFSError as e:
                log.warning("cannot read when the dataset was created: %s", e)
                return 0
        return self._created_ns

    def set_dir_meta(self, path: str, mode: int, mtime_ns: int) -> None:
        """Store the mode and mtime of directory ``path`` (committed with the next commit;
        they follow the directory when a tensor is renamed and go when it is deleted).
        ``mode``: its permission bits are kept (a ``st_mode`` with the directory's type
        bits, as ``os.stat`` gives, was stored whole, and the next open refused the
        manifest as malformed)."""
        with self._lock:
            self._check_writable()
            if not self._is_dir(path):
                raise TensorNotFoundError(f"no directory {path!r}")
            self._manifest.dirs[path] = (int(mode) & 0o7777, int(mtime_ns))
            self._touch()  # (views keyed on generation, e.g. a mount's listings, show it)

    def touch_dir(self, path: str, mtime_ns: int) -> None:
        """Set the mtime of directory ``path``, keeping its mode: the mount's hot path (an
        entry created in it), for a directory the caller knows exists in a writable
        dataset (the commit drops an entry whose directory is gone)."""
        with self._lock:
            dirs = self._manifest.dirs
            old = dirs.get(path)
            dirs[path] = (DIR_MODE if old is None else old[0], mtime_ns)
            self._dirty = True

    def _drop_dirs(self, name: str) -> None:
        """Forget the metadata of directory ``name`` and of everything under it."""
        dirs = self._manifest.dirs
        dirs.pop(name, None)
        prefix = name + "/"
        for d in [d for d in dirs if d.startswith(prefix)]:
            del dirs[d]

    def _prune_dirs(self) -> None:
        """Drop entries of directories that no longer exist (a commit never writes one)."""
        m = self._manifest
        live = {"", *self._tensors, *m.groups, *m.pending_dirs}
        if not live.issuperset(m.dirs):
            m.dirs = {d: v for d, v in m.dirs.items() if d in live}

    def _ensure_parents(self, name: str, *, made_too: bool = False) -> None:
        """Make the groups above ``name`` that are missing; ``made_too``: ``name`` is a new
        directory as well (they all get one time, :meth:`_dirs_made`)."""
        parts = name.split("/")
        made = []
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self._tensors or parent in self._manifest.files:
                raise TensorExistsError(f"{parent!r} is a tensor or file, not a group")
            if parent in self._manifest.pending_dirs:
                self._manifest.pending_dirs.remove(parent)  # (a directory already: keeps its time)
            elif parent not in self._manifest.groups:
                made.append(parent)
            if parent not in self._manifest.groups:
                self._manifest.groups.append(parent)
        self._dirs_made([*made, name] if made_too else made)

    def _dirs_made(self, made: list[str]) -> None:
        """The new directories ``made`` (parents first) get mkdir's mode (``DIR_MODE``)
        and the time now, and so does the directory that holds the first of them, as
        ``mkdir -p`` gives them on a disk. A tensor or group made by the API or
        ``lakefs ingest`` had none: ``lakefs ls`` showed 1970, a mount its own time."""
        if not made:
            return
        now = time.time_ns()
        dirs = self._manifest.dirs
        for d in made:
            dirs[d] = (DIR_MODE, now)
        parent = made[0].rpartition("/")[0]
        old = dirs.get(parent)
        dirs[parent] = (DIR_MODE if old is None else old[0], now)

    def create_tensor(self, name: str, htype: str = "generic", dtype: str | None = None,
                      sample_compression: str | None = None, chunk_compression: str | None = None,
                      class_names: list[str] | None = None, chunk_size: int | None = None,
                      exist_ok: bool = False, **info: Any) -> Tensor:
        """Create a tensor (Deep Lake's signature). Settings are fixed from then on; other
        keyword arguments are kept as the tensor's ``info``, except one that looks like a
        misspelt setting (``sample_compresion``) or is a Deep Lake setting lakefs lacks
        (``compression``, ``is_link``: see compat.py), which is refused rather than ignored."""
        name = _not_an_attribute(check_path(name), "tensor")
        for extra in info:
            if extra in TENSOR_ARGUMENT_HINTS:
                raise ConfigError(f"create_tensor got an unknown argument {extra!r}: {TENSOR_ARGUMENT_HINTS[extra]}")
            near = difflib.get_close_matches(extra, TENSOR_ARGUMENTS, n=1, cutoff=0.8)
            if near:
                raise ConfigError(f"create_tensor got an unknown argument {extra!r}; did you mean {near[0]!r}?")
        settings = {"htype": htype, "dtype": dtype, "sample_compression": sample_compression,
                    "chunk_compression": chunk_compression, "class_names": class_names, "chunk_size": chunk_size}
        return self._create_tensor(name, settings, info, exist_ok=exist_ok)

    def create_tensor_for_first_file(self, name: str, settings: dict[str, Any]) -> Tensor:
        """The tensor the mount makes of a pending directory at its first file, with
        ``settings`` (create_tensor's) from the config or that file's extension, and the
        one ``lakefs ingest`` makes of a folder (from its files' extensions or options). An
        ``image`` tensor given no dtype takes it from that first file, as a ``generic``
        one does: the htype's uint8 when that holds the file, else the file's own
        (:meth:`SampleFormat._adopt_dtype`). A folder of 16-bit PNG depth maps copied in
        then makes a uint16 tensor, where Deep Lake's uint8 (create_tensor's) would
        refuse every one of its files."""
        return self._create_tensor(check_path(name), settings, {}, dtype_from_file=True)

    def _create_tensor(self, name: str, settings: dict[str, Any], info: dict[str, Any], *,
                       exist_ok: bool = False, dtype_from_file: bool = False) -> Tensor:
        with self._lock:
            self._check_writable()
            if name in self._tensors and exist_ok:
                return self._tensors[name]
            if self._name_taken(name) and name not in self._manifest.pending_dirs:
                raise TensorExistsError(f"{name!r} already exists")
            meta = self._resolve_meta(settings, info, dtype_from_file=dtype_from_file)
            pending = name in self._manifest.pending_dirs  # (mkdir gave it its mode and time)
            self._ensure_parents(name, made_too=not pending)
            if pending:
                self._manifest.pending_dirs.remove(name)
            tensor = self._make_tensor(name, meta)
            self._tensors[name] = tensor
            self._manifest.tensors[name] = meta
            self._touch()
            log.info("created tensor %s (htype=%s, sample_compression=%s, chunk_compression=%s)",
                     name, meta.htype, meta.sample_compression, meta.chunk_compression)
            return tensor

    def _resolve_meta(self, settings: dict[str, Any], info: dict, *, dtype_from_file: bool = False) -> TensorMeta:
        resolved = resolve_tensor_settings(**settings)
        if dtype_from_file and settings.get("dtype") is None and resolved["htype"] == "image":
            resolved["dtype"] = None  # set by the first sample stored
        info = json_info(info)
        return TensorMeta(tid=f"t{self._ids.take()}", info=info, **resolved)

    def create_group(self, name: str, exist_ok: bool = False) -> Group:
        name = _not_an_attribute(check_path(name, "group name"), "group")
        with self._lock:
            self._check_writable()
            if name in self._manifest.groups:
                if exist_ok:
                    return Group(self, name)
                raise TensorExistsError(f"group {name!r} already exists")
            if self._name_taken(name) and name not in self._manifest.pending_dirs:
                raise TensorExistsError(f"{name!r} already exists")
            self._ensure_parents(name + "/x")
            self._touch()
            return Group(self, name)

    def make_pending_dir(self, name: str) -> None:
        """A directory made by ``mkdir`` that is not yet a tensor or a group."""
        name = check_path(name, "directory name")
        with self._lock:
            self._check_writable()
            if self._name_taken(name):
                raise TensorExistsError(f"{name!r} already exists")
            self._ensure_parents(name, made_too=True)  # (the mount then sets the mode mkdir was given)
            self._manifest.pending_dirs.append(name)
            self._touch()

    def make_plain_dir(self, name: str) -> None:
        """A plain directory (``mkdir .git``): a hidden name, or any name inside one. It
        holds plain files and plain directories, never becomes a tensor or group, and
        leaves its parent's kind alone (a pending directory holding ``.git`` still becomes
        a tensor at its first sample), so it may be in any directory, a tensor too. Kept
        in ``pending_dirs``: no tensor or group name has a hidden part (FORMAT.md §4)."""
        name = check_plain_path(name)
        with self._lock:
            self._check_writable()
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            if not self._is_dir(parent):
                raise TensorNotFoundError(f"no directory {parent!r}")
            if self._name_taken(name):
                raise TensorExistsError(f"{name!r} already exists")
            self._manifest.pending_dirs.append(name)
            self._dirs_made([name])
            self._touch()

    def remove_plain_dir(self, name: str) -> None:
        """Remove the empty plain directory ``name``."""
        with self._lock:
            self._check_writable()
            m = self._manifest
            if not is_plain_path(name) or name not in m.pending_dirs:
                raise TensorNotFoundError(f"no plain directory {name!r}")
            if self._holds_plain(name):
                raise DirectoryNotEmptyError(f"{name!r} is not empty")
            m.pending_dirs.remove(name)
            m.dirs.pop(name, None)
            self._touch()

    def _holds_plain(self, name: str) -> bool:
        """Whether plain files or directories lie under directory ``name``."""
        prefix = name + "/"
        m = self._manifest
        return any(p.startswith(prefix) for p in m.files) or any(d.startswith(prefix) for d in m.pending_dirs)

    def rename_pending_dir(self, old: str, new: str) -> None:
        """Rename the pending or plain directory ``old`` with what it holds (plain files
        and plain directories, nothing else). To a hidden name it is a plain directory
        from then on; a plain one keeps a hidden name (it would otherwise become a
        pending directory holding plain directories under ordinary names)."""
        with self._lock:
            self._check_writable()
            m = self._manifest
            if old not in m.pending_dirs:
                raise TensorNotFoundError(f"no directory {old!r}")
            plain = is_plain_path(new)
            if not plain and is_plain_path(old):
                raise InvalidNameError(f"{old!r} is a plain directory: {new!r} is not a hidden name")
            new = check_plain_path(new) if plain else check_path(new, "directory name")
            if new == old or new.startswith(old + "/"):
                raise InvalidNameError(f"cannot move {old!r} into itself")
            if self._name_taken(new):
                raise TensorExistsError(f"{new!r} already exists")
            parent = new.rsplit("/", 1)[0] if "/" in new else ""
            if plain and not self._is_dir(parent):
                raise TensorNotFoundError(f"no directory {parent!r}")
            if not plain:
                self._ensure_parents(new)  # (a pending parent becomes a group, as at mkdir)
            m.pending_dirs[m.pending_dirs.index(old)] = new
            self._move_under(old, new)
            self._touch()

    def _move_under(self, old: str, new: str) -> None:
        """Move the plain files and plain directories under directory ``old`` to ``new``,
        and the modes and times of ``old`` and of them."""
        m = self._manifest
        prefix, cut = old + "/", len(old)
        m.pending_dirs = [new + d[cut:] if d.startswith(prefix) else d for d in m.pending_dirs]
        for path in [p for p in m.files if p.startswith(prefix)]:
            replaced = m.files.get(new + path[cut:])
            if replaced is not None:
                self._obsolete.append(keys.staged_file(replaced.file_id))
            m.files[new + path[cut:]] = m.files.pop(path)
        for d in [d for d in m.dirs if d == old or d.startswith(prefix)]:
            m.dirs[new + d[cut:]] = m.dirs.pop(d)

    def delete_tensor(self, name: str) -> None:
        """Delete a tensor with what the mount keeps in it: its plain files and plain
        directories (a notebook's ``.ipynb_checkpoints``) go too, never left unreachable."""
        with self._lock:
            self._check_writable()
            if check_path(name) in self._manifest.groups:  # (it said "no tensor 'train'")
                raise TensorNotFoundError(f"{name!r} is a group, not a tensor: delete_group({name!r}, "
                                          "recursive=True) deletes it and what it holds")
            tensor = self._drop_tensor(name)
            m, prefix = self._manifest, tensor.name + "/"
            for path in [p for p in m.files if p.startswith(prefix)]:
                self.delete_file(path)
            m.pending_dirs = [d for d in m.pending_dirs if not d.startswith(prefix)]
            self._drop_dirs(tensor.name)

    def unmake_tensor(self, name: str) -> None:
        """Make the empty tensor ``name`` a pending directory again (the mount's undo of
        a first file that was refused): its mode and time, and the plain files and
        directories in it, stay; the next file decides again."""
        with self._lock:
            self._check_writable()
            tensor = self._get_tensor(name)
            if tensor.num_samples:
                raise TensorExistsError(f"tensor {name!r} holds samples")
            self._drop_tensor(name)
            self._manifest.pending_dirs.append(tensor.name)

    def regroup_tensor(self, name: str) -> int:
        """Make the tensor ``name`` a group that keeps each of its samples as a plain file
        of the same name, bytes, time and mode (the mount's answer to a subdirectory made
        in a tensor it made of a first file). A folder holding files and folders is then a
        group of plain files, as ``rsync``, which makes folders first, always made it:
        ``tar -x`` of ``train/metadata.csv`` before ``train/images/`` ends the same.
        Returns how many samples became files. Each is read whole: the caller bounds the
        tensor's size and decides which tensors may (lakefs.fs.tree.DatasetFS._regroup)."""
        with self._lock:
            self._check_writable()
            tensor = self._get_tensor(name)
            staged: list[tuple[str, int, Sample]] = []
            try:
                for sample in tensor.iter_samples():
                    data = sample.file_bytes()
                    staged.append((f"{tensor.name}/{sample.filename}", self.stage_file(data, len(data)), sample))
            except BaseException:
                for _, file_id, _ in staged:
                    self.drop_staged(file_id)
                raise
            self._drop_tensor(tensor.name)
            self._manifest.groups.append(tensor.name)  # (its parent is the root or a group)
            for path, file_id, sample in staged:
                self.publish_file(path, file_id, sample.size, mtime_ns=sample.mtime_ns, mode=sample.mode)
            log.warning("%s: a tensor given a subdirectory is a group now; its %d sample%s kept as plain files",
                        tensor.name, len(staged), " is" if len(staged) == 1 else "s are")
            return len(staged)

    def _drop_tensor(self, name: str) -> Tensor:
        tensor = self._get_tensor(name)
        del self._tensors[tensor.name]
        del self._manifest.tensors[tensor.name]
        self._dropped_prefixes.append(keys.tensor_prefix(tensor.meta.tid))
        tensor._retire()  # (a handle kept would write rows whose samples go with it)
        self._touch()
        return tensor

    def delete_group(self, name: str, recursive: bool = False) -> None:
        name = check_path(name, "group name")
        with self._lock:
            self._check_writable()
            m = self._manifest
            if name in m.pending_dirs:
                if self._holds_plain(name) and not recursive:
                    raise DirectoryNotEmptyError(f"directory {name!r} is not empty: delete it and what it holds "
                                                 f"with delete_group({name!r}, recursive=True)")
                for path in [p for p in m.files if p.startswith(name + "/")]:
                    self.delete_file(path)
                m.pending_dirs = [d for d in m.pending_dirs if d != name and not d.startswith(name + "/")]
                self._drop_dirs(name)
                self._touch()
                return
            if name not in m.groups:
                raise TensorNotFoundError(f"no group {name!r}")
            inside = [t for t in self._tensors if t.startswith(name + "/")]
            inside += [g for g in m.groups + m.pending_dirs + list(m.files) if g.startswith(name + "/")]
            if inside and not recursive:  # (ENOTEMPTY, as rmdir's; it was "exists")
                raise DirectoryNotEmptyError(f"group {name!r} is not empty: delete it and what it holds "
                                             f"with delete_group({name!r}, recursive=True)")
            for t in [t for t in self._tensors if t.startswith(name + "/")]:
                self.delete_tensor(t)
            m.groups = [g for g in m.groups if g != name and not g.startswith(name + "/")]
            m.pending_dirs = [g for g in m.pending_dirs if not g.startswith(name + "/")]
            self._drop_dirs(name)
            for path in [p for p in m.files if p.startswith(name + "/")]:
                self.delete_file(path)
            self._touch()

    def rename_tensor(self, old: str, new: str) -> Tensor:
        new = check_path(new)
        with self._lock:
            self._check_writable()
            tensor = self._get_tensor(old)
            if self._name_taken(new):
                raise TensorExistsError(f"{new!r} already exists")
            self._ensure_parents(new)
            del self._tensors[tensor.name]
            meta = self._manifest.tensors.pop(tensor.name)
            # Its mode and time, and the plain files and directories in it, follow it.
            self._move_under(tensor.name, new)
            tensor.name = new
            self._tensors[new] = tensor
            self._manifest.tensors[new] = meta
            self._touch()
            return tensor

    def rename_group(self, old: str, new: str) -> Group:
        """Rename the group ``old`` in place, with everything under it: tensors, groups,
        pending and plain directories, plain files, and their modes and times. No sample
        moves (tensors are stored by id), so it costs a manifest change, however big."""
        old, new = check_path(old, "group name"), check_path(new, "group name")
        with self._lock:
            self._check_writable()
            m = self._manifest
            if old not in m.groups:
                raise TensorNotFoundError(f"no group {old!r}")
            if new == old or new.startswith(old + "/"):
                raise InvalidNameError(f"cannot move group {old!r} into itself")
            if self._name_taken(new):
                raise TensorExistsError(f"{new!r} already exists")
            self._ensure_parents(new)
            prefix, cut = old + "/", len(old)

            def moved(name: str) -> str:
                return new + name[cut:] if name == old or name.startswith(prefix) else name

            for tensor in self._tensors.values():
                tensor.name = moved(tensor.name)
            tensors = {moved(k): t for k, t in self._tensors.items()}
            self._tensors.clear()  # (in place: in listing order, the same dict for every view)
            self._tensors.update(tensors)
            m.tensors = {moved(k): meta for k, meta in m.tensors.items()}
            m.groups = _parents_first([moved(g) for g in m.groups])  # (a new parent was appended last)
            self._move_under(old, new)  # pending and plain directories, plain files, modes and times
            self._touch()
            return Group(self, new)

    def _get_tensor(self, name: str) -> Tensor:
        try:
            return self._tensors[check_path(name)]
        except KeyError:
            raise TensorNotFoundError(f"no tensor {name!r}") from None

    # --- rows --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def keys(self) -> list[str]:
        """Row keys in row order."""
        with self._lock:
            return self._rows.keys()

    def row_of(self, key: str) -> int | None:
        with self._lock:
            return self._rows.find(key)

    def _auto_key(self, row: int) -> str:
        key = f"{row:08d}"
        n = 1
        while self._rows.find(key) is not None:
            key = f"{row:08d}-{n}"
            n += 1
        return key

    def _ensure_rows(self, n: int) -> None:
        if len(self._rows) >= n:
            return
        while len(self._rows) < n:
            self._rows.append(self._auto_key(len(self._rows)))
        self._touch()

    def _row_for_key(self, key: str, *, create: bool) -> int:
        row = self._rows.find(key)
        if row is None:
            if not create:
                raise SampleNotFoundError(f"no row with key {key!r}")
            row = self._rows.append(key)
            self._touch()
        return row

    def append(self, sample: dict[str, Any], key: str | None = None) -> Row:
        """Add a row: ``ds.append({"images": ..., "labels": ...}, key="cat001")``.

        Every value is validated before anything is stored, so a bad value stores nothing.
        """
        with self._lock:
            self._check_writable()
            if not isinstance(sample, dict):
                raise InvalidSampleError("ds.append takes a dict of tensor name → value")
            tensors = [self._get_tensor(name) for name in sample]
            if key is not None:
                check_key(key)
                if self._rows.find(key) is not None:
                    raise KeyExistsError(f"row key {key!r} already exists")
            with contextlib.ExitStack() as undo:  # a row not stored (a full disk) adopts no dtype
                for t in tensors:
                    undo.enter_context(t._format.rollback())
                rows = self._encode_rows(tensors, [list(sample.values())], name_items=False)
                return Row(self, self._store_rows(rows, key))

    def _take_back(self, rows_before: int, cells: list[tuple[Tensor, int]]) -> None:
        """Undo a write that failed on storage after its values were checked (a full
        disk): empty again the ``cells`` (tensor, row) it filled, all of them empty
        before, newest first, and remove the rows it added past ``rows_before``. No empty
        or partial row may remain to be committed."""
        for tensor, row in reversed(cells):
            index = tensor._engine.index
            if row == len(index) - 1:
                index.forget_last(row)
            else:
                index.clear(row)
        while len(self._rows) > rows_before:
            self._rows.pop_last()
        self._touch()

    def extend(self, samples: dict[str, list[Any]]) -> None:
        """Add a row per item: ``ds.extend({"images": [...], "labels": [...]})``. All rows or
        none: the lists must have one length, every value is validated before any row is
        stored (a refused value is named by its tensor and position), and a storage
        failure midway (a full disk) takes back the rows stored before it."""
        with self._lock:
            self._check_writable()
            if not isinstance(samples, dict):
                raise InvalidSampleError("ds.extend takes a dict of tensor name → list of values")
            tensors = [self._get_tensor(name) for name in samples]
            columns = []
            for name, values in samples.items():
                if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
                    raise InvalidSampleError(f"ds.extend: the values of {name!r} must be a list, "
                                             f"not {type(values).__name__}")
                columns.append(list(values))
            lengths = {len(c) for c in columns}
            if len(lengths) > 1:
                given = ", ".join(f"{n!r}: {len(c)}" for n, c in zip(samples, columns, strict=True))
                raise InvalidSampleError(f"ds.extend needs lists of one length, got {given}")
            with contextlib.ExitStack() as undo:  # rows not stored (a full disk) adopt no dtype
                for t in tensors:
                    undo.enter_context(t._format.rollback())
                self._store_rows(self._encode_rows(tensors, list(zip(*columns, strict=True)), name_items=True))

    def _encode_rows(self, tensors: list[Tensor], rows: list[Sequence[Any]], *,
                     name_items: bool) -> list[list[tuple[Tensor, Encoded, Any]]]:
        """Every value of ``rows`` (one per tensor) validated and encoded before anything
        is stored; a refused value undoes what the others changed in their tensors'
        settings (a dtype adopted, class names added)."""
        out = []
        with contextlib.ExitStack() as undo:
            for t in tensors:
                undo.enter_context(t._format.rollback())
            for i, values in enumerate(rows):
                row = []
                for t, value in zip(tensors, values, strict=True):
                    try:
                        row.append((t, t._format.from_value(value), value))
                    except LakeFSError as e:
                        if not name_items:
                            raise
                        raise item_error(e, f"tensor {t.name!r} item {i}") from e
                out.append(row)
        return out

    def _store_rows(self, rows: list[list[tuple[Tensor, Encoded, Any]]], key: str | None = None) -> int:
        """Store the encoded cells of each of ``rows`` as a new row (the first under
        ``key``, the others under automatic keys), all or none: a failure (a full disk)
        takes back every row and cell already stored. Returns the first new row."""
        first = len(self._rows)
        written: list[tuple[Tensor, int]] = []
        try:
            for row, cells in enumerate(rows, first):
                self._rows.append(key if key is not None and row == first else self._auto_key(row))
                for tensor, enc, value in cells:
                    tensor._write(row, enc, value)
                    written.append((tensor, row))
        except BaseException:
            self._take_back(first, written)
            raise
        if rows:
            self._touch()
        return first

    def __getitem__(self, item: int | str | slice | Sequence[int]) -> Any:
        if isinstance(item, str):
            with self._lock:
                name = item.strip("/")
                if name in self._tensors:
                    return self._tensors[name]
                if name in self._manifest.groups:
                    return Group(self, name)
                row = self._rows.find(item)
                if row is not None:
                    return Row(self, row)
            raise TensorNotFoundError(f"no tensor, group or row key {item!r}")
        if isinstance(item, tuple):  # (ds[1, 0] read rows 1 and 0)
            item = untuple(item, "ds", rows_only=True)
        if isinstance(item, slice):
            return RowList(self, range(*item.indices(len(self))))
        if isinstance(item, (list, tuple, np.ndarray)):  # rows by number, or a boolean mask
            n = len(self)
            return RowList(self, list_positions(item, n, f"a dataset of {n} rows"))
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            n = len(self)
            return Row(self, position(item, n, f"a dataset of {n} rows"))
        raise TypeError(f"dataset indices are ints, slices, names or keys, not {type(item).__name__}")

    def __getattr__(self, name: str) -> Any:
        hint = DATASET_ATTRIBUTE_HINTS.get(name)  # (Deep Lake's ds.pytorch: not "no tensor 'pytorch'")
        missing = f"ds.{name} is Deep Lake's: {hint}" if hint else f"dataset has no tensor or group {name!r}"
        return item_as_attribute(self, name, missing)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):  # (``ds.labels = x`` is refused: see views.refuse_hiding_an_item)
            refuse_hiding_an_item(self, name, self if "_tensors" in vars(self) else None, "", "ds")
        object.__setattr__(self, name, value)

    def __contains__(self, item: object) -> bool:
        """``"images" in ds``: a tensor or group of that name, as in Deep Lake (or a row
        key, as ``ds[item]`` finds one). Without it, Python iterated every row and said
        False."""
        if not isinstance(item, str):
            return False
        with self._lock:
            name = item.strip("/")
            return name in self._tensors or name in self._manifest.groups or self._rows.find(item) is not None

    def __iter__(self) -> Iterator[Row]:
        for i in range(len(self)):
            yield Row(self, i)

    def __repr__(self) -> str:
        return f"Dataset({self.storage!r}, rows={len(self)}, tensors={list(self._tensors)})"

    # --- staging files -----------------------------------------------------------------

    @property
    def files(self) -> dict[str, StagedFile]:
        """Plain files kept in the dataset (not samples), by path."""
        with self._lock:
            return dict(self._manifest.files)

    def write_file(self, path: str, data: bytes | BinaryIO, *, size: int | None = None,
                   mtime_ns: int | None = None, mode: int = 0o644) -> None:
        """Keep a plain file at ``path`` (staging area); data is stored at once, without
        the dataset lock held (:meth:`stage_file`).

        ``data`` may be a binary file object to read ``size`` bytes from (its position
        on): it is copied in pieces, so a big file is never held in memory."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            size = len(data)
        elif size is None:
            raise ValueError("write_file of a file object needs its size")
        with self._lock:
            self._check_file_path(path)  # (a refused path: nothing is stored)
        file_id = self.stage_file(data, size)
        self.publish_file(path, file_id, size, mtime_ns=mtime_ns, mode=mode)  # (checks the path again)

    def stage_file(self, data: bytes | BinaryIO, size: int) -> int:
        """Store a plain file's bytes under a new id, not yet under any path
        (:meth:`publish_file` names it, :meth:`drop_staged` gives it up). The dataset lock
        is taken only to take the id and to record the outcome: called without it (as
        :meth:`write_file` and the mount do), the upload does not hold up other threads
        (the mount's file operations)."""
        with self._lock:
            self._check_writable()
            file_id = self._ids.take()
            self._staging[file_id] = None  # compact must not take it for garbage meanwhile
        # Durable at the next commit, which syncs before it publishes (as sealed chunks
        # are): an fsync of each staged file cost most of an rsync -a into the mount.
        # Its crc32 is taken as it is stored (a file object's while it is copied).
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                crc = crc32(data)
                self.storage.put(keys.staged_file(file_id), data, sync=False)
            else:
                reader = ChecksumReader(data, size)
                self.storage.put_from(keys.staged_file(file_id), reader, size, sync=False)
                if reader.left:  # (a backend that copied it some other way: its crc32 is not known)
                    raise ValueError(f"stage_file: {reader.left} of {size} bytes were not read through the checksum")
                crc = reader.crc
        except BaseException:
            with self._lock:
                self._staging.pop(file_id, None)
            raise
        with self._lock:
            self._staging[file_id] = crc
        return file_id

    def publish_file(self, path: str, file_id: int, size: int, *, mtime_ns: int | None = None,
                     mode: int = 0o644) -> None:
        """Keep the staged bytes ``file_id`` (:meth:`stage_file`) as the plain file ``path``."""
        with self._lock:
            crc = self._staging.pop(file_id, None)
            try:
                self._check_file_path(path)
            except BaseException:
                self._obsolete.append(keys.staged_file(file_id))
                raise
            old = self._manifest.files.get(path)
            if old is not None:
                self._obsolete.append(keys.staged_file(old.file_id))
            self._manifest.files[path] = StagedFile(file_id, size, mtime_ns or time.time_ns(), mode, crc)
            self._touch()

    def drop_staged(self, file_id: int) -> None:
        """Give up staged bytes never published: deleted after the next commit."""
        with self._lock:
            self._staging.pop(file_id, None)
            self._obsolete.append(keys.staged_file(file_id))

    def _check_file_path(self, path: str) -> None:
        self._check_writable()
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent and parent not in self._tensors and parent not in self._manifest.groups \
                and parent not in self._manifest.pending_dirs:
            raise TensorNotFoundError(f"no directory {parent!r}")
        if path in self._tensors or path in self._manifest.groups or path in self._manifest.pending_dirs:
            raise TensorExistsError(f"{path!r} is a directory")

    def read_file(self, path: str) -> bytes:
        """The plain file at ``path``, checked against its crc32 (CorruptionError naming
        it if its stored bytes are damaged)."""
        try:
            return self.read_staged(self._staged_record(path))
        except CorruptionError as e:
            raise CorruptionError(f"{path}: {e}") from e

    def read_file_range(self, path: str, offset: int, size: int) -> bytes:
        """``size`` bytes of the plain file at ``path`` from ``offset`` (big files are
        read in pieces, never whole; a part is not checked, the whole file is)."""
        try:
            return self.read_staged(self._staged_record(path), offset, size)
        except CorruptionError as e:
            raise CorruptionError(f"{path}: {e}") from e

    def staged(self, path: str) -> StagedFile | None:
        """The record of the plain file at ``path`` (None if there is none): reading by
        record, an open file keeps its contents when the path is renamed or replaced
        (until a commit deletes the object it no longer names)."""
        with self._lock:
            return self._manifest.files.get(path)

    def _staged_record(self, path: str) -> StagedFile:
        f = self.staged(path)
        if f is None:
            raise SampleNotFoundError(f"no file {path!r}")
        return f

    def read_staged(self, f: StagedFile, offset: int = 0, size: int | None = None) -> bytes:
        """The bytes of the plain file ``f`` (:meth:`staged`), or ``size`` of them from
        ``offset``. A read of the whole file checks its crc32 (CorruptionError naming the
        object if it does not match); a part cannot be checked alone and is not (see
        :meth:`staged_reader`)."""
        key = keys.staged_file(f.file_id)
        if offset == 0 and (size is None or size >= f.size):
            data = self.storage.get(key)
            if len(data) != f.size:
                raise CorruptionError(f"{key}: {len(data)} bytes, expected {f.size}")
            if f.crc32 is not None and crc32(data) != f.crc32:
                raise CorruptionError(f"{key}: plain file checksum mismatch (its bytes are damaged)")
            return data
        size = max(0, min(f.size - offset if size is None else size, f.size - offset))
        data = self.storage.get_range(key, offset, size) if size else b""
        if len(data) != size:
            raise CorruptionError(f"{key} is shorter than its {f.size} bytes")
        return data

    def staged_reader(self, f: StagedFile) -> Callable[[int, int], bytes]:
        """``read(offset, size)`` of the big plain file ``f`` in pieces (the mount's reads
        of a file past ``spill_size``, a copy of it), checking its crc32 once the pieces
        read have covered it from the start: the read that completes it raises
        CorruptionError if it does not match, and so does every read after."""
        return _StagedReader(self, f)

    def delete_file(self, path: str) -> None:
        with self._lock:
            self._check_writable()
            f = self._manifest.files.pop(path, None)
            if f is None:
                raise SampleNotFoundError(f"no file {path!r}")
            self._obsolete.append(keys.staged_file(f.file_id))
            self._touch()

    def rename_file(self, old: str, new: str) -> None:
        with self._lock:
            self._check_writable()
            f = self._manifest.files.pop(old, None)
            if f is None:
                raise SampleNotFoundError(f"no file {old!r}")
            replaced = self._manifest.files.get(new)
            if replaced is not None:
                self._obsolete.append(keys.staged_file(replaced.file_id))
            self._manifest.files[new] = f
            self._touch()

    def set_file_meta(self, path: str, *, mtime_ns: int | None = None, mode: int | None = None) -> None:
        with self._lock:
            self._check_writable()
            f = self._manifest.files.get(path)
            if f is None:
                raise SampleNotFoundError(f"no file {path!r}")
            if mtime_ns is not None:
                f.mtime_ns = mtime_ns
            if mode is not None:
                f.mode = mode
            self._touch()

    # --- maintenance -------------------------------------------------------------------

    def compact(self) -> dict[str, int]:
        """Reclaim space left by updates and deletes (crash-safe; see maintenance.py)."""
        return maintenance.compact(self)

    def stats(self) -> dict[str, Any]:
        """Per-tensor sample counts and bytes, for ``lakefs info``."""
        return maintenance.stats(self)


def resolve_tensor_settings(htype: str = "generic", dtype: str | None = None, sample_compression: str | None = None,
                            chunk_compression: str | None = None, class_names: list[str] | None = None,
                            chunk_size: int | None = None) -> dict[str, Any]:
    """A new tensor's settings checked and filled in (``create_tensor``'s, and the config
    file's ``tensors:``, which are checked at start, not at the first copy)."""
    h = get_htype(htype)
    if sample_compression and chunk_compression:
        raise InvalidSampleError("a tensor has a sample_compression or a chunk_compression, not both")
    sc = sample_compression if sample_compression not in ("none", "") else None
    cc = chunk_compression if chunk_compression not in ("none", "") else None
    if sc is None and cc is None:
        sc = h.default_compression
    if sc is not None:
        codec = get_codec(sc)
        if codec.kind != "bytes" and codec.kind != h.media_kind:
            raise InvalidSampleError(f"htype {htype!r} cannot use sample_compression {sc!r} ({codec.kind})")
    if cc is not None and not get_codec(cc).chunk_capable:
        raise InvalidSampleError(f"{cc!r} cannot be a chunk_compression")
    if h.media_kind in ("audio", "video") and (sc is None or get_codec(sc).kind != h.media_kind):
        raise InvalidSampleError(f"htype {htype!r} needs an {h.media_kind} sample_compression")
    if dtype is not None:
        try:
            resolved = np.dtype(dtype)
        except TypeError as e:
            raise InvalidSampleError(f"unknown dtype {dtype!r}") from e
        if not supported_dtype(resolved):
            raise InvalidSampleError(f"dtype {resolved} is not supported; a tensor holds {SUPPORTED_DTYPES}")
        if h.name == "class_label" and resolved.kind not in "iu":
            raise InvalidSampleError(f"a class_label tensor holds class indices: dtype {resolved} is not "
                                     "an integer dtype (the default is uint32)")
        dtype = str(resolved)
    if class_names is not None:
        check_class_names(class_names)
    size = DEFAULT_CHUNK_SIZE if chunk_size is None else _chunk_size(chunk_size)  # (0 is too small, not "default")
    if size < MIN_CHUNK_SIZE:
        raise InvalidSampleError(f"chunk_size {size} is too small (at least {MIN_CHUNK_SIZE})")
    if size > MAX_CHUNK_SIZE:
        raise InvalidSampleError(f"chunk_size {size} is too large (at most {MAX_CHUNK_SIZE}, "
                                 f"{MAX_CHUNK_SIZE >> 20} MiB)")
    return {"htype": h.name, "dtype": dtype or h.dtype, "sample_compression": sc, "chunk_compression": cc,
            "chunk_size": size, "class_names": list(class_names or [])}


def _chunk_size(value: Any) -> int:
    """``chunk_size`` in bytes: a whole number, or a size as the config file takes it
    ("8MB", "512 KiB"); ``int("8MB")`` was a bare ValueError that named no argument."""
    if isinstance(value, str):
        try:
            return parse_size(value, "chunk_size")
        except ConfigError:
            pass
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and float(value).is_integer():
        return int(value)
    raise InvalidSampleError(f"chunk_size must be a number of bytes (8388608) or a size such as '8MB' or "
                             f"'512 KiB', not {value!r}")


def _parents_first(groups: list[str]) -> list[str]:
    """``groups`` with each parent listed before its children (FORMAT.md §4), else in
    their order: a parent that came later moves up to just before its first child."""
    present, out = set(groups), {}
    for g in groups:
        parts = g.split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name in present:
                out.setdefault(name, None)
    return list(out)


class _AutoCommit(threading.Thread):
    """Commits a dataset every ``interval`` seconds while it has changes (DESIGN §5:
    durable within a configurable interval). It holds the dataset weakly, so a dataset
    dropped without ``close()`` is not kept alive by its own timer."""

    def __init__(self, dataset: Dataset, interval: float) -> None:
        super().__init__(name="lakefs-autocommit", daemon=True)
        self._dataset = weakref.ref(dataset)
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            ds = self._dataset()
            if ds is None or ds._closed:
                return
            try:
                if ds.has_changes or ds._before_commit:
                    ds.flush()
                ds.check_lease()  # (idle too: a lease taken over turns the writer read-only)
            except LeaseLostError:
                return  # for good: logged once (Dataset._stop_writing); nothing to commit ever
            except Exception as e:  # the next commit retries; writers see errors on flush/fsync
                log.error("periodic commit failed: %s", e)
            if ds.lease_lost is not None:
                return  # (found by another thread's commit)
            del ds

    def stop(self) -> None:
        self._stop_event.set()
        if self is not threading.current_thread():
            self.join()


class _OpenWriters:
    """The writable datasets still open, for the commit at interpreter exit (DESIGN §5: a
    sample written through the API is durable without ``flush()`` too, as in Deep Lake).
    Weak: a dataset dropped mid-program is neither kept alive nor committed (``__del__``
    makes no storage call); ``close()`` takes a dataset out. Each is kept with the id of the
    process that opened it: a forked child that exits normally runs the parent's atexit
    hooks, and must not commit (nor release the lock of) the parent's writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._datasets: weakref.WeakKeyDictionary[Dataset, int] = weakref.WeakKeyDictionary()
        self.enabled = True  # (see set_commit_at_exit)

    def track(self, ds: Dataset) -> None:
        with self._lock:
            self._datasets[ds] = os.getpid()
            # Registered again at every open: atexit runs the last registered first, so this
            # runs before every hook registered until now, among them logging's shutdown and
            # weakref.finalize's, which closes s3fs's sessions (fsspec's event loop itself is
            # a daemon thread: alive during atexit).
            atexit.unregister(self.commit_all)
            atexit.register(self.commit_all)

    def forget(self, ds: Dataset) -> None:
        with self._lock:
            self._datasets.pop(ds, None)

    def commit_all(self) -> None:
        """Close each open writer that has uncommitted changes (the ``atexit`` hook)."""
        if not self.enabled:
            return
        with self._lock:
            pid = os.getpid()
            datasets = [ds for ds, opener in self._datasets.items() if opener == pid]
        for ds in datasets:
            if not ds._closed and not ds.read_only and (ds.has_changes or ds._before_commit):
                _close_at_exit(ds)


_open_writers = _OpenWriters()


def set_commit_at_exit(enabled: bool) -> None:
    """Whether writable datasets left open are committed at interpreter exit (the
    default, for scripts). A program that decides itself what it commits turns it off:
    the ``lakefs`` command, whose ``ingest`` reports which files a failure left out, and
    whose failed commands must not commit half their work on the way out."""
    _open_writers.enabled = enabled


def _exit_deadline(storage: Storage) -> float:
    """How long the commit at exit may take: the store's ``op_timeout`` (a wrapper's inner
    store's), at least :data:`EXIT_COMMIT_SECONDS`."""
    s: Storage | None = storage
    while s is not None:
        timeout = getattr(s, "op_timeout", None)
        if timeout:
            return max(float(timeout), EXIT_COMMIT_SECONDS)
        s = getattr(s, "inner", None)
    return EXIT_COMMIT_SECONDS


def _close_at_exit(ds: Dataset) -> None:
    """Commit and close ``ds`` as the interpreter exits, in one log line either way and
    never a traceback; bounded, since a store that does not answer must not hang the exit
    (the commit runs in a daemon thread, given up after :func:`_exit_deadline`)."""
    where, deadline = ds.storage.where, _exit_deadline(ds.storage)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            ds.close()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, name="lakefs-exit-commit", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # (an interpreter that starts no thread at exit: unbounded, but
        run()             # every call to an object store has its own deadline)
    try:
        thread.join(deadline)
    except RuntimeError:  # (never started)
        pass
    except KeyboardInterrupt:
        outcome.append(KeyboardInterrupt("interrupted"))
    if not outcome:
        log.error("%s was not closed, and committing it at exit did not finish within %g s: the changes "
                  "since its last commit are lost (call close() or flush() before the program ends)",
                  where, deadline)
    elif outcome[0] is None:
        log.warning("%s was not closed: committed at exit (call close() or flush(), or use `with`, to "
                    "commit when you choose)", where)
    else:
        log.error("%s was not closed, and committing it at exit failed: %s: the changes since its last "
                  "commit are lost", where, outcome[0])


class _StagedReader:
    """The checked reads of one plain file in pieces (:meth:`Dataset.staged_reader`).

    The checksum runs over the bytes in file order. Pieces that arrive ahead of it (the
    kernel's readahead answered by several threads) wait, up to ``AHEAD`` bytes; past
    that, or after a jump back and forth (random access, mmap), the file is read
    unchecked, as any ranged read (docs/FORMAT.md §4)."""

    AHEAD = 16 << 20

    def __init__(self, ds: Dataset, f: StagedFile) -> None:
        self._ds, self._f = ds, f
        self._lock = threading.Lock()
        self._done = 0  # bytes checksummed so far, from the start
        self._crc = 0
        self._ahead: dict[int, bytes] = {}  # offset → piece read past ``_done``
        self._ahead_bytes = 0
        self._checking = f.crc32 is not None
        self._damage: str | None = None

    def __call__(self, offset: int, size: int) -> bytes:
        if self._damage is not None:
            raise CorruptionError(self._damage)
        data = self._ds.read_staged(self._f, offset, size)
        if self._checking and data:
            with self._lock:
                self._take(offset, data)
        if self._damage is not None:
            raise CorruptionError(self._damage)
        return data

    def _take(self, offset: int, data: bytes) -> None:
        if offset > self._done:
            if self._ahead_bytes + len(data) > self.AHEAD:
                self._checking = False  # not read in order: unchecked, as a ranged read
                self._ahead.clear()
                return
            if offset not in self._ahead:
                self._ahead[offset] = data
                self._ahead_bytes += len(data)
            return
        self._add(offset, data)
        while self._ahead:
            ready = [o for o in self._ahead if o <= self._done]
            if not ready:
                break
            for o in ready:
                piece = self._ahead.pop(o)
                self._ahead_bytes -= len(piece)
                self._add(o, piece)
        if self._done >= self._f.size:
            self._checking = False
            if self._crc != self._f.crc32:
                self._damage = (f"{keys.staged_file(self._f.file_id)}: plain file checksum mismatch "
                                "(its bytes are damaged)")

    def _add(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end > self._done:
            self._crc = crc32(memoryview(data)[self._done - offset:], self._crc)
            self._done = end
