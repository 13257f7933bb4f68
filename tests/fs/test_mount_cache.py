"""Kernel cache coherence of a real mount with the default FUSE options (docs/BENCHMARKS.md).

The mount lets the kernel cache attributes, names and file pages (attr/entry timeouts,
auto_cache). That is only correct if every change made through the mount is seen at once:
a rewritten file, a file renamed onto another, and a file whose stored content differs from
what was written (a PNG transcoded into a jpeg tensor) must read back their new content
immediately, not after a timeout.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import mounted
from PIL import Image

import lakefs

pytestmark = pytest.mark.timeout(120)


def lakefs_mount(ds: Path, mnt: Path, *opts: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), *opts]


def png_bytes(photo: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(photo).save(buf, "PNG")
    return buf.getvalue()


def read_via_cat(path: Path) -> bytes:
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def test_rewrite_same_size_reads_new_content(dataset_path, mountpoint):
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        d = mountpoint / "blobs"
        d.mkdir()
        f = d / "a.bin"
        old, new = b"A" * 300_000, b"B" * 300_000
        f.write_bytes(old)
        assert read_via_cat(f) == old  # now in the page cache
        mtime = f.stat().st_mtime_ns
        f.write_bytes(new)  # same size ...
        os.utime(f, ns=(mtime, mtime))  # ... and same mtime, as cp -p would leave it
        assert f.stat().st_size == len(new)
        assert read_via_cat(f) == new
        assert f.read_bytes() == new
        # Rename onto an existing, cached file (rsync / sed -i / editors do this).
        tmp = d / ".a.bin.XXXXXX"
        tmp.write_bytes(b"C" * 300_000)
        os.rename(tmp, f)
        assert read_via_cat(f) == b"C" * 300_000
        assert sorted(os.listdir(d)) == ["a.bin"]
        # Listings hand the kernel attributes (READDIRPLUS): they must follow changes too.
        f.write_bytes(b"D" * 1234)
        assert ls_sizes(d) == {"a.bin": 1234}
        f.write_bytes(b"E" * 4321)
        assert ls_sizes(d) == {"a.bin": 4321} and f.stat().st_size == 4321
        assert read_via_cat(f) == b"E" * 4321


def ls_sizes(d: Path) -> dict[str, int]:
    out = subprocess.run(["ls", "-l", str(d)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1]: int(line.split()[4]) for line in out.splitlines()[1:]}


def test_transcoded_png_reads_back_as_jpeg_at_once(photos, dataset_path, mountpoint, tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(png_bytes(photos[0]))
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint,
                 expected_errors=[r"transcod"]):
        img = mountpoint / "images"
        img.mkdir()
        subprocess.run(["cp", str(photos[1]), str(img / "first.jpg")], check=True)  # makes images a jpeg tensor
        # 1. cp x.png: stored as x.jpg at close; the .png name is gone at once.
        subprocess.run(["cp", str(png), str(img / "x.png")], check=True)
        assert not (img / "x.png").exists()
        jpg = (img / "x.jpg").read_bytes()
        assert jpg[:2] == b"\xff\xd8" and (img / "x.jpg").stat().st_size == len(jpg)
        # 2. mv x.jpg y.jpg: the renamed sample reads back whole.
        os.rename(img / "x.jpg", img / "y.jpg")
        assert read_via_cat(img / "y.jpg") == jpg
        # 3. A PNG written under a staging name, then renamed to .jpg (rsync's pattern):
        #    the kernel has the PNG bytes cached for that inode; the file is now a JPEG.
        tmp = img / ".z.jpg.tmp"
        tmp.write_bytes(png.read_bytes())
        assert read_via_cat(tmp) == png.read_bytes()
        os.rename(tmp, img / "z.jpg")
        z = read_via_cat(img / "z.jpg")
        assert z[:2] == b"\xff\xd8", "stale PNG bytes served from the kernel cache"
        assert (img / "z.jpg").stat().st_size == len(z)
        Image.open(img / "z.jpg").verify()
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds.images["z"].tobytes() == z
    assert ds.images["y"].tobytes() == jpg
