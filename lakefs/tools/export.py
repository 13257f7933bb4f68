"""``lakefs export``: a dataset back to a folder of files, as the mount would show it.

Every tensor becomes a folder (groups nest), every sample a file named ``<key><ext>``
holding exactly the bytes the mount serves (the original file for pass-through samples),
with the sample's mtime and mode. Plain files kept in the dataset (a README, staging
files) are exported too. Files are written to a temporary name and renamed, so an
interrupted export never leaves a half-written file under a sample's name.

Policy for the destination: it must be missing or empty, unless ``overwrite`` — then
files of the same name are replaced and every other file in it is left alone. It is
never in a local dataset's own folder.

A file that cannot be read or written is reported and the export goes on; a failure of
the store itself (unreachable, not answering: every file after it would fail the same
way, each after a deadline) stops it, as it stops ``lakefs ingest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from lakefs.dataset import Dataset
from lakefs.dataset.names import NAME_MAX
from lakefs.errors import (
    ConfigError,
    DatasetExistsError,
    InvalidNameError,
    LakeFSError,
    ObjectNotFoundError,
    StorageError,
    TensorNotFoundError,
    message_of,
)
from lakefs.storage.base import StorageWrapper
from lakefs.storage.local import LocalStorage


@dataclass
class ExportReport:
    files: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path in dataset, reason)
    seconds: float = 0.0
    total: int = 0  # files the export was to write
    stopped: str | None = None  # the storage failure that stopped it

    @property
    def not_reached(self) -> int:
        """Files neither exported nor failed: those after the store failed."""
        return self.total - self.files - len(self.failed)


class _StoreFailed(Exception):
    """The store failed a read: stop the export (``ExportReport.stopped`` says why)."""


def _note_failure(report: ExportReport, where: str, e: Exception) -> None:
    """Report a file that failed; stop at a failure of the store itself (a missing
    object is that one file's problem)."""
    if isinstance(e, StorageError) and not isinstance(e, ObjectNotFoundError):
        report.stopped = str(e)
        raise _StoreFailed from e
    report.failed.append((where, message_of(e)))


def _tmp_path(path: str) -> str:
    """The hidden name ``path`` is written under, beside it and as long as a name may be
    (255 bytes): a name near that long gets its digest instead of itself."""
    base = os.path.basename(path)
    name = f".{base}.lakefs-tmp"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".{hashlib.sha1(os.fsencode(base)).hexdigest()}.lakefs-tmp"
    return os.path.join(os.path.dirname(path), name)


def _write(path: str, data: bytes, mtime_ns: int, mode: int) -> None:
    tmp = _tmp_path(path)
    try:
        os.unlink(tmp)  # a leftover of an interrupted export (never follow a planted link)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode & 0o7777 or 0o644)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException as e:
        # Not left behind (a full disk keeps filling, a folder in the way keeps it, Ctrl-C):
        # a failure is the file's, under its own name.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, LakeFSError):
            raise OSError(e.errno, e.strerror, path) from e
        raise


def _check_dest(dest: str, overwrite: bool, ds: Dataset, tops: set[str]) -> None:
    if not os.fspath(dest):  # ("$OUT" unset): it would write into the current folder, unchecked
        raise ConfigError("the export destination is an empty path; name a folder (. for the current one)")
    _refuse_the_datasets_folder(dest, ds, tops)
    if os.path.exists(dest):
        if not os.path.isdir(dest):
            raise NotADirectoryError(f"export destination {dest} is not a folder")
        if os.listdir(dest) and not overwrite:
            raise DatasetExistsError(
                f"export destination {dest} is not empty (use --overwrite to replace files of the same name)"
            )


def _refuse_the_datasets_folder(dest: str, ds: Dataset, tops: set[str]) -> None:
    """A local dataset is not exported into its own folder (``export ds ds/out``), nor
    into the folder above it when a tensor, group or file of that name would be written
    into it (``export images . --overwrite`` of a tensor ``images``): the export wrote
    files among the dataset's own. ``tops``: the first names of what is exported."""
    storage = ds.storage
    while isinstance(storage, StorageWrapper):
        storage = storage.inner
    if not isinstance(storage, LocalStorage):
        return
    root, real = storage.root, os.path.realpath(dest)
    if real == root or real.startswith(root + os.sep):
        where = "is" if real == root else "is inside"
        raise ConfigError(f"export destination {dest} {where} the dataset's own folder {root}; "
                          "export to a folder outside it")
    if root.startswith(real + os.sep):
        first = os.path.relpath(root, real).split(os.sep)[0]
        if first in tops:
            raise ConfigError(f"exporting to {dest} would write {first}/ of the dataset into the dataset's own "
                              f"folder {root}; export to another folder")


def export(ds: Dataset, dest: str, *, tensors: list[str] | None = None, overwrite: bool = False,
           progress: bool | None = None) -> ExportReport:
    """Write ``ds`` (or only ``tensors``) under ``dest``; see the module docstring."""
    start = time.perf_counter()
    all_tensors = ds.tensors
    names = list(all_tensors) if not tensors else list(dict.fromkeys(t.strip("/") for t in tensors))
    tops = {n.split("/")[0] for n in (names if tensors else [*names, *ds.groups, *ds.pending_dirs, *ds.files])}
    _check_dest(dest, overwrite, ds, tops)
    for name in names:
        if name not in all_tensors:
            raise TensorNotFoundError(f"no tensor {name!r} in the dataset")
    samples = sum(all_tensors[n].num_samples for n in names)
    report = ExportReport(total=samples + (0 if tensors else len(ds.files)))
    bar = _bar(samples, progress)
    try:
        for name in names:
            folder = _safe_join(dest, name)
            os.makedirs(folder, exist_ok=True)
            for sample in all_tensors[name].iter_samples():
                where = f"{name}/{sample.filename}"
                try:
                    data = sample.file_bytes()
                    _write(_safe_join(folder, sample.filename), data, sample.mtime_ns, sample.mode)
                except (LakeFSError, OSError) as e:
                    _note_failure(report, where, e)
                else:
                    report.files += 1
                    report.bytes += len(data)
                if bar is not None:
                    bar.update(1)
        if not tensors:
            _export_plain_files(ds, dest, report)
        _set_dir_meta(ds, dest, names if tensors else ["", *names, *ds.groups, *ds.pending_dirs])
    except _StoreFailed:
        pass
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - start
    return report


def _safe_join(dest: str, *parts: str) -> str:
    """``dest/parts...``, refusing names that would leave ``dest`` (a crafted dataset can
    hold any name in its manifest: export must not write outside the folder it was given)."""
    for part in parts:
        for seg in part.split("/"):
            if seg in ("", ".", "..") or "\0" in seg:
                raise InvalidNameError(f"refusing to export the name {part!r}: it would leave {dest}")
    target = os.path.join(dest, *parts)
    root = os.path.realpath(dest)
    if not os.path.realpath(target).startswith(root + os.sep):
        raise InvalidNameError(f"refusing to export {'/'.join(parts)!r}: it resolves outside {dest}")
    return target


def _export_plain_files(ds: Dataset, dest: str, report: ExportReport) -> None:
    for group in ds.groups + ds.pending_dirs:
        os.makedirs(_safe_join(dest, group), exist_ok=True)
    for path, meta in ds.files.items():
        try:
            target = _safe_join(dest, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _write(target, ds.read_staged(meta), meta.mtime_ns, meta.mode)  # (checked; the report names it)
        except (LakeFSError, OSError) as e:
            _note_failure(report, path, e)
        else:
            report.files += 1
            report.bytes += meta.size


def _set_dir_meta(ds: Dataset, dest: str, dirs: list[str]) -> None:
    """Give the exported folders their stored mode and mtime, deepest first (writing a
    folder's files changed its mtime; a read-only mode would have refused them), so that
    ``rsync -a`` of the export back into a mount finds nothing to change. ``""`` is the
    dataset's root: ``dest`` itself."""
    for d in sorted(set(dirs), key=lambda d: -d.count("/") - bool(d)):
        meta = ds.dir_meta(d)
        if meta is None:
            continue  # (a dataset written before directories had metadata)
        mode, mtime_ns = meta
        target = _safe_join(dest, d) if d else dest
        with contextlib.suppress(FileNotFoundError):
            os.chmod(target, mode & 0o7777)
            os.utime(target, ns=(mtime_ns, mtime_ns))


def _bar(total: int, progress: bool | None) -> Any:
    if not (sys.stderr.isatty() if progress is None else progress):
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)
