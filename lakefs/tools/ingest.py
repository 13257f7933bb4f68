"""``lakefs ingest``: a folder of files into a dataset, without mounting.

The main process is the dataset's only writer. Files whose content already matches the
tensor (a JPEG into a jpeg tensor, any JSON into a json tensor) are read ahead by a few
threads and written by it directly, at storage speed. Files that need a transcode (a PNG into a jpeg tensor) are
sent to a process pool: each worker reads the file and decodes and re-encodes it with
``lakefs.compression.prepare_encoded``; the main process writes the prepared bytes, for
which the tensor's own check is a cheap header probe. Results are written in source
order (a bounded window of work in flight), so row order does not depend on timing.

Resumable: a file whose row already holds a sample with the same mtime and size (or the
same mtime, for a file that had to be transcoded and so cannot keep its size) is
skipped. A commit every ``commit_seconds`` keeps a killed ingest's progress. The report
says how many written files the commits kept (``committed``): if the final commit fails
(``commit_error``), the files written after the last one are not kept. On a full disk a
commit keeps the files whose chunks were stored (``Dataset.flush``), and the ingest
commits before the files written since its last commit outgrow the space left.

A bad file (unreadable, truncated, not an image) is recorded with its reason and never
stops the others.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from lakefs.compression import detect, get_codec, prepare_encoded
from lakefs.dataset import Dataset, Tensor
from lakefs.dataset.dataset import resolve_tensor_settings
from lakefs.dataset.samples import check_class_name
from lakefs.errors import InvalidSampleError, LakeFSError, LeaseLostError, StorageError, TensorExistsError
from lakefs.format.index import ENTRY
from lakefs.tools.scan import LABELS, Plan, SourceFile, settle_imagefolder_keys, settle_stems, special_reason

log = logging.getLogger("lakefs.ingest")

# What stops an ingest, not a file: the store failed, or (an object store cut off longer
# than the lease) another writer took the dataset. Every file after it would fail the
# same way; the report says what was kept, and a rerun resumes.
STOPS = (StorageError, LeaseLostError)

HEAD_BYTES = 64  # enough for the registry's magic-byte detection
WINDOW = 64  # files in flight (being read or transcoded), at most
WINDOW_BYTES = 256 << 20  # and at most this many source bytes
READ_THREADS = 4  # pass-through files are read ahead while the main thread writes
COMMIT_MARGIN = 1 << 20  # room kept for a commit's manifest and segments (see _make_room)
ROW_KEY_BYTES = 64  # and per row: a key in a row segment (a commit may merge them all)
UNKNOWN_SPACE = 1 << 50  # statfs of a storage that does not know its space (Storage.statfs)


@dataclass
class IngestReport:
    """What became of every file of the source: ``total`` = ``written`` + ``skipped`` +
    ``len(failed)``; hidden files and folders not read are counted apart.

    ``written`` files are in the dataset; ``committed`` of them are committed. When the
    final commit failed (``commit_error``), only those are kept: ``kept``."""

    layout: str
    total: int = 0
    written: int = 0
    transcoded: int = 0
    skipped: int = 0
    bytes_read: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)
    folders: list[tuple[str, str]] = field(default_factory=list)  # ("rel/", reason): not read
    hidden: int = 0
    new_tensors: list[str] = field(default_factory=list)  # the tensors this ingest created
    tensors_kept: bool = False  # a commit published them (see created_tensors)
    seconds: float = 0.0
    stopped: str | None = None  # the storage failure that stopped the ingest (rerun to resume)
    committed: int = 0  # written files the commits kept
    commit_error: str | None = None  # the final commit failed: the written files not committed are lost
    # (tensor, row, labels tensor or None, transcoded) of each file written that no commit kept yet
    uncommitted: list[tuple[Tensor, int, Tensor | None, bool]] = field(default_factory=list, repr=False)

    @property
    def created_tensors(self) -> list[str]:
        """The tensors this ingest created, once a commit kept them: none when nothing
        was committed (it said "created tensors images" of a dataset left empty)."""
        return self.new_tensors if self.tensors_kept else []

    def count_committed(self) -> None:
        """Set ``committed`` from what the dataset's last commit holds (after a commit,
        also one that failed: on a full disk it keeps the files it could store)."""
        left = [(t, row, labels, tr) for t, row, labels, tr in self.uncommitted
                if not (t.is_committed(row) and (labels is None or labels.is_committed(row)))]
        if len(left) < len(self.uncommitted):
            self.tensors_kept = True
        self.uncommitted = left
        self.committed = self.written - len(left)

    @property
    def kept(self) -> int:
        """Files written and committed: the ingest's lasting result."""
        return self.written if self.commit_error is None else self.committed

    @property
    def transcoded_kept(self) -> int:
        """Of the files kept, those transcoded (it said 637 transcoded of 383 kept)."""
        lost = 0 if self.commit_error is None else sum(1 for *_, tr in self.uncommitted if tr)
        return self.transcoded - lost

    @property
    def rate(self) -> float:
        """Files kept a second (it gave 11 files/s of an ingest that kept none)."""
        return self.kept / self.seconds if self.seconds > 0 else 0.0


# --- the worker side (module level, so a spawned process can import it) -------------------


PR_SET_PDEATHSIG = 1  # prctl(2): a signal the kernel sends this process when its parent dies
PARENT_POLL_SECONDS = 0.5  # elsewhere, how often a worker looks whether its parent is gone


def init_worker(parent: int) -> None:
    """Runs first in each transcoding process: it must end when the ingest that started it
    dies. A killed ingest (kill -9, the OOM killer) otherwise left its workers blocked for
    ever, sending a result into a queue nobody reads. On Linux the kernel kills the worker
    (PR_SET_PDEATHSIG), whatever it is doing; elsewhere a thread polls the parent's pid."""
    if not _kill_me_with_my_parent():
        threading.Thread(target=_watch_parent, args=(parent,), name="lakefs-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Around a pool call that may start transcoding processes (``submit``).

    SIGINT is blocked in this thread, and the processes inherit the mask: a terminal sends
    Ctrl-C to its whole foreground process group, and a worker still importing Python
    printed a traceback of its own KeyboardInterrupt. The ingest alone stops (and ends
    its workers). And a Ctrl-C or SIGTERM that comes meanwhile is held until the call
    is done: raised in the middle of starting a process, it left that worker reading a
    pipe closed under it (a traceback: "EOFError: Ran out of input") and descriptors
    closed twice, one of them a file being read ("Bad file descriptor")."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):  # (an ignored or default-handled signal is left as it is)
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: held.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held):
            previous[sig](sig, None)  # KeyboardInterrupt, or the CLI's Terminated


def _kill_me_with_my_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def open_regular(path: str) -> BinaryIO:
    """``open(path, "rb")`` for a regular file only. The scan skipped FIFOs and devices, but
    one may have taken a file's place since: O_NONBLOCK makes opening a FIFO return at once
    (open(2)) instead of waiting for a writer, and the fstat then refuses it.

    The descriptor goes to the file object through ``opener``, which owns it at once: a
    Ctrl-C raised inside ``os.fdopen`` left a half-made file object that closed it again
    later, by then another file's number (a file being read failed with "Bad file
    descriptor") or a pipe of the transcoding pool (the ingest hung)."""
    def opener(name: str, flags: int) -> int:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            why = special_reason(os.fstat(fd).st_mode)
            if why:
                raise OSError(errno.EINVAL, why)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return open(path, "rb", opener=opener)


def transcode_file(path: str, codec: str, exact: bool, allow: bool) -> tuple[bytes | None, str | None]:
    """Read ``path`` and encode it as ``codec``: (prepared bytes, None) or (None, reason)."""
    try:
        with open_regular(path) as f:
            data = f.read()
        return prepare_encoded(data, codec, exact=exact, allow_transcode=allow).data, None
    except (LakeFSError, OSError, ValueError) as e:
        return None, _reason(e)


def read_file(path: str) -> tuple[bytes | None, str | None]:
    try:
        with open_regular(path) as f:
            return f.read(), None
    except OSError as e:
        return None, _reason(e)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, LakeFSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


# --- the main process ---------------------------------------------------------------------


@dataclass
class _Item:
    src: SourceFile
    st: os.stat_result
    future: Future  # → (bytes to write, None) or (None, reason)
    transcoded: bool
    args: tuple = ()  # the transcode call, kept to retry it once if the pool broke


class Ingester:
    def __init__(self, ds: Dataset, plan: Plan, *, workers: int | None = None, progress: bool | None = None,
                 commit_seconds: float = 30.0) -> None:
        self.ds = ds
        self.plan = plan
        self.workers = (os.cpu_count() or 1) if workers is None else max(0, workers)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.commit_seconds = commit_seconds
        settle_stems(plan, self._compression)  # an existing tensor's may not be the scan's guess
        if plan.layout == "imagefolder":
            self._leave_out_unnamable_classes()
            settle_imagefolder_keys(plan, self._stored_class)
        self.report = IngestReport(plan.layout, total=len(plan.files) + len(plan.problems),
                                   failed=list(plan.problems), folders=list(plan.folders), hidden=plan.hidden)
        self._pool: ProcessPoolExecutor | None = None
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="lakefs-ingest-read")
        self._window: deque[_Item] = deque()
        self._window_bytes = 0
        self._bar: Any = None
        self._last_commit = time.monotonic()
        self._since_bytes = 0  # bytes of the files written since the last commit
        self._free = _space_left(ds)  # bytes the storage had left at the last commit

    # --- setup -------------------------------------------------------------------------

    def _tensors(self) -> dict[str, Tensor]:
        """The plan's tensors, those missing created as the mount creates them: an image
        tensor given no ``--dtype`` takes it from the first file stored (uint8 when that
        holds it; a folder of 16-bit PNG depth maps: uint16). Files are stored in the
        plan's order by this process alone, so that file is the same whatever the workers'
        timing; a later file the dtype cannot hold is reported as any refused file."""
        existing = self.ds.tensors
        self._check_names_free(existing)
        self._check_class_names(existing)
        for name, settings in self.plan.tensors.items():
            if name not in existing:
                existing[name] = self.ds.create_tensor_for_first_file(name, settings)
                self.report.new_tensors.append(name)
            elif settings.get("class_names"):
                names = existing[name].meta.class_names
                for cls in settings["class_names"]:  # keep label ids stable across reruns
                    if cls not in names:
                        names.append(check_class_name(cls, len(names)))
        return existing

    def _compression(self, name: str) -> str | None:
        """The sample compression tensor ``name`` has, or will have when created."""
        tensor = self.ds.tensors.get(name)
        if tensor is not None:
            return tensor.sample_compression
        return resolve_tensor_settings(**self.plan.tensors[name])["sample_compression"]

    def _check_names_free(self, existing: dict[str, Tensor]) -> None:
        """Refuse, before any tensor is created, a new tensor whose name the dataset holds
        otherwise (``train`` a tensor where ``train/images/`` needs a group). The ingest
        stopped at that tensor, keeping the ones created before it."""
        groups, files = set(self.ds.groups), self.ds.files
        for name in self.plan.tensors:
            if name in existing:
                continue
            parts = name.split("/")
            for above in ("/".join(parts[:i]) for i in range(1, len(parts))):
                if above in existing or above in files:
                    what = "tensor" if above in existing else "plain file"
                    raise TensorExistsError(f"cannot create tensor {name!r}: {above!r} is a {what} in the "
                                            "dataset, not a group")
            if name in groups or name in files:
                what = "group" if name in groups else "plain file"
                raise TensorExistsError(f"cannot create tensor {name!r}: the dataset has a {what} of that name")

    def _check_class_names(self, existing: dict[str, Tensor]) -> None:
        """Class names go to a class_label tensor only: an existing tensor of another htype
        had them appended to its settings, to no use."""
        for name, settings in self.plan.tensors.items():
            t = existing.get(name)
            if settings.get("class_names") and t is not None and t.htype != "class_label":
                raise InvalidSampleError(f"cannot add class names to tensor {name!r}: its htype is {t.htype}, "
                                         "not class_label")

    def _leave_out_unnamable_classes(self) -> None:
        """A class folder whose name cannot be a class name at the index it would get (``5``
        as class 2 after ``0`` and ``1``, a name with a trailing space) is a folder not read;
        the other classes go in. It stopped the whole ingest, after creating ``images``."""
        settings = self.plan.tensors.get(LABELS)
        if not settings or not settings.get("class_names"):
            return
        labels = self.ds.tensors.get(LABELS)
        names = list(labels.meta.class_names) if labels is not None else []
        refused: dict[str, str] = {}
        for cls in settings["class_names"]:
            if cls not in names:
                try:
                    names.append(check_class_name(cls, len(names)))
                except InvalidSampleError as e:
                    refused[cls] = f"cannot be a class: {e}"
        if refused:
            settings["class_names"] = [c for c in settings["class_names"] if c not in refused]
            self.plan.folders.extend((f"{cls}/", why) for cls, why in refused.items())
            self.plan.files = [f for f in self.plan.files if f.label not in refused]

    def _get_pool(self) -> ProcessPoolExecutor | None:
        if self.workers == 0:
            return None
        if self._pool is None:
            # spawn: the workers never inherit the dataset, its lock or a tqdm thread.
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_worker,
                                             initargs=(os.getpid(),))
        return self._pool

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> IngestReport:
        start = time.perf_counter()
        tensors = self._tensors()
        if self.progress:
            from tqdm import tqdm  # noqa: PLC0415

            self._bar = tqdm(total=len(self.plan.files), unit="file", dynamic_ncols=True, file=sys.stderr)
        try:
            for src in self.plan.files:
                self._submit(src, tensors[src.tensor])
                self._drain(block=len(self._window) >= WINDOW or self._window_bytes > WINDOW_BYTES)
            self._drain(block=True, until_empty=True)
        except STOPS as e:
            # The store failed (or the lease with it), not a file: every file after it would
            # fail the same way (an unreachable endpoint takes a deadline per file). Stop; a
            # rerun resumes.
            self.report.stopped = str(e)
        finally:
            if self._bar is not None:
                self._bar.close()
            self._readers.shutdown(wait=True, cancel_futures=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._final_commit()  # keep what was written, also after Ctrl-C
            self.report.seconds = time.perf_counter() - start
        return self.report

    def _fail(self, src: SourceFile, reason: str) -> None:
        self.report.failed.append((src.rel, reason))
        self._tick()

    def _tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _submit(self, src: SourceFile, tensor: Tensor) -> None:
        try:
            st = os.stat(src.path)
            why = special_reason(st.st_mode)
            if why:  # a FIFO or device put in the file's place since the scan
                self._fail(src, why)
                return
            if self._already_stored(src, tensor, st):
                self.report.skipped += 1
                self._tick()
                return
            codec = _media_codec(tensor)
            transcode = codec is not None and self._needs_transcode(src.path, codec)
        except OSError as e:
            self._fail(src, _reason(e))
            return
        args: tuple = ()
        if transcode:
            fmt = tensor.format
            args = (src.path, codec, fmt.exact, fmt.allow_transcode)
            future = self._transcode(args)
        else:
            future = self._readers.submit(read_file, src.path)
        self._window.append(_Item(src, st, future, transcode, args))
        self._window_bytes += st.st_size

    def _transcode(self, args: tuple) -> Future:
        pool = self._get_pool()
        if pool is not None:
            with starting_workers():  # (the pool starts its workers in submit)
                return pool.submit(transcode_file, *args)
        future: Future = Future()
        future.set_result(transcode_file(*args))
        return future

    def _result(self, item: _Item) -> tuple[bytes | None, str | None]:
        """The item's outcome; a worker that died (OOM killer, a crash in a decoder) breaks
        the pool: the file is retried once in a fresh pool, then reported."""
        try:
            return item.future.result()
        except BrokenProcessPool:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if not item.args:
                return None, "the transcoding process died"
            retry, item.args = self._transcode(item.args), ()
            try:
                return retry.result()
            except BrokenProcessPool:
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
                return None, "the transcoding process died while decoding this file"

    def _already_stored(self, src: SourceFile, tensor: Tensor, st: os.stat_result) -> bool:
        row = self.ds.row_of(src.key)
        sample = None if row is None else tensor.sample_at(row)
        if sample is None or sample.mtime_ns != st.st_mtime_ns:
            return False
        if src.label is not None and not self._label_stored(src, row):
            return False
        if sample.size == st.st_size:
            return True
        codec = _media_codec(tensor)  # a transcoded file cannot keep its size
        return sample.transcoded and codec is not None and self._needs_transcode(src.path, codec)

    def _stored_class(self, key: str) -> str | None:
        """The class of the dataset's row ``key`` ("" if it has no label), None if no row."""
        row = self.ds.row_of(key)
        if row is None:
            return None
        labels = self.ds.tensors.get(LABELS)
        sample = None if labels is None else labels.sample_at(row)
        return "" if sample is None else sample.file_bytes().decode(errors="replace").strip()

    def _label_stored(self, src: SourceFile, row: int) -> bool:
        labels = self.ds.tensors.get(LABELS)
        return labels is not None and labels.sample_at(row) is not None

    @staticmethod
    def _needs_transcode(path: str, codec: str) -> bool:
        with open_regular(path) as f:
            head = f.read(HEAD_BYTES)
        found = detect(head)
        return found is not None and found.name != codec and found.kind == get_codec(codec).kind

    def _drain(self, *, block: bool, until_empty: bool = False) -> None:
        while self._window:
            item = self._window[0]
            if not item.future.done() and not block:
                break  # (not return: the commit below is due also while transcodes run)
            self._window.popleft()
            self._window_bytes -= item.st.st_size
            self._write(item)
            self._commit_if_due()  # also in the final drain, which can take long
            if not until_empty:
                block = False
        self._commit_if_due()

    def _commit_if_due(self) -> None:
        if time.monotonic() - self._last_commit > self.commit_seconds:
            self._commit()

    def _commit(self) -> None:
        self.ds.flush()  # (a failure stops the ingest: see run)
        self.report.tensors_kept = True
        self.report.count_committed()
        self._last_commit = time.monotonic()
        self._since_bytes = 0
        self._free = _space_left(self.ds)

    def _make_room(self, size: int) -> None:
        """Commit first when a file of ``size`` bytes would take the files written since
        the last commit past the space that was left then (``statfs``; a margin for the
        commit's own index and manifest). The commit seals the open chunk at the size
        that fits. Found by QA: on a nearly full disk a chunk too big for the space left
        failed, with every file written since the last commit (none was kept)."""
        if self._free is None or not self._since_bytes:
            return
        margin = COMMIT_MARGIN + len(self.ds) * (ROW_KEY_BYTES + ENTRY.itemsize * len(self.plan.tensors))
        if self._since_bytes + size + margin > self._free:
            self._commit()

    def _final_commit(self) -> None:
        """Commit; a failure is the report's ``commit_error`` (not raised: the report must
        still say what was kept, ``committed``, and a rerun resumes from there)."""
        try:
            self.ds.flush()
        except STOPS as e:
            self.report.commit_error = str(e)
        else:
            self.report.commit_error = None
            self.report.tensors_kept = True
        self.report.count_committed()

    def _write(self, item: _Item) -> None:
        src, tensor = item.src, self.ds.tensors[item.src.tensor]
        data, reason = self._result(item)
        if data is None:
            self._fail(src, reason or "could not be read")
            return
        name = src.key + (tensor.format.canonical_ext if item.transcoded else src.ext)
        labels = self.ds.tensors[LABELS] if src.label is not None else None
        self._make_room(len(data))
        try:
            sample = tensor.write_file(name, data, mtime_ns=item.st.st_mtime_ns, mode=item.st.st_mode & 0o7777,
                                       transcoded=item.transcoded)
            if labels is not None:
                labels.write_file(src.key + ".txt", (src.label + "\n").encode(), mtime_ns=item.st.st_mtime_ns)
        except STOPS:
            raise  # (see run: the ingest stops)
        except LakeFSError as e:
            self._fail(src, _reason(e))
            return
        self.report.uncommitted.append((tensor, sample.row, labels, item.transcoded))
        self._since_bytes += len(data)
        self.report.written += 1
        self.report.transcoded += item.transcoded
        self.report.bytes_read += item.st.st_size
        self._tick()


def _space_left(ds: Dataset) -> int | None:
    """Bytes the dataset's storage has left, or None where it does not tell (an object store)."""
    try:
        _, _, avail = ds.storage.statfs()
    except (LakeFSError, OSError):
        return None
    return None if avail >= UNKNOWN_SPACE else avail


def close_dataset(ds: Dataset, report: IngestReport) -> None:
    """Close ``ds`` after :func:`ingest`: its final commit once more, if that failed, and
    ``report`` says what was kept. If the commit still fails, the dataset is abandoned
    (``Dataset.abandon``): the chunks of the files not kept are deleted, so the rerun
    the report suggests has their space again (found by QA: each rerun on a full disk
    failed sooner, its space taken by the chunks of the runs before)."""
    try:
        ds.close()
    except LeaseLostError as e:  # (closed all the same; what it put may be the new writer's to keep)
        if report.commit_error is None:
            report.commit_error = str(e)
        report.count_committed()
        return
    except StorageError as e:
        if report.commit_error is None:
            report.commit_error = str(e)
        report.count_committed()
        ds.abandon()
        return
    report.commit_error = None
    report.tensors_kept = True
    report.count_committed()


def _media_codec(tensor: Tensor) -> str | None:
    """The tensor's media sample compression (jpeg, png, wav...), else None."""
    sc = tensor.sample_compression
    if not sc:
        return None
    return sc if get_codec(sc).kind in ("image", "audio", "video") else None


def ingest(ds: Dataset, plan: Plan, *, workers: int | None = None, progress: bool | None = None,
           commit_seconds: float = 30.0) -> IngestReport:
    """Write the files of ``plan`` into ``ds``; see the module docstring."""
    return Ingester(ds, plan, workers=workers, progress=progress, commit_seconds=commit_seconds).run()
