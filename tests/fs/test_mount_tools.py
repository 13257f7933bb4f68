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
        shutil.copy2(src / "b.png", mountpoint / "images" / "c.png")
        st = os.stat(mountpoint / "images" / "c.jpg")
        assert (st.st_mtime_ns, st.st_mode & 0o777) == ((src / "b.png").stat().st_mtime_ns, 0o640)
        with pytest.raises(FileNotFoundError):  # it only takes times, modes and writes
            open(mountpoint / "images" / "c.png", "rb")
        # Written again under that name (the kernel opens it, it does not create it).
        (mountpoint / "images" / "c.png").write_bytes((src / "b.png").read_bytes())
        assert sorted(os.listdir(mountpoint / "images")) == ["a.jpg", "b.jpg", "c.jpg"]


def test_a_refused_new_file_can_be_written_again_at_once(dataset_path, mountpoint):
    """Found by review: a new file refused at close (invalid JSON, an array of another
    dtype) left the kernel a name it was told exists; writing it again with
    ``open(p, "wb")`` (``np.save``) got ENOENT for the whole entry_timeout (60 s)."""
    np = pytest.importorskip("numpy")
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint,
                 expected_errors=[r"not valid JSON", r"dtype mismatch"]):
        labels, arrays = mountpoint / "labels", mountpoint / "arrays"
        labels.mkdir()
        arrays.mkdir()
        (labels / "a.json").write_bytes(b'{"a": 1}')
        np.save(arrays / "a.npy", np.arange(3))
        with pytest.raises(OSError) as refused:
            (labels / "b.json").write_bytes(b"{not json")
        assert refused.value.errno == 22
        with pytest.raises(OSError):
            np.save(arrays / "b.npy", np.zeros(3, np.float32))  # the tensor holds int64
        assert not (labels / "b.json").exists() and not (arrays / "b.npy").exists()
        (labels / "b.json").write_bytes(b'{"b": 2}')
        np.save(arrays / "b.npy", np.arange(4))
        with pytest.raises(OSError):
            (labels / "c.json").write_bytes(b"{not json")
        with open(labels / "c.json", "ab") as f:  # appending to it, too
            f.write(b'{"c": 3}')
        assert (labels / "b.json").read_bytes() == b'{"b": 2}'
        assert (labels / "c.json").read_bytes() == b'{"c": 3}'
        assert np.load(arrays / "b.npy").tolist() == [0, 1, 2, 3]
        assert sorted(os.listdir(labels)) == ["a.json", "b.json", "c.json"]


def test_an_open_of_a_file_replaced_meanwhile_reads_what_it_found(photos, dataset_path, mountpoint):
    """Found by review: readers of a file a writer replaces atomically (a temp file
    renamed over it) got ENOENT for ~15% of their opens. An open that found the old file
    reaches the mount after libfuse renamed it away to ``.fuse_hidden*`` (when another
    handle still has it open), and that name did not open. /proc/self/fd reopens the
    old file at will."""
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        images = mountpoint / "images"
        images.mkdir()
        shutil.copy(photos[0], images / "z.jpg")
        fd = os.open(images / "z.jpg", os.O_RDONLY)
        try:
            shutil.copy(photos[1], images / ".z.jpg.tmp")
            os.replace(images / ".z.jpg.tmp", images / "z.jpg")
            with open(f"/proc/self/fd/{fd}", "rb") as old:  # a second open of the old file
                assert old.read() == photos[0].read_bytes()
            assert os.read(fd, 1 << 20) == photos[0].read_bytes()[: 1 << 20]
        finally:
            os.close(fd)
        assert (images / "z.jpg").read_bytes() == photos[1].read_bytes()
        assert os.listdir(images) == ["z.jpg"]
