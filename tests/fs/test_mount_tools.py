"""Everyday tools on a real mount: archive extraction, shutil, mmap, in-place edits."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from mounting import mounted
from PIL import Image

pytestmark = pytest.mark.timeout(60)


def lakefs_mount(ds: Path, mnt: Path, *opts: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), *opts]


def test_copy2_of_a_png_into_a_jpeg_tensor_keeps_its_time_and_mode(photos, dataset_path, mountpoint, tmp_path):
    """Found by review: ``shutil.copy2``/``copytree`` (and unzip) set times and modes by
    name after the close; the close stored the PNG as ``<key>.jpg`` and the name it was
    written under said ENOENT, so copytree of a folder holding a PNG stopped there."""
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(photos[0], src / "a.jpg")
    Image.open(photos[1]).save(src / "b.png")
    for i, p in enumerate(sorted(src.iterdir())):
        os.chmod(p, 0o640)
        os.utime(p, ns=(1_500_000_000_000_000_000 + i, 1_500_000_000_000_000_000 + i))
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        shutil.copytree(src, mountpoint / "images")
        assert sorted(os.listdir(mountpoint / "images")) == ["a.jpg", "b.jpg"]
        st = os.stat(mountpoint / "images" / "b.jpg")
        assert st.st_mtime_ns == (src / "b.png").stat().st_mtime_ns
        assert st.st_mode & 0o777 == 0o640
        assert os.stat(mountpoint / "images" / "b.png").st_size == st.st_size  # the name written
        shutil.copy2(src / "b.png", mountpoint / "images" / "c.png")
        st = os.stat(mountpoint / "images" / "c.jpg")
        assert (st.st_mtime_ns, st.st_mode & 0o777) == ((src / "b.png").stat().st_mtime_ns, 0o640)
        with pytest.raises(FileNotFoundError):  # it only answers stat, touch, chmod, chown
            open(mountpoint / "images" / "c.png", "rb")
