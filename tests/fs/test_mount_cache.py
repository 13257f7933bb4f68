"""Kernel cache coherence of a real mount with the default FUSE options (docs/BENCHMARKS.md).

The mount lets the kernel cache attributes, names and file pages (attr/entry timeouts,
auto_cache). That is only correct if every change made through the mount is seen at once:
a rewritten file, a file renamed onto another, and a file whose stored content differs from
what was written (a PNG transcoded into a jpeg tensor) must read back their new content
immediately, not after a timeout.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import eventually, mounted
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


def ls_la(d: Path) -> dict[str, tuple[str, int, int]]:
    """name → (mode string, size, mtime in s) as ``ls -la`` shows them ("." and ".." left out)."""
    out = subprocess.run(["ls", "-la", "--time-style=+%s", str(d)], capture_output=True, text=True,
                         check=True).stdout
    rows = (line.split() for line in out.splitlines()[1:])
    return {r[-1]: (r[0], int(r[4]), int(r[5])) for r in rows if r[-1] not in (".", "..")}


def test_ls_l_shows_every_change_at_once(photos, dataset_path, mountpoint, tmp_path):
    """The mount remembers a directory's listing until the dataset changes (a warm ls -l
    of a big tensor), so a listing right after each change must already show it."""
    png = tmp_path / "x.png"
    png.write_bytes(png_bytes(photos[0]))
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint, expected_errors=[r"transcod"]):
        t = mountpoint / "texts"
        t.mkdir()
        for i in range(300):
            (t / f"k{i:03d}.txt").write_text("x" * i)
        want = {f"k{i:03d}.txt": i for i in range(300)}

        def sizes() -> dict[str, int]:
            return {name: size for name, (_, size, _) in ls_la(t).items()}

        assert sizes() == want and sizes() == want  # the second listing is the remembered one
        subprocess.run(["cp", str(t / "k010.txt"), str(t / "new.txt")], check=True)
        want["new.txt"] = 10
        assert sizes() == want
        os.rename(t / "k000.txt", t / "k999.txt")
        want["k999.txt"] = want.pop("k000.txt")
        assert sizes() == want
        (t / "k001.txt").unlink()
        del want["k001.txt"]
        assert sizes() == want
        (t / "k002.txt").write_text("rewritten, longer")
        want["k002.txt"] = len("rewritten, longer")
        assert sizes() == want
        os.chmod(t / "k003.txt", 0o600)
        os.utime(t / "k004.txt", (1_000_000_000, 1_000_000_000))
        listed = ls_la(t)
        assert listed["k003.txt"][0] == "-rw-------" and listed["k004.txt"][2] == 1_000_000_000
        (t / ".k005.txt.tmp").write_text("staged")  # a staged file (rsync's temp name)
        want[".k005.txt.tmp"] = 6
        assert sizes() == want
        os.rename(t / ".k005.txt.tmp", t / "k005.txt")  # renamed onto a sample
        want["k005.txt"] = want.pop(".k005.txt.tmp")
        assert sizes() == want
        with open(t / "open.txt", "wb") as f:  # being written: listed with its size so far
            f.write(b"abc")
            f.flush()
            assert sizes()["open.txt"] == 3
            f.write(b"def")
            f.flush()
            assert sizes()["open.txt"] == 6
        want["open.txt"] = 6
        assert sizes() == want
        img = mountpoint / "images"
        img.mkdir()
        subprocess.run(["cp", str(photos[1]), str(img / "first.jpg")], check=True)  # a jpeg tensor
        assert list(ls_la(img)) == ["first.jpg"]
        subprocess.run(["cp", str(png), str(img / "x.png")], check=True)  # stored as x.jpg at close
        listed = ls_la(img)
        assert sorted(listed) == ["first.jpg", "x.jpg"]
        assert listed["x.jpg"][1] == (img / "x.jpg").stat().st_size == len((img / "x.jpg").read_bytes())


def test_refused_writes_are_forgotten_by_the_kernel(photos, dataset_path, mountpoint, tmp_path):
    """Found by review: after a refused in-place rewrite the kernel kept serving the
    refused bytes from its page cache (size and mtime still matched), a refused truncate
    left its size, and a refused new file stayed visible to stat for the entry timeout."""
    want = photos[0].read_bytes()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint,
                 expected_errors=[r"not stored", r"flush", r"truncate", r"refused", r"not a"]):
        img = mountpoint / "images"
        img.mkdir()
        subprocess.run(["cp", str(photos[0]), str(img / "x.jpg")], check=True)
        assert read_via_cat(img / "x.jpg") == want  # its pages are cached now
        # 1. An in-place rewrite that close refuses.
        f = open(img / "x.jpg", "r+b")  # noqa: SIM115 (the close is what is tested)
        f.write(b"NOTJPEG")
        with pytest.raises(OSError) as info:
            f.close()
        assert info.value.errno == 22
        eventually(lambda: read_via_cat(img / "x.jpg") == want)
        # 2. A truncate that close refuses (a 100-byte JPEG is truncated).
        done = subprocess.run(["truncate", "-s", "100", str(img / "x.jpg")], capture_output=True)
        assert done.returncode != 0
        eventually(lambda: (img / "x.jpg").stat().st_size == len(want))
        assert read_via_cat(img / "x.jpg") == want
        # 3. A refused new file, copied with its times (cp -p sets them on the path).
        done = subprocess.run(["cp", "-p", str(bad), str(img / "ph.jpg")], capture_output=True, text=True)
        assert done.returncode != 0 and "Invalid argument" in done.stderr
        eventually(lambda: not (img / "ph.jpg").exists())
        subprocess.run(["cp", "-n", str(photos[1]), str(img / "ph.jpg")], check=True)
        assert read_via_cat(img / "ph.jpg") == photos[1].read_bytes()
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds.images["x"].tobytes() == want and ds.images["ph"].tobytes() == photos[1].read_bytes()


def errno_of(call, *args) -> int:
    """The errno ``call(*args)`` fails with, 0 if it works."""
    try:
        call(*args)
    except OSError as e:
        return e.errno
    return 0


def open_existing(path: Path) -> None:
    """Open ``path`` for writing without creating it (``open(p, "r+b")``), then close it."""
    os.close(os.open(path, os.O_RDWR))


def test_the_kernel_forgets_the_name_of_a_refused_new_file(photos, dataset_path, mountpoint, tmp_path):
    """Found by review: the kernel kept the name of a new file refused at its close (it
    was told the file exists at the create) for entry_timeout (60 s). Meanwhile ``rm``
    of it worked, and an open without O_CREAT (``open(p, "r+b")``) made it again, empty,
    and its close said EINVAL (an empty JPEG is refused): a missing name answers ENOENT.
    A mkdir of it and an exclusive create treat it as the fresh name it is (the kernel
    asks again before those)."""
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a jpeg at all")
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint,
                 expected_errors=[r"not stored", r"flush", r"refused", r"not a", r"empty"]):
        images, pending = mountpoint / "images", mountpoint / "new"
        images.mkdir()
        pending.mkdir()
        subprocess.run(["cp", str(photos[0]), str(images / "a.jpg")], check=True)  # a jpeg tensor
        for d in (images, pending):  # (pending stays pending: its first file was refused)
            done = subprocess.run(["cp", str(text), str(d / "b.jpg")], capture_output=True, text=True)
            assert done.returncode != 0 and "Invalid argument" in done.stderr, done.stderr
        eventually(lambda: errno_of(open_existing, images / "b.jpg") == errno.ENOENT)
        assert errno_of(os.unlink, images / "b.jpg") == errno.ENOENT
        assert not (images / "b.jpg").exists()
        # As any fresh name: mkdir in a pending directory makes it.
        assert errno_of(os.mkdir, pending / "b.jpg") == 0 and (pending / "b.jpg").is_dir()
        with open(images / "b.jpg", "xb") as f:
            f.write(photos[1].read_bytes())
        assert read_via_cat(images / "b.jpg") == photos[1].read_bytes()
        assert sorted(os.listdir(images)) == ["a.jpg", "b.jpg"]
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds.images["b"].tobytes() == photos[1].read_bytes()


def test_a_new_open_reads_new_contents_while_an_old_handle_is_open(photos, dataset_path, mountpoint, tmp_path):
    """Found by review: the kernel keeps one page cache per file; a handle of the old
    contents (opened before an in-place rewrite, or before a read-only mount moved to a
    newer commit) filled it with old pages under the new size, and every new open read
    those: old bytes cut to the new size, until the caches were dropped."""
    big = max(photos, key=lambda p: p.stat().st_size).read_bytes()
    small = min(photos, key=lambda p: p.stat().st_size).read_bytes()
    follower = tmp_path / "follower"
    follower.mkdir()
    with mounted(lakefs_mount(dataset_path, mountpoint, "-o", "commit_interval=0.2"), mountpoint):
        img = mountpoint / "img"
        img.mkdir()
        (img / "x.jpg").write_bytes(big)
        (img / "y.jpg").write_bytes(big)
        # 1. The writer mount: rewritten in place while an old handle is open.
        old = os.open(img / "x.jpg", os.O_RDONLY)
        try:
            (img / "x.jpg").write_bytes(small)
            new = os.open(img / "x.jpg", os.O_RDONLY)
            os.pread(old, 1 << 20, 0)  # the old handle reads first
            assert os.pread(new, 1 << 20, 0) == small
            os.close(new)
        finally:
            os.close(old)
        eventually(lambda: read_via_cat(img / "x.jpg") == small)
        assert read_via_cat(img / "x.jpg") == small
        # 2. A read-only mount following the writer.
        with mounted(lakefs_mount(dataset_path, follower, "-o", "ro,refresh_interval=0.2"), follower):
            eventually(lambda: (follower / "img" / "y.jpg").exists())
            old = os.open(follower / "img" / "y.jpg", os.O_RDONLY)
            try:
                (img / "y.jpg").write_bytes(small)
                eventually(lambda: (follower / "img" / "y.jpg").stat().st_size == len(small))
                new = os.open(follower / "img" / "y.jpg", os.O_RDONLY)
                os.pread(old, 1 << 20, 0)
                assert os.pread(new, 1 << 20, 0) == small
                os.close(new)
            finally:
                os.close(old)
            eventually(lambda: read_via_cat(follower / "img" / "y.jpg") == small)


def test_appends_beside_an_open_reader_keep_every_line(dataset_path, mountpoint):
    """Found by review (``tail -f train.log`` beside a training loop appending to it): a
    handle opened before the appender read its snapshot of the old contents; its short
    reads cut the kernel's size of the file back (one size per file, not per handle), and
    each O_APPEND write then went to that old end, over the lines before it."""
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        logs = mountpoint / "logs"
        logs.mkdir()
        log = logs / "train.txt"
        log.write_text("epoch,loss\n")
        reader = os.open(log, os.O_RDONLY)
        try:
            seen = os.read(reader, 1 << 16)
            writer = os.open(log, os.O_WRONLY | os.O_APPEND)
            try:
                for i in range(4):
                    os.write(writer, f"{i},{1 / (i + 1):.3f}\n".encode())
                    os.fstat(reader)  # tail -f: a stat, then a read of what is new
                    seen += os.read(reader, 1 << 16)
            finally:
                os.close(writer)
            seen += os.read(reader, 1 << 16)
        finally:
            os.close(reader)
        want = "epoch,loss\n" + "".join(f"{i},{1 / (i + 1):.3f}\n" for i in range(4))
        assert log.read_text() == want
        assert read_via_cat(log).decode() == want
        assert seen.decode() == want  # as on a local disk: one file, read as it grows
    assert lakefs.load(dataset_path, read_only=True)["logs"]["train"].numpy() == want
