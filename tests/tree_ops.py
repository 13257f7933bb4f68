"""File operations on a DatasetFS without a kernel, as a mount's caller makes them."""

from __future__ import annotations

import os

import pytest

from lakefs.errors import LakeFSError
from lakefs.fs.tree import DatasetFS


def put(fs: DatasetFS, path: str, data: bytes, mode: int = 0o644) -> None:
    """Create, write, close (flush, release) ``path``: a ``cp`` of one file."""
    fh = fs.create(path, mode)
    fs.write(fh, data, 0)
    fs.flush(fh)
    fs.release(fh)


def get(fs: DatasetFS, path: str) -> bytes:
    fh = fs.open(path, os.O_RDONLY)
    try:
        return fs.read(fh, 1 << 30, 0)
    finally:
        fs.release(fh)


def errno_of(fn, *args) -> int:
    """The errno of the LakeFSError ``fn(*args)`` raises (it must raise one)."""
    with pytest.raises(LakeFSError) as e:
        fn(*args)
    return e.value.errno
