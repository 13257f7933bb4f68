"""Deep Lake style entry points: ``lakefs.empty``, ``load``, ``dataset``, ``read``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from lakefs.dataset import Dataset
from lakefs.dataset.dataset import holds_dataset, take_writer_lock
from lakefs.errors import DatasetNotFoundError, InvalidNameError
from lakefs.format import keys
from lakefs.storage.base import Storage
from lakefs.storage.mounts import refuse_a_mountpoint
from lakefs.storage.remote import is_object_store, open_dataset_storage

DEFAULT_CACHE_SIZE = 10 << 30


def _storage(path: str | os.PathLike, read_only: bool, storage_options: dict | None,
             cache_dir: str | os.PathLike | None = None, cache_size: int = DEFAULT_CACHE_SIZE, *,
             creating: bool = False):
    """The dataset's storage; an object store is behind a read cache when ``cache_dir`` is
    set. A read-only object store is checked first (a writable one is, by ``Dataset``):
    a missing bucket, bad credentials or an unreachable endpoint is said as such, not as
    "no dataset here". A lakefs mountpoint, or a path in a mount, is refused as the CLI
    refuses it (it said "no lakefs dataset at ./mnt", and a dataset was created in a mount)."""
    url = os.fsdecode(path)  # (bytes too: os.fspath kept them bytes, and "b'/data'" was a path)
    if not url:  # not the current folder: empty(os.environ.get("DS", ""), overwrite=True) wiped it
        raise InvalidNameError("the dataset path is empty; give '.' for the current folder")
    refuse_a_mountpoint(url, "create" if creating else "load")
    return open_dataset_storage(url, read_only=read_only, options=storage_options, cache_dir=cache_dir,
                                cache_size=cache_size, check=read_only and is_object_store(url))


@contextlib.contextmanager
def _closed_on_error(storage: Storage) -> Iterator[Storage]:
    """``storage``, closed if opening the dataset on it fails (else the dataset made on it
    owns it, and its ``close()`` closes it): a refused open leaks no descriptor."""
    try:
        yield storage
    except BaseException:
        storage.close()
        raise


def empty(path: str | os.PathLike, overwrite: bool = False, *, storage_options: dict | None = None,
          **options: Any) -> Dataset:
    """Create a new, empty dataset; refuses an existing one unless ``overwrite``."""
    with _closed_on_error(_storage(path, False, storage_options, creating=True)) as storage:
        # (a dataset that lost its marker is replaced too: overwrite says its data may go)
        replacing = overwrite and holds_dataset(storage)
        if replacing:
            with take_writer_lock(storage):
                storage.delete(keys.MARKER)  # first: a crash mid-way leaves "no dataset", not a broken one
                storage.sync()
                for key in list(storage.list()):
                    if keys.is_dataset_key(key):  # only the dataset's own objects
                        storage.delete(key)
        return Dataset(storage, create=True, must_create=True, _replacing=replacing, _owns_storage=True,
                       **options)


def load(path: str | os.PathLike, read_only: bool = False, *, storage_options: dict | None = None,
         cache_dir: str | os.PathLike | None = None, cache_size: int = DEFAULT_CACHE_SIZE,
         **options: Any) -> Dataset:
    """Open an existing dataset. A writable open takes the writer lock.

    For an object-store dataset, ``cache_dir`` (e.g. ``~/.cache/lakefs``) keeps up to
    ``cache_size`` bytes of its chunks on local disk for later epochs.
    """
    with _closed_on_error(_storage(path, read_only, storage_options, cache_dir, cache_size)) as storage:
        return Dataset(storage, read_only=read_only, _owns_storage=True, **options)


def dataset(path: str | os.PathLike, read_only: bool = False, *, storage_options: dict | None = None,
            cache_dir: str | os.PathLike | None = None, cache_size: int = DEFAULT_CACHE_SIZE,
            **options: Any) -> Dataset:
    """Open the dataset at ``path``, creating it when missing (unless read-only)."""
    with _closed_on_error(_storage(path, read_only, storage_options, cache_dir, cache_size,
                                   creating=not read_only)) as storage:
        return Dataset(storage, read_only=read_only, create=not read_only, _owns_storage=True, **options)


def exists(path: str | os.PathLike, *, storage_options: dict | None = None) -> bool:
    try:
        with _storage(path, True, storage_options) as storage:
            return storage.exists(keys.MARKER)
    except DatasetNotFoundError:
        return False


def lost_marker_at(path: str | os.PathLike, *, storage_options: dict | None = None) -> bool:
    """Whether a dataset that lost its marker is at ``path`` (:func:`exists` says no): a
    command given it must refuse it as such, not say there is no dataset."""
    try:
        with _storage(path, True, storage_options) as storage:
            return not storage.exists(keys.MARKER) and holds_dataset(storage)
    except DatasetNotFoundError:
        return False
