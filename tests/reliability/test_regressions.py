"""Regression tests for bugs the reliability suites found (each names the suite and fix)."""

from __future__ import annotations

import pytest

from lakefs.dataset import Dataset
from lakefs.fs.tree import DatasetFS
from lakefs.storage import MemoryStorage

pytestmark = pytest.mark.timeout(60)


def test_zero_length_write_past_the_end_changes_nothing():
    """Regression: an empty write at an offset past EOF used to zero-fill up to it.

    pwrite(2) of 0 bytes has no effect on a regular file; found by test_faults.py's workload,
    whose split writes sent an empty second half at offset 2000 of a 300-byte file.
    """
    fs = DatasetFS(Dataset(MemoryStorage(), create=True))
    fh = fs.create("/f", 0o644)
    assert fs.write(fh, b"abc", 0) == 3
    assert fs.write(fh, b"", 100) == 0
    assert fs.getattr("/f").size == 3
    fs.release(fh)
    assert fs.ds.read_file("f") == b"abc"
