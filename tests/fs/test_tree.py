"""DatasetFS semantics without a kernel: fast checks of the rules in DESIGN §4."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest
from image_samples import png16
from PIL import Image
from tree_ops import errno_of, get, put

import lakefs
from lakefs.config import Config
from lakefs.errors import LakeFSError, StorageFullError
from lakefs.fs.files import FILE
from lakefs.fs.tree import DatasetFS


@pytest.fixture
def fs(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    yield DatasetFS(ds, Config())
    ds.close()


def test_pending_dir_becomes_tensor_from_first_file(fs, photos):
    fs.mkdir("/images", 0o755)
    assert fs.readdir("/images") == []
    put(fs, "/images/cat.jpg", photos[0].read_bytes())
    t = fs.ds.tensors["images"]
    assert (t.htype, t.sample_compression) == ("image", "jpeg")
    assert get(fs, "/images/cat.jpg") == photos[0].read_bytes()
    assert fs.getattr("/images/cat.jpg").size == photos[0].stat().st_size


def test_config_defaults_by_tensor_name(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(tensors={"labels": {"htype": "class_label", "class_names": ["cat", "dog"]}}))
    fs.mkdir("/labels", 0o755)
    put(fs, "/labels/a.txt", b"dog\n")
    assert ds.labels.htype == "class_label"
    assert ds.labels["a"].numpy().tolist() == [1]
    assert get(fs, "/labels/a.txt") == b"dog\n"
    ds.close()


@pytest.mark.parametrize("data, labels", [
    (b"cat\n", [0]), (b"cat", [0]), (b"cat\r\n", [0]), (b"\ncat\n\n", [0]), (b"  \ncat\ndog\n", [0, 1]),
    (b" cat\n", None), (b"cat \n", None), (b"\tcat\n", None), (b"cat\ndog \n", None), (b"cat\n\n", [0]),
])
def test_a_label_line_with_whitespace_around_its_name_is_refused(tmp_path, data, labels):
    """" cat\\n" written through the mount was stored as "cat", while the API refuses the
    class name " cat" and README says such a name is refused (found by QA). A line's own
    line break (echo adds one) and blank lines are fine, as README says."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    fs = DatasetFS(ds, Config())
    if labels is None:
        assert refused(fs, "/labels/a.txt", data) == errno.EINVAL
        assert errno_of(fs.getattr, "/labels/a.txt") == errno.ENOENT
        assert ds.labels.class_names == ["cat", "dog"]
    else:
        put(fs, "/labels/a.txt", data)
        assert ds.labels["a"].numpy().tolist() == labels
    ds.close()


# --- an image tensor's dtype from its first file -----------------------------------------

DEPTH = np.array([[0, 1000, 65535], [40000, 7, 300]], np.uint16)  # a 16-bit depth map
METRES = np.array([[0.25, 300.5, -1.0], [1e6, 2.5, 0.0]], np.float32)
IDS = np.array([[-5, 0, 70000], [1, 2, 3]], np.int32)
GRAY8 = np.array([[0, 128, 255], [1, 2, 3]], np.uint8)


def image_file(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, fmt)
    return out.getvalue()


def refused(fs: DatasetFS, path: str, data: bytes) -> int:
    """The errno a whole file written to ``path`` is refused with at its close."""
    fh = fs.create(path, 0o644)
    try:
        fs.write(fh, data, 0)
        return errno_of(fs.flush, fh)
    finally:
        fs.release(fh)


FIRST_FILES = [
    ("d.png", image_file(DEPTH), DEPTH),
    ("d.tif", image_file(DEPTH, "TIFF"), DEPTH),
    ("d.tif", image_file(METRES, "TIFF", "F"), METRES),
    ("d.tif", image_file(IDS, "TIFF", "I"), IDS),
]


@pytest.mark.parametrize("name,data,values", FIRST_FILES, ids=["png16", "tiff16", "tiff-float32", "tiff-int32"])
def test_a_first_image_uint8_cannot_hold_makes_a_tensor_of_its_dtype(fs, name, data, values):
    """cp of a folder of 16-bit PNG depth maps into a new directory failed at its first
    file ("decodes to uint16, which the tensor's dtype uint8 cannot hold"): the tensor
    that file made had Deep Lake's image dtype, uint8, instead of the file's."""
    fs.mkdir("/depth", 0o755)
    put(fs, f"/depth/{name}", data)
    t = fs.ds.depth
    assert (t.htype, t.dtype) == ("image", values.dtype.name)
    assert fs.getxattr(f"/depth/{name}", "user.lakefs.dtype") == values.dtype.name.encode()
    assert get(fs, f"/depth/{name}") == data
    got = t[0].numpy()
    assert got.dtype == values.dtype and got.shape == (*values.shape, 1)
    assert np.array_equal(got[..., 0], values)


def test_an_8_bit_image_after_a_16_bit_first_one_reads_as_uint16(fs):
    """Every 8-bit value fits uint16 exactly: the file is kept as it is and reads back
    as the tensor's dtype, as in a tensor created with dtype='uint16'."""
    fs.mkdir("/depth", 0o755)
    put(fs, "/depth/a.png", image_file(DEPTH))
    put(fs, "/depth/b.png", image_file(GRAY8))
    assert fs.ds.depth.dtype == "uint16" and get(fs, "/depth/b.png") == image_file(GRAY8)
    got = fs.ds.depth["b"].numpy()
    assert got.dtype == np.uint16 and np.array_equal(got[..., 0], GRAY8)


def test_an_image_tensor_made_by_an_8_bit_file_is_uint8_and_refuses_16_bit_ones(fs, photos):
    fs.mkdir("/gray", 0o755)
    fs.mkdir("/images", 0o755)
    put(fs, "/gray/a.png", image_file(GRAY8))
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    assert fs.ds.gray.dtype == "uint8" and fs.ds.images.dtype == "uint8"  # Deep Lake's default
    assert refused(fs, "/gray/d.png", image_file(DEPTH)) == errno.EINVAL
    assert [n for n, _ in fs.readdir("/gray")] == ["a.png"]
    assert fs.ds.gray.dtype == "uint8" and fs.ds.gray.num_samples == 1


def test_a_refused_first_image_decides_no_dtype(fs):
    """A 16-bit colour PNG (lakefs cannot decode it) leaves the directory pending: the
    next file decides the tensor and its dtype."""
    fs.mkdir("/depth", 0o755)
    assert refused(fs, "/depth/rgb.png", png16(3)) == errno.EINVAL
    assert "depth" not in fs.ds.tensors and fs.readdir("/depth") == []
    put(fs, "/depth/a.png", image_file(GRAY8))
    assert fs.ds.depth.dtype == "uint8"


def test_a_first_image_renamed_in_or_written_in_pieces_sets_the_dtype(tmp_path):
    """rsync's temp file renamed onto its name, and a file big enough to spill to a temp
    file while it is written (the tensor is made at the spill, before the file is whole)."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(spill_size=64 << 10))
    for d in ("/a", "/b"):
        fs.mkdir(d, 0o755)
    put(fs, "/a/.d.png.Xy12", image_file(DEPTH))
    fs.rename("/a/.d.png.Xy12", "/a/d.png")
    big = np.random.default_rng(0).integers(0, 65536, (300, 300), dtype=np.uint16)  # ~180 kB of noise
    data = image_file(big)
    assert len(data) > 2 * (64 << 10)
    fh = fs.create("/b/big.png", 0o644)
    for pos in range(0, len(data), 32 << 10):
        fs.write(fh, data[pos : pos + (32 << 10)], pos)
    assert ds.b.dtype is None  # made at the spill: the file decides it at its close
    fs.flush(fh)
    fs.release(fh)
    assert ds.a.dtype == "uint16" and ds.b.dtype == "uint16"
    assert get(fs, "/b/big.png") == data and np.array_equal(ds.b["big"].numpy()[..., 0], big)
    ds.close()


def test_a_dtype_in_the_config_wins_over_the_first_file(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(tensors={"depth": {"htype": "image", "sample_compression": "png", "dtype": "uint8"},
                                       "maps": {"htype": "image", "sample_compression": "png"}}))
    fs.mkdir("/depth", 0o755)
    fs.mkdir("/maps", 0o755)
    assert refused(fs, "/depth/d.png", image_file(DEPTH)) == errno.EINVAL
    assert "depth" not in ds.tensors and fs.readdir("/depth") == []
    put(fs, "/depth/a.png", image_file(GRAY8))
    assert ds.depth.dtype == "uint8"
    put(fs, "/maps/d.png", image_file(DEPTH))  # no dtype in its entry: the file's
    assert ds.maps.dtype == "uint16"
    ds.close()


def test_rsync_pattern_temp_file_renamed_onto_sample(fs, photos):
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    put(fs, "/images/.a.jpg.XyZ123", photos[1].read_bytes())
    assert ".a.jpg.XyZ123" in [n for n, _ in fs.readdir("/images")]
    assert fs.ds.images.num_samples == 1  # a staging file is not a sample
    fs.rename("/images/.a.jpg.XyZ123", "/images/a.jpg")
    assert [n for n, _ in fs.readdir("/images")] == ["a.jpg"]
    assert get(fs, "/images/a.jpg") == photos[1].read_bytes()
    assert fs.ds.images.num_samples == 1


def test_reads_of_a_file_being_written_see_the_buffer(fs):
    fs.mkdir("/notes", 0o755)
    fh = fs.create("/notes/a.txt", 0o644)
    fs.write(fh, b"hello ", 0)
    fs.write(fh, b"world", 6)
    assert fs.getattr("/notes/a.txt").size == 11
    reader = fs.open("/notes/a.txt", os.O_RDONLY)
    assert fs.read(reader, 100, 0) == b"hello world"
    fs.release(reader)
    fs.flush(fh)
    fs.release(fh)
    assert fs.ds["notes"]["a"].numpy() == "hello world"



def test_a_reader_opened_before_a_writer_reads_the_file_being_written(fs):
    """As on a local disk (one file, one size): its snapshot's short reads made the
    kernel cut the file's size back, and an O_APPEND writer wrote over its own lines
    (tests/fs/test_mount_cache.py has the mount)."""
    fs.mkdir("/notes", 0o755)
    put(fs, "/notes/log.txt", b"a\n")
    reader = fs.open("/notes/log.txt", os.O_RDONLY)  # tail -f
    assert fs.read(reader, 100, 0) == b"a\n"
    w = fs.open("/notes/log.txt", os.O_WRONLY | os.O_APPEND)
    fs.write(w, b"b\n", 2)
    assert fs.read(reader, 100, 2) == b"b\n"
    fs.flush(w)
    fs.release(w)
    assert fs.read(reader, 100, 0) == b"a\nb\n"
    fs.release(reader)
    assert get(fs, "/notes/log.txt") == b"a\nb\n"
    fs.commit()
    assert fs.ds["notes"]["log"].numpy() == "a\nb\n"

def test_bad_content_fails_at_flush_and_leaves_nothing(fs, photos):
    fs.mkdir("/images", 0o755)
    put(fs, "/images/good.jpg", photos[0].read_bytes())
    fh = fs.create("/images/bad.jpg", 0o644)
    fs.write(fh, b"plain text, not a jpeg", 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert [n for n, _ in fs.readdir("/images")] == ["good.jpg"]
    assert errno_of(fs.getattr, "/images/bad.jpg") == errno.ENOENT


def test_rename_rules(fs, photos):
    for d in ("/a", "/b"):
        fs.mkdir(d, 0o755)
    put(fs, "/a/x.jpg", photos[0].read_bytes())
    put(fs, "/b/y.jpg", photos[1].read_bytes())
    assert errno_of(fs.rename, "/a/x.jpg", "/b/x.jpg") == errno.EXDEV
    fs.rename("/a/x.jpg", "/a/x.jpg~")  # a sample becomes a staging file (editor backup)
    assert fs.ds.a.num_samples == 0 and get(fs, "/a/x.jpg~") == photos[0].read_bytes()
    fs.rename("/a/x.jpg~", "/a/z.jpeg")  # and back into a sample, under a new key
    assert get(fs, "/a/z.jpeg") == photos[0].read_bytes()
    assert fs.ds.a["z"].extension == ".jpeg"
    # Content is jpeg: not in place (EXDEV: mv copies, and the copy is stored as z.jpg)
    assert errno_of(fs.rename, "/a/z.jpeg", "/a/z.png") == errno.EXDEV
    assert get(fs, "/a/z.jpeg") == photos[0].read_bytes()


def test_directories(fs, monkeypatch):
    fs.mkdir("/train", 0o755)
    fs.mkdir("/train/labels", 0o755)
    assert "train" in fs.ds.groups
    put(fs, "/train/labels/a.json", b'{"x": 1}')
    assert errno_of(fs.rmdir, "/train") == errno.ENOTEMPTY
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_FILES", 0)  # (a small tensor becomes a group)
    assert errno_of(fs.mkdir, "/train/labels/sub", 0o755) == errno.EPERM
    assert errno_of(fs.mkdir, "/train", 0o755) == errno.EEXIST
    fs.unlink("/train/labels/a.json")
    fs.rmdir("/train/labels")
    fs.rmdir("/train")
    assert fs.readdir("/") == []
    assert errno_of(fs.rmdir, "/nope") == errno.ENOENT


def test_names_and_read_only(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    assert errno_of(fs.create, "/" + "x" * 256, 0o644) == errno.ENAMETOOLONG
    assert errno_of(fs.create, "/missing/a.txt", 0o644) == errno.ENOENT
    assert errno_of(fs.symlink if hasattr(fs, "symlink") else fs.unlink, "/nothing") == errno.ENOENT
    put(fs, "/README.md", b"# hi\n")
    ds.close()
    ro = lakefs.load(tmp_path / "ds", read_only=True)
    rfs = DatasetFS(ro, Config())
    assert get(rfs, "/README.md") == b"# hi\n"
    assert errno_of(rfs.create, "/b.txt", 0o644) == errno.EROFS
    assert errno_of(rfs.unlink, "/README.md") == errno.EROFS
    assert errno_of(rfs.open, "/README.md", os.O_WRONLY) == errno.EROFS


def test_truncate_and_utimens_and_chmod(fs):
    fs.mkdir("/notes", 0o755)
    put(fs, "/notes/a.txt", b"hello world")
    fs.truncate("/notes/a.txt", 5)
    assert get(fs, "/notes/a.txt") == b"hello"
    fs.utimens("/notes/a.txt", 1_000_000_000_123)
    fs.chmod("/notes/a.txt", 0o100600)
    attr = fs.getattr("/notes/a.txt")
    assert (attr.mtime_ns, attr.mode, attr.size) == (1_000_000_000_123, 0o600, 5)


def test_xattrs(fs, photos):
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    assert "user.lakefs.shape" in fs.listxattr("/images/a.jpg")
    assert fs.getxattr("/images/a.jpg", "user.lakefs.compression") == b"jpeg"
    assert errno_of(fs.getxattr, "/images/a.jpg", "security.selinux") == errno.ENODATA


def test_large_file_is_tiled_and_read_in_pieces(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(chunk_size=64 << 10))
    fs.mkdir("/blobs", 0o755)
    data = os.urandom(1 << 20) + b"tail"
    put(fs, "/blobs/big.bin", data)
    sample = ds.blobs["big"]
    assert sample.is_large and sample.size == len(data)
    fh = fs.open("/blobs/big.bin", os.O_RDONLY)
    assert fs.read(fh, 100_000, 300_000) == data[300_000:400_000]
    assert fs.read(fh, 1 << 20, len(data) - 10) == data[-10:]
    fs.release(fh)
    ds.flush()
    reopened = lakefs.load(tmp_path / "ds", read_only=True)
    assert reopened.blobs["big"].read_file(65_530, 20) == data[65_530:65_550]
    assert reopened.blobs["big"].file_bytes() == data
    ds.close()


def test_a_write_racing_a_flush_is_not_lost():
    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage

    ds = Dataset(MemoryStorage(), create=True)
    fs = DatasetFS(ds)
    fh1 = fs.create("/README", 0o644)
    fh2 = fs.open("/README", os.O_WRONLY)
    fs.write(fh1, b"hello", 0)
    original = ds.write_file

    def racing(path, data, **kw):  # another FUSE thread writes while flush stores
        fs.write(fh2, b" world", 5)
        return original(path, data, **kw)

    ds.write_file = racing
    fs.fsync(fh1)  # stores it now (a staging file's close leaves it held until the commit)
    ds.write_file = original
    fs.release(fh1)
    fs.release(fh2)
    fs.commit()
    assert ds.read_file("README") == b"hello world"


def test_rename_keeps_the_target_when_the_new_name_is_refused(fs, photos):
    fs.mkdir("/a", 0o755)
    put(fs, "/a/x.jpg", photos[0].read_bytes())
    put(fs, "/a/y.jpg", photos[1].read_bytes())
    assert errno_of(fs.rename, "/a/x.jpg", "/a/y.png") == errno.EXDEV  # (a JPEG shows as .jpg)
    assert get(fs, "/a/y.jpg") == photos[1].read_bytes()
    fs.rename("/a/x.jpg", "/a/y.jpg")  # replaces y
    assert [n for n, _ in fs.readdir("/a")] == ["y.jpg"]
    assert get(fs, "/a/y.jpg") == photos[0].read_bytes()


def test_a_sample_renamed_to_a_name_its_tensor_shows_as_its_own_stays_as_it_is(fs, photos):
    """Regression (QA: data loss): ``mv a.jpg a.png`` in a jpeg tensor answered EXDEV;
    mv's copy to a.png was stored into row a as a.jpg, and its unlink of a.jpg then
    removed the sample. The rename is done and changes nothing (a file at the new name
    is replaced, as by any rename); the kernel is told to drop the new name it moved."""
    forgotten: list[tuple[str, bool]] = []
    fs.forget_cached = lambda path, name=False: forgotten.append((path, name))
    png = io.BytesIO()
    Image.open(photos[1]).save(png, "PNG")
    fs.mkdir("/a", 0o755)
    fs.mkdir("/m", 0o755)
    put(fs, "/a/x.jpg", photos[0].read_bytes())
    put(fs, "/m/P.png", png.getvalue())
    fh = fs.create("/a/x.png", 0o644)  # being written under that name: replaced by the rename
    fs.write(fh, b"not all of it", 0)
    fs.rename("/a/x.jpg", "/a/x.png")
    fs.release(fh)
    fs.rename("/m/P.png", "/m/P.jpg")
    assert forgotten == [("/a/x.png", True), ("/m/P.jpg", True)]
    for d, name, gone, data in (("/a", "x.jpg", "x.png", photos[0].read_bytes()),
                                ("/m", "P.png", "P.jpg", png.getvalue())):
        assert names(fs, d) == [name] and get(fs, f"{d}/{name}") == data
        assert errno_of(fs.getattr, f"{d}/{gone}") == errno.ENOENT
    # The kernel may still hold the new name a moment: it takes a chmod for the sample,
    # as a name a file was written under does.
    fs.chmod("/a/x.png", 0o600)
    assert stat.S_IMODE(fs.getattr("/a/x.jpg").mode) == 0o600
    # A rename its stored form can show, or to another key, is a rename still.
    fs.rename("/a/x.jpg", "/a/x.JPG")
    assert names(fs, "/a") == ["x.JPG"]
    assert errno_of(fs.rename, "/a/x.JPG", "/a/y.png") == errno.EXDEV  # (mv copies: y.jpg)
    fs.commit()
    assert fs.ds.a["x"].tobytes() == photos[0].read_bytes() and fs.ds.m["P"].tobytes() == png.getvalue()


def test_a_directory_with_files_open_for_writing_is_not_renamed(fs):
    fs.mkdir("/notes", 0o755)
    fh = fs.create("/notes/a.txt", 0o644)
    fs.write(fh, b"draft", 0)
    assert errno_of(fs.rename, "/notes", "/texts") == errno.EBUSY
    fs.flush(fh)
    fs.release(fh)
    fs.rename("/notes", "/texts")
    assert get(fs, "/texts/a.txt") == b"draft"


def test_listing_is_kept_until_the_dataset_changes(fs):
    """The committed part of a listing is remembered (a warm ls -l of a big tensor), so
    every change through the filesystem must replace it, and files still being written
    are shown with their live size, never remembered."""
    fs.mkdir("/t", 0o755)
    put(fs, "/t/a.txt", b"one")
    put(fs, "/t/b.txt", b"two")

    def sizes() -> dict[str, int]:
        return {n: a.size for n, a in fs.readdir("/t")}

    first = fs.listing("/t")
    assert fs.listing("/t") is first and sizes() == {"a.txt": 3, "b.txt": 3}
    put(fs, "/t/a.txt", b"longer")  # rewrite
    assert sizes() == {"a.txt": 6, "b.txt": 3}
    fs.rename("/t/b.txt", "/t/c.txt")
    assert sizes() == {"a.txt": 6, "c.txt": 3}
    fs.unlink("/t/a.txt")
    assert sizes() == {"c.txt": 3}
    fs.utimens("/t/c.txt", 123_000_000_000)
    fs.chmod("/t/c.txt", 0o600)
    assert fs.getattr("/t/c.txt") == fs.listing("/t").attr(0) == (FILE, 3, 123_000_000_000, 0o600)
    put(fs, "/t/.c.txt.tmp", b"staged")  # not a sample name: a staged file, listed too
    assert sizes() == {"c.txt": 3, ".c.txt.tmp": 6}
    fh = fs.create("/t/d.txt", 0o644)  # being written: shown, growing, not remembered
    fs.write(fh, b"x", 0)
    assert sizes()["d.txt"] == 1
    fs.write(fh, b"yz", 1)
    assert sizes()["d.txt"] == 3
    fs.release(fh)
    assert sizes() == {"c.txt": 3, ".c.txt.tmp": 6, "d.txt": 3}
    assert fs.getattr("/t/d.txt").size == 3
    fs.mkdir("/u", 0o755)
    assert [n for n, _ in fs.readdir("/")] == ["t", "u"]
    fs.rmdir("/u")
    assert [n for n, _ in fs.readdir("/")] == ["t"]


def test_getattr_matches_the_listing_for_every_sample(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("t", htype="text")
    for i in range(300):
        t[f"k{i:03d}"] = "x" * i
    t.pop("k007")
    fs = DatasetFS(ds, Config())
    want = {f"k{i:03d}.txt": (FILE, t[i].size, t[i].mtime_ns, t[i].mode) for i in range(300) if i != 7}
    # One by one: the first lookups go to the index, the rest to the listing they build.
    assert {name: fs.getattr("/t/" + name) for name in want} == want
    assert "t" in fs._listings
    assert dict(fs.readdir("/t")) == want
    assert errno_of(fs.getattr, "/t/k007.txt") == errno.ENOENT
    assert errno_of(fs.getattr, "/t/k001.json") == errno.ENOENT  # the key exists, not this extension
    assert errno_of(fs.getattr, "/t/k001.txt/x") == errno.ENOTDIR
    # Changes are seen at once by lookups answered from a listing.
    put(fs, "/t/k001.txt", b"new content")
    put(fs, "/t/k007.txt", b"back")
    fs.unlink("/t/k002.txt")
    put(fs, "/t/.k003.txt.tmp", b"staged")
    fs.rename("/t/k004.txt", "/t/k999.txt")
    for name in list(want)[10:]:
        fs.getattr("/t/" + name)
    assert "t" in fs._listings
    assert fs.getattr("/t/k001.txt").size == len(b"new content")
    assert fs.getattr("/t/k007.txt").size == 4
    assert fs.getattr("/t/.k003.txt.tmp").size == 6
    assert fs.getattr("/t/k999.txt") == want["k004.txt"]
    for gone in ("/t/k002.txt", "/t/k004.txt"):
        assert errno_of(fs.getattr, gone) == errno.ENOENT
    ds.close()


def test_listings_are_bounded(fs, monkeypatch):
    """Kept listings hold at most LISTING_CACHE entries in all; a bigger directory is
    listed afresh each time and its lookups go to the index, with the same answers."""
    from lakefs.fs import tree

    monkeypatch.setattr(tree, "LISTING_CACHE", 100)
    for d, n in (("/small", 60), ("/other", 38), ("/big", 150)):
        fs.mkdir(d, 0o755)
        for i in range(n):
            put(fs, f"{d}/k{i:03d}.txt", b"x" * i)
    assert len(fs.readdir("/small")) == 60 and len(fs.readdir("/other")) == 38
    assert set(fs._listings) == {"small", "other"}
    assert len(fs.readdir("/big")) == 150 and set(fs._listings) == {"small", "other"}
    assert [fs.getattr(f"/big/k{i:03d}.txt").size for i in range(150)] == list(range(150))
    assert set(fs._listings) == {"small", "other"}
    fs.readdir("/")  # 3 more entries: over 100 in all, the oldest listing goes
    assert set(fs._listings) == {"other", ""}


# --- held staging files -------------------------------------------------------------


class CountingStorage:
    """Counts puts of staged files (``files/`` keys) on the dataset's storage."""

    def __init__(self, ds):
        self.staged_puts = 0
        inner_put, inner_put_from = ds.storage.put, ds.storage.put_from

        def put(key, data, **kw):
            self.staged_puts += key.startswith("files/")
            return inner_put(key, data, **kw)

        def put_from(key, f, size, **kw):
            self.staged_puts += key.startswith("files/")
            return inner_put_from(key, f, size, **kw)

        ds.storage.put, ds.storage.put_from = put, put_from


def test_rsync_temp_file_is_stored_once_as_the_sample(fs, photos):
    """rsync's pattern: write .name.XXXXXX, close, set times and mode, rename. The closed
    staging file waits in memory, so it is stored once, as the sample: never put as a
    staged file, read back and deleted."""
    fs.mkdir("/img", 0o755)
    put(fs, "/img/first.jpg", photos[0].read_bytes())
    counting = CountingStorage(fs.ds)
    data = photos[1].read_bytes()
    put(fs, "/img/.b.jpg.Xy12Ab", data, mode=0o600)
    assert "img/.b.jpg.Xy12Ab" not in fs.ds._manifest.files  # held, not stored
    assert fs.getattr("/img/.b.jpg.Xy12Ab").size == len(data)
    assert dict(fs.readdir("/img"))[".b.jpg.Xy12Ab"].size == len(data)
    assert get(fs, "/img/.b.jpg.Xy12Ab") == data
    fs.utimens("/img/.b.jpg.Xy12Ab", 1_600_000_000_123_456_789)
    fs.chmod("/img/.b.jpg.Xy12Ab", 0o640)
    fs.rename("/img/.b.jpg.Xy12Ab", "/img/b.jpg")
    assert counting.staged_puts == 0
    assert errno_of(fs.getattr, "/img/.b.jpg.Xy12Ab") == errno.ENOENT
    assert fs.getattr("/img/b.jpg") == (FILE, len(data), 1_600_000_000_123_456_789, 0o640)
    fs.commit()
    assert counting.staged_puts == 0 and not fs.ds._manifest.files
    assert fs.ds.img["b"].tobytes() == data


def test_held_file_is_stored_by_the_next_commit_and_survives_a_remount(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    put(fs, "/README", b"hello")
    assert "README" not in ds._manifest.files
    fs.commit()
    assert ds.read_file("README") == b"hello" and not fs._held
    put(fs, "/NOTES", b"kept at unmount")
    fs.shutdown()
    ds.close()
    back = lakefs.load(tmp_path / "ds", read_only=True)
    assert back.read_file("NOTES") == b"kept at unmount"


def test_periodic_commit_stores_held_files(tmp_path):
    import time

    ds = lakefs.empty(tmp_path / "ds", commit_interval=0.05)
    fs = DatasetFS(ds, Config())
    put(fs, "/README", b"durable within the interval")
    deadline = time.monotonic() + 10
    # (published in the manifest first, committed just after: wait for the commit)
    while "README" not in lakefs.load(tmp_path / "ds", read_only=True).files and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lakefs.load(tmp_path / "ds", read_only=True).read_file("README") == b"durable within the interval"
    ds.close()


def test_held_file_refused_as_a_sample_stays_under_its_old_name(fs, photos):
    fs.mkdir("/img", 0o755)
    put(fs, "/img/first.jpg", photos[0].read_bytes())
    put(fs, "/img/.c.jpg.tmp", b"not a jpeg")
    # EXDEV, not EINVAL (which mv words "cannot move to a subdirectory of itself"): mv
    # and rsync copy, and the copy's close gives "Invalid argument".
    assert errno_of(fs.rename, "/img/.c.jpg.tmp", "/img/c.jpg") == errno.EXDEV
    assert get(fs, "/img/.c.jpg.tmp") == b"not a jpeg"
    assert errno_of(fs.getattr, "/img/c.jpg") == errno.ENOENT
    fs.commit()
    assert fs.ds.read_file("img/.c.jpg.tmp") == b"not a jpeg"


def test_held_file_unlinked_reopened_or_replaced(fs):
    counting = CountingStorage(fs.ds)
    put(fs, "/gone", b"x")
    fs.unlink("/gone")
    assert errno_of(fs.getattr, "/gone") == errno.ENOENT
    put(fs, "/grown", b"abc")
    fh = fs.open("/grown", os.O_WRONLY)
    fs.write(fh, b"def", 3)
    fs.release(fh)
    put(fs, "/a", b"from a")
    put(fs, "/b", b"old b")
    fs.rename("/a", "/b")  # onto another held file: it is replaced, never stored
    assert "b" in fs._held and counting.staged_puts == 0  # a staging name: still held
    fs.commit()
    assert counting.staged_puts == 2
    assert fs.ds.read_file("grown") == b"abcdef" and fs.ds.read_file("b") == b"from a"
    assert sorted(fs.ds._manifest.files) == ["b", "grown"] and not fs._held and not fs._open
    put(fs, "/d", b"new d")
    fs.rename("/d", "/b")  # onto a stored file: shown at once, stored at the commit
    assert get(fs, "/b") == b"new d" and dict(fs.readdir("/"))["b"].size == 5
    assert fs.ds.read_file("b") == b"from a"  # until then the stored one stays (old or new)
    fs.unlink("/b")
    assert errno_of(fs.getattr, "/b") == errno.ENOENT  # the older stored b does not come back
    fs.commit()
    assert sorted(fs.ds._manifest.files) == ["grown"] and counting.staged_puts == 2


def test_directory_with_held_files_can_be_renamed_at_once(fs):
    fs.mkdir("/d", 0o755)
    put(fs, "/d/.tmp1", b"1")
    put(fs, "/d/.tmp2", b"2")
    fs.rename("/d", "/e")  # held files are closed: not "busy"
    assert get(fs, "/e/.tmp1") == b"1" and get(fs, "/e/.tmp2") == b"2"


def test_held_files_are_bounded(fs, monkeypatch):
    from lakefs.fs import tree

    monkeypatch.setattr(tree, "HOLD_BYTES", 10)
    put(fs, "/small", b"12345")
    put(fs, "/big", b"12345678901")  # over the bound alone: stored at close
    put(fs, "/next", b"123456")  # 5 + 6 > 10: stored at close
    assert sorted(fs.ds._manifest.files) == ["big", "next"] and list(fs._held) == ["small"]
    monkeypatch.setattr(tree, "HOLD_FILES", 1)
    put(fs, "/other", b"1")
    assert "other" in fs.ds._manifest.files


def test_a_held_file_that_cannot_be_stored_fails_the_commit_and_stays_held(tmp_path):
    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage
    from lakefs.storage.faults import FaultyStorage

    storage = FaultyStorage(MemoryStorage(), fail_at=10**9, mode="enospc")
    fs = DatasetFS(Dataset(storage, create=True), Config())
    put(fs, "/README", b"hello")
    storage.fail_at = storage.count + 1  # the next storage call fails: the staged put
    assert errno_of(fs.commit) == errno.ENOSPC
    assert get(fs, "/README") == b"hello" and "README" in fs._held  # kept for the next try
    storage.fail_at = 10**9
    fs.commit()
    assert fs.ds.read_file("README") == b"hello" and not fs._held and not fs._open


def test_held_files_are_uploaded_without_the_filesystem_lock(tmp_path):
    """On an object store each staged upload is a network call: the commit that stores
    held files must not keep the mount's other operations waiting for them."""
    import threading

    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage
    from lakefs.storage.base import StorageWrapper

    class SlowPuts(StorageWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.putting, self.go_on = threading.Event(), threading.Event()

        def put(self, key, data, **kw):
            if key.startswith("files/") and not self.putting.is_set():  # the first one is slow
                self.putting.set()
                assert self.go_on.wait(10)
            self.inner.put(key, data, **kw)

    storage = SlowPuts(MemoryStorage())
    fs = DatasetFS(Dataset(storage, create=True), Config())
    put(fs, "/a", b"first")
    committer = threading.Thread(target=fs.commit)
    committer.start()
    try:
        assert storage.putting.wait(10)
        done = threading.Event()

        def other_operations():
            fs.getattr("/a")
            put(fs, "/b", b"meanwhile")
            fs.rename("/a", "/c")  # renamed while its upload runs: that upload is dropped
            done.set()

        threading.Thread(target=other_operations, daemon=True).start()
        assert done.wait(5), "file operations waited for the commit's upload"
    finally:
        storage.go_on.set()
        committer.join(10)
    fs.commit()
    assert sorted(fs.ds._manifest.files) == ["b", "c"]
    assert fs.ds.read_file("c") == b"first" and fs.ds.read_file("b") == b"meanwhile"


def test_rename_of_a_stored_file_onto_a_held_one_replaces_it(fs):
    """(review) The source is not open: the held file at the target must still go."""
    put(fs, "/README.new", b"NEW CONTENT")
    fs.commit()
    put(fs, "/README", b"old held")
    fs.rename("/README.new", "/README")
    assert get(fs, "/README") == b"NEW CONTENT" and fs.getattr("/README").size == 11
    fs.commit()
    assert fs.ds.read_file("README") == b"NEW CONTENT" and not fs._held


def test_truncate_of_a_held_file_past_the_limits_stores_it(fs, monkeypatch):
    from lakefs.fs import tree

    put(fs, "/a", b"12345")
    fs.truncate("/a", 3)  # within the limits: still held, with its new size
    assert fs._held == {"a": 3} and fs._held_bytes == 3
    monkeypatch.setattr(tree, "HOLD_BYTES", 100)
    fs.truncate("/a", 1000)  # past them: stored now, never read back at every commit
    assert not fs._held and fs._held_bytes == 0
    assert fs.ds.read_file("a") == b"123" + bytes(997)


def test_failed_store_of_a_held_file_renamed_over_a_stored_one_keeps_the_old(tmp_path):
    """(review) rename(2) gives the old or the new file, never neither."""
    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage
    from lakefs.storage.faults import FaultyStorage

    storage = FaultyStorage(MemoryStorage(), fail_at=10**9, mode="enospc", sticky=True)
    ds = Dataset(storage, create=True)
    fs = DatasetFS(ds, Config())
    put(fs, "/README", b"v1")
    fs.commit()
    put(fs, "/.README.tmp", b"v2")
    fs.rename("/.README.tmp", "/README")
    storage.fail_at = storage.count + 1  # every storage call from now on fails
    with pytest.raises(StorageFullError):  # (the rename changed the root's mtime: a commit)
        fs.shutdown()  # the held v2 cannot be stored: logged, and the commit fails
    assert ds.read_file("README") == b"v1"


def test_a_held_file_being_rewritten_is_not_committed_half_written(fs):
    """(review) Reopened for writing, a held file is an ordinary open file again."""
    put(fs, "/conf.json", b'{"complete": true}')
    fs.commit()
    put(fs, "/conf.json", b'{"v": 2}')
    fh = fs.open("/conf.json", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, b'{"compl', 0)
    fs.commit()  # the half-written buffer is not stored
    assert fs.ds.read_file("conf.json") == b'{"complete": true}'
    fs.write(fh, b'ete": 3}', 7)
    fs.flush(fh)
    fs.release(fh)
    fs.commit()
    assert fs.ds.read_file("conf.json") == b'{"complete": 3}'


def test_the_hold_decided_at_flush_stands_at_release(fs, monkeypatch):
    """(review) flush decides: a file it holds is not stored at release (where an error
    could only be logged) because other files filled the limits meanwhile."""
    from lakefs.fs import tree

    monkeypatch.setattr(tree, "HOLD_BYTES", 10)
    fh = fs.create("/x", 0o644)
    fs.write(fh, b"12345678", 0)
    fs.flush(fh)
    put(fs, "/y", b"123")  # over the limit with x held: stored at its close
    fs.release(fh)
    assert list(fs._held) == ["x"] and "y" in fs.ds._manifest.files


def test_rename_of_a_held_file_a_reader_has_open(fs, photos):
    fs.mkdir("/img", 0o755)
    put(fs, "/img/first.jpg", photos[0].read_bytes())
    data = photos[1].read_bytes()
    put(fs, "/img/.b.tmp", data)
    fh = fs.open("/img/.b.tmp", os.O_RDONLY)
    fs.rename("/img/.b.tmp", "/img/b.jpg")  # stored as the sample; the reader keeps reading
    assert fs.read(fh, 1 << 20, 0) == data
    fs.release(fh)
    assert not fs._held and fs._held_bytes == 0 and not fs._open
    assert get(fs, "/img/b.jpg") == data


def test_compact_with_a_mount_attached_does_not_deadlock(tmp_path):
    """(review) compact held the dataset lock when the commit hook takes the mount's,
    while the mount's operations take the mount's lock, then the dataset's."""
    import threading

    from lakefs.dataset import maintenance

    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    put(fs, "/README", b"x")
    compacted, made = threading.Event(), threading.Event()

    def mkdirs():
        for i in range(200):
            fs.mkdir(f"/d{i}", 0o755)
        made.set()

    threading.Thread(target=lambda: (maintenance.compact(ds), compacted.set()), daemon=True).start()
    threading.Thread(target=mkdirs, daemon=True).start()
    assert compacted.wait(10) and made.wait(10), "deadlock"  # (the stuck threads are daemons)
    assert ds.read_file("README") == b"x"
    ds.close()


def test_a_readers_close_does_not_hold_a_file_still_being_written(fs):
    """(second review) Only the last writer's close holds a file."""
    put(fs, "/conf.json", b'{"complete": true}')
    fs.commit()
    w = fs.open("/conf.json", os.O_WRONLY | os.O_TRUNC)
    fs.write(w, b'{"compl', 0)
    r = fs.open("/conf.json", os.O_RDONLY)
    fs.flush(r)
    fs.release(r)
    w2 = fs.open("/conf.json", os.O_WRONLY)  # a second writer's close does not hold it either
    fs.flush(w2)
    fs.release(w2)
    fs.commit()
    assert fs.ds.read_file("conf.json") == b'{"complete": true}' and not fs._held
    fs.write(w, b'ete": 3}', 7)
    fs.flush(w)
    fs.release(w)
    fs.commit()
    assert fs.ds.read_file("conf.json") == b'{"complete": 3}'


def test_a_file_growing_after_a_flush_is_not_held_past_the_limits(tmp_path):
    """(second review) `cmd > build.log`: every child's exit flushes the shared handle."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(spill_size=1000))
    fh = fs.create("/build.log", 0o644)
    fs.write(fh, b"x" * 10, 0)
    fs.flush(fh)  # held at 10 bytes
    assert fs._held == {"build.log": 10}
    fs.write(fh, b"y" * 5000, 10)  # spills to a temp file
    fs.commit()  # a file with a writer is left alone (not read whole into memory)
    assert "build.log" not in ds._manifest.files
    fs.flush(fh)  # spilled: still held, in its temp file, taking no memory
    assert fs._held == {"build.log": 0} and fs._held_bytes == 0
    fs.release(fh)
    fs.commit()  # stored from its temp file
    assert not fs._held and fs._held_bytes == 0
    assert ds.read_file("build.log") == b"x" * 10 + b"y" * 5000
    ds.close()


def test_ftruncate_through_an_unlinked_files_handle_leaves_the_new_file_alone(fs, monkeypatch):
    """(second review) The old handle's buffer is detached: the held file now at that name
    is another file."""
    from lakefs.fs import tree

    monkeypatch.setattr(tree, "HOLD_BYTES", 100)
    fh = fs.create("/.t", 0o644)
    fs.write(fh, b"old", 0)
    fs.flush(fh)
    fs.unlink("/.t")
    put(fs, "/.t", b"NEW")
    fs.truncate("/.t", 1000, fh)
    assert ".t" in fs._held and ".t" not in fs.ds._manifest.files  # nothing stored
    fs.release(fh)
    assert get(fs, "/.t") == b"NEW"
    fs.commit()
    assert fs.ds.read_file(".t") == b"NEW"


def test_compact_keeps_a_staged_file_put_but_not_yet_published(tmp_path):
    """(second review) The commit hook uploads a held file, then publishes it: a compact
    in between must not delete the upload as unreferenced."""
    from lakefs.dataset import maintenance

    ds = lakefs.empty(tmp_path / "ds")
    file_id = ds.stage_file(b"uploaded", 8)
    maintenance.compact(ds)
    ds.publish_file("README", file_id, 8)
    ds.close()
    assert lakefs.load(tmp_path / "ds", read_only=True).read_file("README") == b"uploaded"


def test_a_held_or_open_file_is_not_a_directory(fs):
    """(soak differential) "d/a" under a held file d is ENOTDIR, as under a stored one."""
    put(fs, "/d", b"")
    assert "d" in fs._held
    assert errno_of(fs.create, "/d/a", 0o644) == errno.ENOTDIR
    assert errno_of(fs.mkdir, "/d/e", 0o755) == errno.ENOTDIR
    fh = fs.create("/w", 0o644)  # being written
    assert errno_of(fs.create, "/w/a", 0o644) == errno.ENOTDIR
    fs.release(fh)


# --- an open file keeps reading what it opened (review of the fs layer) ----------------


def test_an_open_sample_reads_its_bytes_after_unlink_rename_or_replace(tmp_path, photos):
    """Found by review: the Sample an open handle holds saw its row change (the index
    entry was a numpy view), so reads failed with EIO or came back torn."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config(chunk_size=64 << 10))
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    put(fs, "/images/b.jpg", photos[1].read_bytes())
    fs.commit()
    fh_a, fh_b = fs.open("/images/a.jpg", os.O_RDONLY), fs.open("/images/b.jpg", os.O_RDONLY)
    fs.unlink("/images/a.jpg")
    fs.rename("/images/b.jpg", "/images/c.jpg")
    assert fs.read(fh_a, 1 << 30, 0) == photos[0].read_bytes()
    assert fs.read(fh_b, 1 << 30, 0) == photos[1].read_bytes()
    fs.release(fh_a), fs.release(fh_b)
    # A big (tiled) sample replaced rsync-style halfway through a reader's pass.
    fs.mkdir("/blobs", 0o755)
    old, new = b"O" * (1 << 20), b"N" * (1 << 20)
    put(fs, "/blobs/big.bin", old)
    fs.commit()
    fh = fs.open("/blobs/big.bin", os.O_RDONLY)
    first = bytes(fs.read(fh, 1 << 19, 0))
    put(fs, "/blobs/.big.bin.XyZ", new)
    fs.rename("/blobs/.big.bin.XyZ", "/blobs/big.bin")
    assert first + bytes(fs.read(fh, 1 << 19, 1 << 19)) == old
    fs.release(fh)
    assert get(fs, "/blobs/big.bin") == new
    ds.close()


def test_an_open_plain_file_reads_its_bytes_after_rename_or_unlink(fs):
    put(fs, "/README.md", b"# card")
    put(fs, "/NOTES", b"notes")
    fs.commit()
    fh_r, fh_n = fs.open("/README.md", os.O_RDONLY), fs.open("/NOTES", os.O_RDONLY)
    fs.rename("/README.md", "/README.txt")
    fs.unlink("/NOTES")
    assert fs.read(fh_r, 100, 0) == b"# card" and fs.read(fh_n, 100, 0) == b"notes"
    fs.release(fh_r), fs.release(fh_n)


# --- a file still being written is never stored half written (review of the fs layer) --


def test_rename_of_a_file_being_written_moves_it_unstored(fs, photos):
    """mv (or rm: libfuse renames an open file to .fuse_hidden*) while a copy is still
    writing used to store the half-written JPEG, fail, and drop the writer's file while
    its close reported success."""
    jpeg = photos[0].read_bytes()
    fs.mkdir("/images", 0o755)
    put(fs, "/images/z.jpg", photos[1].read_bytes())
    fh = fs.create("/images/a.jpg", 0o644)
    fs.write(fh, jpeg[:1000], 0)
    fs.rename("/images/a.jpg", "/images/b.jpg")
    assert fs.getattr("/images/b.jpg").size == 1000
    assert errno_of(fs.getattr, "/images/a.jpg") == errno.ENOENT
    fs.write(fh, jpeg[1000:], 1000)
    fs.flush(fh)
    fs.release(fh)
    assert sorted(n for n, _ in fs.readdir("/images")) == ["b.jpg", "z.jpg"]
    assert get(fs, "/images/b.jpg") == jpeg
    # A committed file rewritten by one handle and renamed meanwhile: the old version
    # moves along, so a refused close keeps it (at the new name).
    fh = fs.open("/images/b.jpg", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, b"not a jpeg", 0)
    fs.rename("/images/b.jpg", "/images/c.jpg")
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert get(fs, "/images/c.jpg") == jpeg
    assert sorted(n for n, _ in fs.readdir("/images")) == ["c.jpg", "z.jpg"]
    # Across tensors a file being written is EXDEV, like a stored one.
    fs.mkdir("/other", 0o755)
    put(fs, "/other/o.jpg", jpeg)
    fh = fs.create("/images/d.jpg", 0o644)
    fs.write(fh, jpeg[:10], 0)
    assert errno_of(fs.rename, "/images/d.jpg", "/other/d.jpg") == errno.EXDEV
    fs.write(fh, jpeg[10:], 10)
    fs.flush(fh)
    fs.release(fh)
    assert get(fs, "/images/d.jpg") == jpeg


def test_fsync_never_refuses_a_file_another_handle_is_writing(fs, photos):
    jpeg = photos[0].read_bytes()
    fs.mkdir("/images", 0o755)
    put(fs, "/images/z.jpg", photos[1].read_bytes())
    w = fs.create("/images/a.jpg", 0o644)
    fs.write(w, jpeg[:1000], 0)
    r = fs.open("/images/a.jpg", os.O_RDONLY)
    fs.fsync(r)  # a reader's fsync: the dataset is committed, the half-written file is not
    fs.release(r)
    assert errno_of(fs.fsync, w) == errno.EINVAL  # the writer's own: refused, file kept open
    fs.write(w, jpeg[1000:], 1000)
    fs.flush(w)
    fs.release(w)
    assert get(fs, "/images/a.jpg") == jpeg


def test_truncate_of_a_file_only_readers_have_open_is_stored(fs):
    fs.mkdir("/notes", 0o755)
    w = fs.create("/notes/a.txt", 0o644)
    fs.write(w, b"hello world\n", 0)
    r = fs.open("/notes/a.txt", os.O_RDONLY)  # tail -f, a loader
    fs.flush(w)
    fs.release(w)
    fs.truncate("/notes/a.txt", 0)
    fs.commit()
    assert lakefs.load(fs.ds.storage.root, read_only=True).notes["a"].file_bytes() == b""
    fs.release(r)


# --- refusals change nothing (review of the fs layer) ----------------------------------


def names(fs: DatasetFS, d: str) -> list[str]:
    return sorted(n for n, _ in fs.readdir(d))


def test_a_second_name_for_a_held_row_key_is_a_plain_file(fs, tmp_path):
    """report.docx beside report.pdf in one tensor (one file per row) is a plain file,
    not "File exists": cp -r of a folder with model.pt and model.json, SQLite's
    index.db-journal beside index.db (found by review). It was a silent replace before
    it was EEXIST; the sample stays as it is."""
    fs.mkdir("/docs", 0o755)
    put(fs, "/docs/report.pdf", b"%PDF-1.4")
    put(fs, "/docs/report.docx", b"docx bytes", mode=0o600)
    put(fs, "/docs/notes.txt", b"notes")
    fs.rename("/docs/notes.txt", "/docs/report.txt")  # a plain file too: renamed as one
    assert names(fs, "/docs") == ["report.docx", "report.pdf", "report.txt"]
    t = fs.ds.tensors["docs"]
    assert t.num_samples == 1 and t["report"].file_bytes() == b"%PDF-1.4"
    assert get(fs, "/docs/report.docx") == b"docx bytes" and get(fs, "/docs/report.txt") == b"notes"
    assert fs.getattr("/docs/report.docx").size == len(b"docx bytes")
    assert fs.getattr("/docs/report.docx").mode & 0o777 == 0o600
    fs.chmod("/docs/report.docx", 0o640)
    fh = fs.open("/docs/report.docx", os.O_WRONLY | os.O_APPEND)  # appended to in place
    fs.write(fh, b"!", len(b"docx bytes"))
    fs.flush(fh)
    fs.release(fh)
    fs.commit()
    with lakefs.load(fs.ds.storage.root, read_only=True) as ds:  # durable, as plain files
        assert {p: ds.read_staged(f) for p, f in ds._manifest.files.items()} == {
            "docs/report.docx": b"docx bytes!", "docs/report.txt": b"notes"}
        assert ds._manifest.files["docs/report.docx"].mode == 0o640
        assert ds.docs.file_table()[0] == ["report.pdf"]
    fs.unlink("/docs/report.txt")
    assert names(fs, "/docs") == ["report.docx", "report.pdf"]
    assert get(fs, "/docs/report.pdf") == b"%PDF-1.4"


def test_two_plain_files_with_a_held_key_coexist_and_a_sample_keeps_its_own_renames(fs):
    fs.mkdir("/data", 0o755)
    put(fs, "/data/x.bin", b"sample")
    put(fs, "/data/x.a", b"a")
    put(fs, "/data/x.b", b"b")
    assert names(fs, "/data") == ["x.a", "x.b", "x.bin"]
    assert get(fs, "/data/x.a") == b"a" and get(fs, "/data/x.b") == b"b"
    fs.rename("/data/x.a", "/data/x.c")
    assert names(fs, "/data") == ["x.b", "x.bin", "x.c"]
    assert fs.ds.data.num_samples == 1
    # A sample renamed to another name of its own key is still that sample (mv x.bin x.dat).
    fs.rename("/data/x.bin", "/data/x.dat")
    assert fs.ds.data.file_table()[0] == ["x.dat"]
    assert names(fs, "/data") == ["x.b", "x.c", "x.dat"]
    # Of two new files of one key, the first created is the sample, whichever is stored
    # first: SQLite fsyncs index.db-journal before the new index.db it was made for.
    db = fs.create("/data/index.db", 0o644)
    fs.write(db, b"page 1", 0)
    journal = fs.create("/data/index.db-journal", 0o644)
    fs.write(journal, b"journal", 0)
    fs.fsync(journal)
    fs.fsync(db)
    assert fs.ds.data.file_table()[0] == ["x.dat", "index.db"]
    assert fs.ds._manifest.files.keys() >= {"data/index.db-journal"}
    fs.release(journal)
    fs.unlink("/data/index.db-journal")
    fs.release(db)
    assert names(fs, "/data") == ["index.db", "x.b", "x.c", "x.dat"]
    # A file created while a sample of its key is stored is plain at its close.
    fh = fs.create("/data/y.new", 0o644)
    fs.write(fh, b"new", 0)
    put(fs, "/data/y.old", b"old")
    fs.flush(fh)
    fs.release(fh)
    put(fs, "/data/y.txt", b"txt")
    assert fs.ds.data.file_table()[0] == ["x.dat", "index.db", "y.new"]
    assert get(fs, "/data/y.old") == b"old" and get(fs, "/data/y.txt") == b"txt"
    # The same in a pending directory: the first created makes the tensor.
    fs.mkdir("/new", 0o755)
    db = fs.create("/new/index.db", 0o644)
    fs.write(db, b"page 1", 0)
    put(fs, "/new/index.db-journal", b"journal")
    assert "new" in fs.ds._manifest.pending_dirs
    fs.flush(db)
    fs.release(db)
    assert fs.ds.new.file_table()[0] == ["index.db"]
    assert names(fs, "/new") == ["index.db", "index.db-journal"]
    fs.commit()  # stores the held plain files: their claims are over
    a = fs.create("/new/a.x", 0o644)
    fs.write(a, b"x", 0)
    put(fs, "/new/a.y", b"y")
    fs.flush(a)
    fs.release(a)
    assert fs.ds.new.file_table()[0] == ["index.db", "a.x"]
    assert list(fs._second) == ["new/a.y"]  # the closed claims are forgotten at the next one


def test_a_plain_file_renamed_onto_the_sample_of_its_key_replaces_it(fs):
    """The atomic-write idiom, p.with_suffix('.tmp') written then os.replace(tmp, p):
    index.tmp is a plain file while index.db holds the key, and renaming it stores it
    as that sample; the plain file is gone."""
    fs.mkdir("/db", 0o755)
    put(fs, "/db/index.db", b"v1")
    for i, commit in enumerate((False, True)):  # held in memory, or stored first
        data = b"v%d" % (i + 2)
        put(fs, "/db/index.tmp", data)
        if commit:
            fs.commit()
            assert "db/index.tmp" in fs.ds._manifest.files
        fs.rename("/db/index.tmp", "/db/index.db")
        assert names(fs, "/db") == ["index.db"]
        assert fs.ds.db["index"].file_bytes() == data and fs.ds.db.num_samples == 1
        assert not fs.ds._manifest.files
        assert fs.find_attr("/db/index.tmp") is None


def test_a_plain_file_stays_plain_when_the_sample_holding_its_key_goes(fs):
    """Removing report.pdf leaves report.docx a readable plain file (held in memory or
    stored); rewriting it then stores it as the sample of its key, as a new file of
    that name would be."""
    fs.mkdir("/docs", 0o755)
    put(fs, "/docs/report.pdf", b"pdf")
    put(fs, "/docs/report.docx", b"held")  # held in memory until the next commit
    put(fs, "/docs/notes.pdf", b"pdf")
    put(fs, "/docs/notes.docx", b"stored")
    fs.commit()  # notes.docx is stored as a plain file; report.docx is, at this commit, too
    put(fs, "/docs/memo.pdf", b"pdf")
    put(fs, "/docs/memo.docx", b"held")
    for key in ("report", "notes", "memo"):
        fs.unlink(f"/docs/{key}.pdf")
    fs.commit()  # memo.docx, held, is stored as the plain file it was closed as
    assert names(fs, "/docs") == ["memo.docx", "notes.docx", "report.docx"]
    assert fs.ds.docs.num_samples == 0
    assert get(fs, "/docs/notes.docx") == b"stored" and get(fs, "/docs/memo.docx") == b"held"
    root = fs.ds.storage.root
    with lakefs.load(root, read_only=True) as ds:
        assert sorted(ds._manifest.files) == ["docs/memo.docx", "docs/notes.docx", "docs/report.docx"]
    fh = fs.open("/docs/notes.docx", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, b"rewritten", 0)
    fs.flush(fh)
    fs.release(fh)
    assert fs.ds.docs.file_table()[0] == ["notes.docx"]
    assert "docs/notes.docx" not in fs.ds._manifest.files
    assert names(fs, "/docs") == ["memo.docx", "notes.docx", "report.docx"]
    assert get(fs, "/docs/notes.docx") == b"rewritten"


def test_a_sample_rewritten_with_another_image_format_is_still_a_rewrite(fs, photos):
    """A PNG onto the key of a .jpg in a jpeg tensor is transcoded into that sample: a
    rewrite, not a second file."""
    import io

    from PIL import Image

    fs.mkdir("/images", 0o755)
    put(fs, "/images/x.jpg", photos[0].read_bytes())
    buf = io.BytesIO()
    Image.open(photos[1]).save(buf, "PNG")
    put(fs, "/images/x.png", buf.getvalue())
    assert names(fs, "/images") == ["x.jpg"]
    assert fs.ds.images.num_samples == 1 and not fs.ds._manifest.files


def test_a_refused_first_file_leaves_the_directory_pending(fs):
    fs.mkdir("/labels", 0o755)
    fh = fs.create("/labels/a.json", 0o644)
    fs.write(fh, b"{not json", 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert "labels" not in fs.ds.tensors and "labels" in fs.ds._manifest.pending_dirs
    put(fs, "/labels/a.txt", b"cat")  # the next file decides: a text tensor
    assert fs.ds.tensors["labels"].htype == "text"
    # A file moved in and refused (a sample of another tensor: EXDEV) too.
    fs.mkdir("/more", 0o755)
    assert errno_of(fs.rename, "/labels/a.txt", "/more/a.txt") == errno.EXDEV
    assert "more" in fs.ds._manifest.pending_dirs and "more" not in fs.ds.tensors


def test_a_pending_directory_renamed_to_a_refused_name_stays_as_it_was(fs, photos, monkeypatch):
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_FILES", 0)  # (a small tensor becomes a group)
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    fs.mkdir("/pend", 0o755)
    put(fs, "/pend/README", b"hello")
    assert errno_of(fs.rename, "/pend", "/images/pend") == errno.EPERM  # as mkdir there
    assert errno_of(fs.rename, "/pend", "/pe\x01nd") == errno.EINVAL  # (a hidden name is a plain dir's)
    assert sorted(n for n, _ in fs.readdir("/")) == ["images", "pend"]
    assert get(fs, "/pend/README") == b"hello"
    fs.rename("/pend", "/docs")
    assert get(fs, "/docs/README") == b"hello" and "pend" not in [n for n, _ in fs.readdir("/")]


def test_a_refused_rewrite_never_stands_in_for_the_committed_file(fs):
    """Found by review: a refused file stayed open for a reader that had opened it, and
    meanwhile the path showed, renamed and re-timed the refused bytes."""
    fs.mkdir("/labels", 0o755)
    put(fs, "/labels/a.json", b'{"ok": 1}')
    w = fs.open("/labels/a.json", os.O_WRONLY | os.O_TRUNC)
    r = fs.open("/labels/a.json", os.O_RDONLY)  # a viewer, tail -f, a loader
    fs.write(w, b'{"broken', 0)
    assert errno_of(fs.flush, w) == errno.EINVAL
    fs.release(w)
    assert get(fs, "/labels/a.json") == b'{"ok": 1}' and fs.getattr("/labels/a.json").size == 9
    fs.rename("/labels/a.json", "/labels/b.json")
    assert [n for n, _ in fs.readdir("/labels")] == ["b.json"]
    assert fs.read(r, 100, 0) == b'{"broken'  # the reader keeps what it saw
    fs.release(r)
    assert get(fs, "/labels/b.json") == b'{"ok": 1}'


def test_a_sample_still_being_written_when_the_mount_stops_is_not_stored(tmp_path, caplog):
    """Found by review: SIGTERM to the mount stored the first half of a file still being
    written as a whole-looking sample. A plain staging file keeps what was written."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/blobs", 0o755)
    put(fs, "/blobs/done.bin", b"whole")
    half = fs.create("/blobs/partial.bin", 0o644)
    fs.write(half, b"first half", 0)
    log_file = fs.create("/train.log", 0o644)
    fs.write(log_file, b"epoch 1\n", 0)
    fs.shutdown()
    ds.close()
    back = lakefs.load(tmp_path / "ds", read_only=True)
    assert back.keys() == ["done"]
    assert back.read_file("train.log") == b"epoch 1\n"
    assert "/blobs/partial.bin: not stored: still being written when the mount stopped" in caplog.text


def test_fsyncdir_commits_a_rename(tmp_path):
    """Found by review: the safe-replace pattern (write a temp file, fsync it, rename it,
    fsync the directory) lost the rename at a crash: fsync of a directory did nothing."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/blobs", 0o755)
    put(fs, "/blobs/first.bin", b"1")
    fs.commit()
    put(fs, "/blobs/.a.bin.tmp", b"new contents")  # a staging file, held in memory
    fs.rename("/blobs/.a.bin.tmp", "/blobs/a.bin")
    fs.fsyncdir("/blobs")
    crashed = lakefs.load(tmp_path / "ds", read_only=True)  # what a kill -9 now would leave
    assert crashed.blobs["a"].tobytes() == b"new contents" and not crashed.files
    ds.close()


def test_an_npy_a_float16_tensor_would_store_as_inf_is_einval(fs):
    import io

    import numpy as np

    fs.ds.create_tensor("h", dtype="float16")
    out = io.BytesIO()
    np.save(out, np.array([1e10]))
    fh = fs.create("/h/big.npy", 0o644)
    fs.write(fh, out.getvalue(), 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert fs.readdir("/h") == []



def test_an_npy_file_holding_two_arrays_is_einval(fs):
    """Found by review: ``np.save(f, a); np.save(f, b)`` into one file closed without an
    error and stored only ``a``: every byte after the first array was dropped."""
    import io

    import numpy as np

    fs.mkdir("/feats", 0o755)
    one = io.BytesIO()
    np.save(one, np.arange(4, dtype=np.float32))
    put(fs, "/feats/a.npy", one.getvalue())
    two = io.BytesIO()
    np.save(two, np.ones(3, np.float32))
    np.save(two, np.zeros(3, np.float32))
    fh = fs.create("/feats/b.npy", 0o644)
    fs.write(fh, two.getvalue(), 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert [n for n, _ in fs.readdir("/feats")] == ["a.npy"]

def test_a_json_file_with_nan_is_einval(fs):
    fs.mkdir("/meta", 0o755)
    put(fs, "/meta/ok.json", b'{"a": 1}')
    fh = fs.create("/meta/nan.json", 0o644)
    fs.write(fh, b'{"a": NaN}', 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert [n for n, _ in fs.readdir("/meta")] == ["ok.json"]


# --- directory modes and times ---------------------------------------------------------

T = 1_600_000_000_000_000_000


def dir_stat(fs: DatasetFS, path: str) -> tuple[int, int]:
    attr = fs.getattr(path)
    assert attr.is_dir()
    return attr.mode, attr.mtime_ns


def test_directories_keep_the_mode_and_time_of_mkdir_chmod_and_utimens(fs, photos):
    fs.mkdir("/private", 0o700)  # (the kernel applied the umask already)
    assert dir_stat(fs, "/private")[0] == 0o700
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())  # a tensor
    fs.mkdir("/train", 0o755)
    fs.mkdir("/train/sub", 0o755)  # a group, and a pending directory in it
    dirs = {"/": 0o711, "/images": 0o750, "/train": 0o751, "/train/sub": 0o700, "/private": 0o705}
    for d, mode in dirs.items():
        fs.chmod(d, stat.S_IFDIR | mode)
        fs.utimens(d, T + mode)
    for d, mode in dirs.items():
        assert dir_stat(fs, d) == (mode, T + mode), d
    listed = dict(fs.readdir("/"))  # the listing (kept until a change) shows the same
    assert (listed["images"].mode, listed["images"].mtime_ns) == (0o750, T + 0o750)
    fs.chmod("/images", 0o755)
    fs.utimens("/train", T)
    listed = dict(fs.readdir("/"))
    assert (listed["images"].mode, listed["train"].mtime_ns) == (0o755, T)
    # A pending directory keeps its mode when its first file makes it a tensor, also
    # when that first file is refused (it goes back to pending).
    fh = fs.create("/private/a.json", 0o644)
    fs.write(fh, b"{not json", 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert "private" in fs.ds.pending_dirs and dir_stat(fs, "/private")[0] == 0o705
    put(fs, "/private/a.json", b"{}")
    assert "private" in fs.ds.tensors and dir_stat(fs, "/private")[0] == 0o705


def test_a_directory_time_changes_with_its_entries_not_with_file_contents(fs, photos):
    jpg0, jpg1 = photos[0].read_bytes(), photos[1].read_bytes()
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", jpg0)
    fs.mkdir("/notes", 0o755)
    put(fs, "/notes/.draft", b"x")  # a staging file (held until the commit)

    def changed_since_reset() -> set[str]:
        dirs = ["/", *("/" + d for d in [*fs.ds.tensors, *fs.ds.groups, *fs.ds.pending_dirs])]
        moved = {d for d in dirs if fs.getattr(d).mtime_ns != T}
        for d in dirs:
            fs.utimens(d, T)
        return moved

    changed_since_reset()
    # Contents: rewritten in place (create of an existing name, O_TRUNC, truncate), a
    # file's own mode and time, the commit that stores a held file: no directory changes.
    put(fs, "/images/a.jpg", jpg1)
    fh = fs.open("/images/a.jpg", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, jpg0, 0)
    fs.flush(fh)
    fs.release(fh)
    fs.truncate("/notes/.draft", 0)
    fs.chmod("/images/a.jpg", 0o600)
    fs.utimens("/notes/.draft", T)
    fs.commit()
    assert changed_since_reset() == set()
    # Entries: created, removed, renamed within and across, directories made and removed.
    put(fs, "/images/b.jpg", jpg1)
    assert changed_since_reset() == {"/images"}
    fh = fs.create("/images/c.jpg", 0o644)  # at the create, as on a disk: before any write
    assert changed_since_reset() == {"/images"}
    fs.write(fh, jpg0, 0)
    fs.flush(fh)
    fs.release(fh)
    assert changed_since_reset() == set()
    fs.unlink("/images/b.jpg")
    assert changed_since_reset() == {"/images"}
    fs.rename("/images/c.jpg", "/images/d.jpg")
    assert changed_since_reset() == {"/images"}
    fs.rename("/notes/.draft", "/.draft")
    assert changed_since_reset() == {"/", "/notes"}
    fs.rename("/.draft", "/notes/.draft")
    assert changed_since_reset() == {"/", "/notes"}
    fs.mkdir("/notes/sub", 0o755)
    assert changed_since_reset() == {"/notes", "/notes/sub"}
    fs.rmdir("/notes/sub")
    assert changed_since_reset() == {"/notes"}
    fs.unlink("/notes/.draft")
    assert changed_since_reset() == {"/notes"}
    fs.mkdir("/p", 0o700)
    assert changed_since_reset() == {"/", "/p"}
    fs.chmod("/p", 0o750)
    fs.utimens("/p", T + 1)
    fs.rename("/p", "/q")  # a renamed directory keeps its mode and time
    assert dir_stat(fs, "/q") == (0o750, T + 1)
    assert changed_since_reset() == {"/", "/q"}
    fs.rename("/images", "/pics")  # a tensor renamed in place too
    assert dir_stat(fs, "/pics") == (0o755, T)
    assert changed_since_reset() == {"/"}
    fs.rmdir("/q")
    assert changed_since_reset() == {"/"}
    fs.mkdir("/q", 0o755)  # a new directory of the same name: nothing of the old one
    assert dir_stat(fs, "/q")[0] == 0o755 and dir_stat(fs, "/q")[1] > T + 1


def test_directory_modes_and_times_are_committed_with_the_dataset(tmp_path, photos):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/images", 0o750)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    fs.mkdir("/train", 0o700)
    fs.mkdir("/train/labels", 0o755)
    put(fs, "/train/labels/a.txt", b"cat")
    fs.mkdir("/pending", 0o711)
    dirs = ["/", "/images", "/train", "/train/labels", "/pending"]
    for i, d in enumerate(dirs):
        fs.utimens(d, T + i)
    fs.chmod("/", 0o750)
    before = {d: dir_stat(fs, d) for d in dirs}
    assert before["/images"] == (0o750, T + 1) and before["/pending"] == (0o711, T + 4)
    fs.shutdown()
    ds.close()
    ds = lakefs.load(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    assert {d: dir_stat(fs, d) for d in dirs} == before
    assert {name: attr.mode for name, attr in fs.readdir("/train")} == {"labels": 0o755}
    fs.rename("/pending", "/moved")
    fs.unlink("/train/labels/a.txt")
    fs.rmdir("/train/labels")
    fs.shutdown()
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.dir_meta("moved") == before["/pending"] and ds.dir_meta("pending") is None
    assert ds.dir_meta("train/labels") is None  # deleted: its entry went with it
    assert sorted(ds._manifest.dirs) == ["", "images", "moved", "train"]


def test_rmdir_of_a_tensor_after_its_files_drops_its_entry(fs):
    fs.mkdir("/labels", 0o700)
    put(fs, "/labels/a.txt", b"cat")
    assert dir_stat(fs, "/labels")[0] == 0o700
    fs.unlink("/labels/a.txt")
    fs.rmdir("/labels")
    assert fs.ds.dir_meta("labels") is None
    fs.mkdir("/labels", 0o755)
    assert dir_stat(fs, "/labels")[0] == 0o755


def test_a_dataset_without_directory_metadata_shows_defaults(tmp_path):
    """A dataset written before directories had a mode and time (format v1, the golden
    dataset): 0o755 and the time the dataset was created (its marker's), the same at
    every mount (it was the mount's start, another at each); set ones are committed
    from then on."""
    import shutil

    copy = tmp_path / "v1"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "v1", copy)
    created = 1_400_000_000_123_456_789
    os.utime(copy / "lakefs.json", ns=(created, created))
    ds = lakefs.load(copy)
    fs = DatasetFS(ds, Config())
    dirs = ["/", "/images", "/train", "/train/captions"]
    assert {dir_stat(fs, d) for d in dirs} == {(0o755, created)}
    assert {(attr.mode, attr.mtime_ns) for _, attr in fs.readdir("/") if attr.is_dir()} == {(0o755, created)}
    fs.chmod("/train", 0o700)
    fs.utimens("/train", T)
    fs.shutdown()
    ds.close()
    ds = lakefs.load(copy, read_only=True)
    assert ds.dir_meta("train") == (0o700, T) and ds.dir_meta("images") is None
    fs = DatasetFS(ds, Config())
    assert dir_stat(fs, "/train") == (0o700, T) and dir_stat(fs, "/images") == (0o755, created)


def test_no_entry_of_a_directory_that_is_gone_is_committed_or_shown(tmp_path):
    from lakefs.errors import TensorNotFoundError
    from lakefs.storage import LocalStorage
    from lakefs.tools.fsck import fsck

    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("g/t", htype="text")
    ds.create_tensor("x", htype="text")
    for d in ("", "g", "g/t", "x"):
        ds.set_dir_meta(d, 0o700, T)
    with pytest.raises(TensorNotFoundError):
        ds.set_dir_meta("nope", 0o700, T)
    ds.delete_group("g", recursive=True)
    ds.rename_tensor("x", "y")
    ds.create_tensor("g/t", htype="text")  # made again: mkdir's mode and the time now, nothing of the old one
    made = ds.dir_meta("g/t")
    assert made[0] == 0o755 and made[1] > T and ds.dir_meta("g") == made and ds.dir_meta("y") == (0o700, T)
    assert ds.dir_meta("") == (0o700, made[1])  # an entry made in it: its time, as on a disk
    ds._manifest.dirs["gone"] = (0o700, T)  # a stale entry (as a bug would leave)
    fs = DatasetFS(ds, Config())
    assert [name for name, _ in fs.readdir("/")] == ["y", "g"]
    ds.flush()
    head = json.loads((tmp_path / "ds" / "HEAD").read_text())
    manifest = json.loads((tmp_path / "ds" / head["manifest"]).read_text())
    assert manifest["dirs"] == {"": [0o700, made[1]], "g": list(made), "g/t": list(made), "y": [0o700, T]}
    ds.close()
    assert fsck(LocalStorage(tmp_path / "ds")).ok


def test_a_storage_failure_at_fsync_is_tried_again_not_remembered(tmp_path):
    """Found by review: a full disk at fsync was remembered like refused contents, so the
    next fsync and the close failed without trying, and the file was dropped."""
    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage
    from lakefs.storage.faults import FaultyStorage

    inner = MemoryStorage()
    Dataset(inner, create=True).close()
    store = FaultyStorage(inner, fail_at=10**9, mode="enospc")
    ds = Dataset(store)
    fs = DatasetFS(ds, Config())
    fh = fs.create("/notes.txt", 0o644)  # a plain file: fsync stores it at once
    fs.write(fh, b"precious", 0)
    store.fail_at, store.sticky = store.count + 1, True  # the disk is full ...
    assert errno_of(fs.fsync, fh) == errno.ENOSPC
    store.fail_at, store.sticky = 10**9, False  # ... until space is freed
    fs.fsync(fh)
    fs.flush(fh)
    fs.release(fh)
    assert Dataset(inner, read_only=True).read_file("notes.txt") == b"precious"
    ds.close()


def test_the_first_commit_after_a_full_disk_clears_succeeds():
    """Found by review: the commit raised the background put's stale error once more
    instead of putting the chunk again."""
    from lakefs.dataset import Dataset
    from lakefs.storage import MemoryStorage
    from lakefs.storage.faults import FaultyStorage

    inner = MemoryStorage()
    Dataset(inner, create=True).close()
    store = FaultyStorage(inner, fail_at=10**9, mode="enospc")
    ds = Dataset(store)
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    t.append(os.urandom(3000))
    store.fail_at, store.sticky = store.count + 1, True
    t.append(os.urandom(3000))  # seals the first chunk: its put fails behind
    ds._chunk_writer._executor.submit(lambda: None).result()
    store.fail_at, store.sticky = 10**9, False  # space freed
    ds.flush()  # puts the kept chunk again, then commits
    assert len(Dataset(inner, read_only=True).b) == 2
    ds.close()


def test_only_the_last_writers_close_stores_a_sample(tmp_path, photos):
    """Found by review: a second opener that closed without writing stored the first
    writer's half-written file (and in a jpeg tensor failed its close with EINVAL)."""
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/blobs", 0o755)
    put(fs, "/blobs/first.bin", b"1")
    data = os.urandom(3_000_000)
    a = fs.create("/blobs/big.bin", 0o644)
    fs.write(a, data[:1_500_000], 0)
    b = fs.open("/blobs/big.bin", os.O_RDWR)  # another process opens it and closes it
    fs.flush(b)
    fs.release(b)
    fs.commit()
    assert ds.keys() == ["first"]  # nothing half written was stored
    fs.write(a, data[1_500_000:], 1_500_000)
    fs.flush(a)
    fs.release(a)
    assert ds.blobs["big"].file_bytes() == data
    # A jpeg tensor: the first writer closes after a second one truncated the file.
    jpeg = photos[0].read_bytes()
    fs.mkdir("/img", 0o755)
    put(fs, "/img/a.jpg", jpeg)
    w1 = fs.create("/img/b.jpg", 0o644)
    fs.write(w1, jpeg, 0)
    w2 = fs.open("/img/b.jpg", os.O_WRONLY | os.O_TRUNC)
    fs.truncate("/img/b.jpg", 0, w2)
    fs.flush(w1)  # not the last writer: no error, nothing stored yet
    fs.release(w1)
    fs.write(w2, jpeg, 0)
    fs.flush(w2)
    fs.release(w2)
    assert ds.img["b"].tobytes() == jpeg
    ds.close()


def test_only_libfuses_hiding_of_an_open_file_is_an_unlink(fs):
    """Found by review: any rename to a name starting with .fuse_hidden deleted the file.
    Only libfuse's own name (.fuse_hidden + 16 hex digits) for a file that is open is."""
    fs.mkdir("/h", 0o755)
    put(fs, "/h/keep.txt", b"hello")
    fs.rename("/h/keep.txt", "/h/.fuse_hidden_backup")  # a user's name: an ordinary rename
    assert get(fs, "/h/.fuse_hidden_backup") == b"hello"
    fs.rename("/h/.fuse_hidden_backup", "/h/.fuse_hidden0000000100000002")  # not open either
    assert get(fs, "/h/.fuse_hidden0000000100000002") == b"hello"
    put(fs, "/h/gone.txt", b"bye")
    fh = fs.open("/h/gone.txt", os.O_RDONLY)  # open: libfuse hides it at its unlink
    fs.rename("/h/gone.txt", "/h/.fuse_hidden00000003000000ff")
    assert fs.read(fh, 100, 0) == b"bye"
    assert fs.getattr("/h/.fuse_hidden00000003000000ff").size == 3
    assert sorted(fs.readdir("/h")) and [n for n, _ in fs.readdir("/h")] == [".fuse_hidden0000000100000002"]
    fs.release(fh)
    fs.unlink("/h/.fuse_hidden00000003000000ff")  # libfuse's last step
    fs.commit()
    assert fs.ds.files.keys() == {"h/.fuse_hidden0000000100000002"}


def test_a_group_is_renamed_in_place_with_everything_under_it(tmp_path, photos):
    """``mv train old`` of a group was EXDEV, so mv copied every sample (inferring each
    tensor's settings again from its first file) and os.rename failed. Now the group is
    renamed in the manifest: tensors keep their settings and rows, and the plain files,
    plain and pending directories, modes and times under it follow."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/labels", htype="class_label", class_names=["cat", "dog"])
    fs = DatasetFS(ds, Config())
    fs.mkdir("/train/images", 0o755)
    put(fs, "/train/images/a.jpg", photos[0].read_bytes())
    put(fs, "/train/labels/a.txt", b"dog\n")
    fs.mkdir("/train/deep", 0o755)
    fs.mkdir("/train/deep/masks", 0o755)  # train/deep is a group; masks pending
    fs.mkdir("/train/images/.ipynb_checkpoints", 0o755)
    put(fs, "/train/images/.ipynb_checkpoints/n.json", b"{}")
    put(fs, "/train/README.md", b"card")
    fs.chmod("/train/deep", 0o700)
    fs.utimens("/train/images", 1_000_000_000)
    fs.mkdir("/split", 0o755)  # a pending parent becomes a group, as at mkdir

    fs.rename("/train", "/split/old")

    assert fs._dir_kind("train") is None and fs._dir_kind("split/old") == "group"
    assert sorted(ds.tensors) == ["split/old/images", "split/old/labels"]
    assert ds.tensors["split/old/labels"].htype == "class_label"
    assert get(fs, "/split/old/images/a.jpg") == photos[0].read_bytes()
    assert get(fs, "/split/old/labels/a.txt") == b"dog\n"
    assert get(fs, "/split/old/images/.ipynb_checkpoints/n.json") == b"{}"
    assert get(fs, "/split/old/README.md") == b"card"
    assert fs._dir_kind("split/old/deep/masks") == "pending"
    assert stat.S_IMODE(fs.getattr("/split/old/deep").mode) == 0o700
    assert fs.getattr("/split/old/images").mtime_ns == 1_000_000_000
    assert [n for n, _ in fs.readdir("/")] == ["split"]
    ds.flush()
    ds.close()
    again = lakefs.load(tmp_path / "ds")
    assert again["split/old/labels"]["a"].numpy().tolist() == [1]
    assert again.read_file("split/old/README.md") == b"card"
    assert "split/old/images/.ipynb_checkpoints" in again.pending_dirs
    again.close()


def test_group_rename_refusals(fs, photos, monkeypatch):
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_FILES", 0)  # (a small tensor becomes a group)
    fs.mkdir("/g", 0o755)
    fs.mkdir("/g/t", 0o755)
    put(fs, "/g/t/a.jpg", photos[0].read_bytes())
    fs.mkdir("/other", 0o755)
    put(fs, "/other/b.jpg", photos[1].read_bytes())  # a tensor
    fs.mkdir("/full", 0o755)
    fs.mkdir("/full/x", 0o755)
    assert errno_of(fs.rename, "/g", "/g/t/in") == errno.EINVAL  # into itself
    assert errno_of(fs.rename, "/g", "/other/g") == errno.EPERM  # a tensor holds files only
    assert errno_of(fs.rename, "/g", "/full") == errno.ENOTEMPTY
    assert errno_of(fs.rename, "/g", "/.g") == errno.EXDEV  # to a hidden name: mv copies, as plain files
    fh = fs.create("/g/t/c.jpg", 0o644)
    assert errno_of(fs.rename, "/g", "/h") == errno.EBUSY  # a file open for writing under it
    fs.release(fh)
    assert sorted(fs.ds.tensors) == ["g/t", "other"] and get(fs, "/g/t/a.jpg") == photos[0].read_bytes()
    fs.rename("/g", "/full/x")  # onto an empty directory: replaces it
    assert get(fs, "/full/x/t/a.jpg") == photos[0].read_bytes()


def test_reads_by_path_follow_the_commit_and_keep_few_readers(tmp_path, photos):
    """DatasetFS.read_path (READs without a handle, a read-only mount in no-open mode):
    the current commit's bytes, a reader kept per path until the commit changes, and
    within PathReaders' memory bound."""
    from lakefs.fs.files import PathReaders

    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="jpeg")
    t.write_file("a.jpg", photos[0].read_bytes())
    ds.write_file("README", b"v1")
    ds.close()
    ro = lakefs.load(tmp_path / "ds", read_only=True)
    fs = DatasetFS(ro, Config(), read_only=True)
    data = photos[0].read_bytes()
    assert fs.read_path("/images/a.jpg", 1000, 5) == data[5:1005]
    assert fs.read_path("/images/a.jpg", 1 << 20, 1000) == data[1000:]
    assert fs.read_path("/README", 10, 0) == b"v1"
    assert errno_of(fs.read_path, "/missing.jpg", 10, 0) == errno.ENOENT
    assert errno_of(fs.read_path, "/images", 10, 0) == errno.EISDIR
    with lakefs.load(tmp_path / "ds") as w:  # a writer's commit, then the reader's refresh
        w.images.write_file("a.jpg", photos[1].read_bytes())
        w.write_file("README", b"v2")
    fs.refresh()
    assert fs.read_path("/images/a.jpg", 1 << 20, 0) == photos[1].read_bytes()
    assert fs.read_path("/README", 10, 0) == b"v2"
    ro.close()

    readers = PathReaders(max_bytes=100, max_files=3, max_windows=2)
    for i in range(5):
        readers.put(f"f{i}", 1, f"h{i}", 40)  # type: ignore[arg-type]
    assert [readers.get(f"f{i}", 1) for i in range(5)] == [None, None, None, "h3", "h4"]  # 80 bytes kept
    assert readers.get("f4", 2) is None and readers.get("f4", 1) is None  # another generation: dropped
    readers.put("huge", 1, "h", 1 << 40)  # type: ignore[arg-type]
    assert readers.get("huge", 1) == "h"  # the newest stays, whatever its size
    for i in range(3):  # big files read through tiles: the oldest window goes, not the small files
        readers.put("small", 1, "s", 10)  # type: ignore[arg-type]
        readers.put(f"w{i}", 1, f"w{i}", 0, window=True)  # type: ignore[arg-type]
    assert [readers.get(p, 1) for p in ("small", "w0", "w1", "w2")] == ["s", None, "w1", "w2"]


def test_reads_by_path_hold_decoded_files_within_the_bound_and_only_the_current_commit(tmp_path):
    """Found by review: a file read whole (lz4 samples, a .npy view) counted at most
    16 MB against PathReaders' 64 MB, so four 100 MB ones stayed in memory; and readers
    of an older commit stayed until pushed out, each keeping its commit's tensors."""
    import gc
    import tracemalloc
    import weakref

    size = 24 << 20
    with lakefs.empty(tmp_path / "ds") as w:
        t = w.create_tensor("b", htype="bytes", sample_compression="lz4")  # read whole
        for i in range(5):
            t.write_file(f"f{i}.bin", bytes([i]) * size)
    ro = lakefs.load(tmp_path / "ds", read_only=True)
    fs = DatasetFS(ro, Config(), read_only=True)
    tracemalloc.start()
    try:
        for i in range(5):
            for offset in range(0, size, 8 << 20):
                assert fs.read_path(f"/b/f{i}.bin", 1 << 20, offset) == bytes([i]) * (1 << 20)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < (64 << 20) + (8 << 20)  # two files are kept (48 MB), not four (96 MB)

    old = weakref.ref(ro.b)
    with lakefs.load(tmp_path / "ds") as w:
        w.b.write_file("f0.bin", b"new")
    fs.refresh()
    assert fs.read_path("/b/f0.bin", 10, 0) == b"new"
    gc.collect()
    assert old() is None  # the older commit's tensor is freed
    ro.close()


def test_a_kernel_without_no_open_gets_opens(tmp_path):
    """A kernel before Linux 4.19 takes ENOSYS from OPEN as the open's failure: every
    file of a read-only mount failed to open. Opens are kept unless the kernel says at
    INIT that it can skip them (FUSE_CAP_NO_OPEN_SUPPORT)."""
    import types

    from lakefs.fs.binding import FuseOSError
    from lakefs.fs.operations import LakeOperations

    with lakefs.empty(tmp_path / "ds") as w:
        w.write_file("README", b"v1")
    ro = lakefs.load(tmp_path / "ds", read_only=True)
    fs = DatasetFS(ro, Config(), read_only=True)
    for capable, opens in ((0, True), (1 << 17, False)):  # (libfuse's FUSE_CAP_NO_OPEN_SUPPORT)
        ops = LakeOperations(fs, no_open=True)
        ops.init_with_config(types.SimpleNamespace(capable=capable, max_write=0, max_readahead=0), None)
        ops.kernel.detach()
        fi = types.SimpleNamespace(flags=os.O_RDONLY, fh=0)
        if opens:
            assert ops.open("/README", fi) == 0 and fi.fh
        else:
            with pytest.raises(FuseOSError) as e:
                ops.open("/README", fi)
            assert e.value.errno == errno.ENOSYS and fi.fh == 0
        assert ops.read("/README", 10, 0, fi) == b"v1"
    ro.close()


def test_the_name_a_transcoded_file_was_written_under_takes_its_times_and_mode(fs, photos, monkeypatch):
    """shutil.copy2 and unzip set times and modes by name after the close, which stored
    a PNG in a jpeg tensor as ``<key>.jpg``; the kernel still has the name written and
    sends the SETATTR for it, then libfuse's getattr of that name in the same thread.
    Both answer for the file (found by review: copytree stopped at ENOENT); any other
    lookup of that name finds nothing, and a write under it rewrites the sample."""
    import io

    from PIL import Image

    from lakefs.fs import tree

    fs.mkdir("/images", 0o755)
    buf = io.BytesIO()
    Image.open(photos[0]).save(buf, "PNG")
    put(fs, "/images/a.jpg", photos[1].read_bytes())  # a jpeg tensor
    put(fs, "/images/b.png", buf.getvalue())
    assert names(fs, "/images") == ["a.jpg", "b.jpg"]
    assert fs.find_attr("/images/b.png") is None
    fs.utimens("/images/b.png", 1_234_567_890_123_456_789)
    assert fs.getattr("/images/b.png") == fs.getattr("/images/b.jpg")  # libfuse's answer to it
    fs.chmod("/images/b.png", 0o600)
    shown = fs.getattr("/images/b.jpg")
    assert (shown.mtime_ns, shown.mode) == (1_234_567_890_123_456_789, 0o600)
    assert fs.getattr("/images/b.png") == shown
    fs.chown("/images/b.png")
    assert fs.getattr("/images/b.png") == shown
    assert fs.find_attr("/images/b.png") is None  # no other lookup sees it
    assert errno_of(fs.open, "/images/b.png", os.O_RDONLY) == errno.ENOENT
    fh = fs.open("/images/b.png", os.O_WRONLY | os.O_TRUNC)  # written again: a rewrite
    fs.write(fh, buf.getvalue(), 0)
    fs.flush(fh)
    fs.release(fh)
    assert names(fs, "/images") == ["a.jpg", "b.jpg"] and fs.getattr("/images/b.jpg").mode == 0o600
    fs.unlink("/images/b.jpg")  # the file gone, so is the name it was written under
    assert errno_of(fs.chmod, "/images/b.png", 0o644) == errno.ENOENT
    assert errno_of(fs.open, "/images/b.png", os.O_WRONLY) == errno.ENOENT
    put(fs, "/images/c.png", buf.getvalue())
    monkeypatch.setattr(tree, "WRITTEN_NAME_SECONDS", 0.0)  # and only for a while
    assert errno_of(fs.utimens, "/images/c.png", 1) == errno.ENOENT


def test_a_refused_new_file_opened_again_for_writing_is_created(fs):
    """The kernel keeps the name of a new file refused at its close (it was told it
    exists at the create) and sends OPEN, not CREATE, for ``open(p, "wb")`` after: that
    open creates it again (found by review: np.save of a fixed array got ENOENT)."""
    fs.mkdir("/labels", 0o755)
    put(fs, "/labels/a.json", b"{}")
    fh = fs.create("/labels/b.json", 0o600)
    fs.write(fh, b"{not json", 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    assert fs.find_attr("/labels/b.json") is None
    assert errno_of(fs.open, "/labels/b.json", os.O_RDONLY) == errno.ENOENT  # nothing to read
    fh = fs.open("/labels/b.json", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, b'{"b": 1}', 0)
    fs.flush(fh)
    fs.release(fh)
    assert get(fs, "/labels/b.json") == b'{"b": 1}' and fs.getattr("/labels/b.json").mode == 0o600
    # Once written (or removed: rm of the name the kernel still shows succeeds), it is any file.
    fs.unlink("/labels/b.json")
    assert errno_of(fs.open, "/labels/b.json", os.O_WRONLY) == errno.ENOENT
    fh = fs.create("/labels/c.json", 0o644)
    fs.write(fh, b"{not json", 0)
    assert errno_of(fs.flush, fh) == errno.EINVAL
    fs.release(fh)
    fs.unlink("/labels/c.json")
    assert errno_of(fs.unlink, "/labels/c.json") == errno.ENOENT
    assert errno_of(fs.open, "/labels/c.json", os.O_WRONLY | os.O_TRUNC) == errno.ENOENT


def test_the_name_of_a_refused_new_file_is_sent_to_be_forgotten(fs):
    """The mount has the kernel drop the name of a new file refused at its close (it
    keeps it for entry_timeout otherwise); a refused rewrite keeps its name, only its
    pages and size go."""
    forgotten: list[tuple[str, bool]] = []
    fs.forget_cached = lambda path, name=False: forgotten.append((path, name))
    fs.mkdir("/labels", 0o755)
    put(fs, "/labels/a.json", b"{}")
    for path in ("/labels/b.json", "/labels/a.json"):
        fh = fs.create(path, 0o644)
        fs.write(fh, b"{not json", 0)
        assert errno_of(fs.flush, fh) == errno.EINVAL
        fs.release(fh)
    assert forgotten == [("/labels/b.json", True), ("/labels/a.json", False)]


def test_an_open_of_a_replaced_file_under_its_hidden_name_reads_it(fs, photos):
    """A file open for reading and renamed over is renamed by libfuse to .fuse_hidden*;
    an open that found it before reaches us under that name, also after libfuse's
    unlink at its last close (found by review: readers of a file replaced atomically
    got ENOENT)."""
    fs.mkdir("/images", 0o755)
    put(fs, "/images/z.jpg", photos[0].read_bytes())
    put(fs, "/images/.z.tmp", photos[1].read_bytes())
    fh = fs.open("/images/z.jpg", os.O_RDONLY)
    hidden = "/images/.fuse_hidden0000000100000002"
    fs.rename("/images/z.jpg", hidden)  # libfuse: the open target first
    fs.rename("/images/.z.tmp", "/images/z.jpg")
    assert get(fs, hidden) == photos[0].read_bytes() == fs.read(fh, 1 << 30, 0)
    fs.release(fh)
    fs.unlink(hidden)  # libfuse, at the last close
    assert get(fs, hidden) == photos[0].read_bytes()
    assert names(fs, "/images") == ["z.jpg"] and get(fs, "/images/z.jpg") == photos[1].read_bytes()
    put(fs, hidden, b"a user's file of that name")  # (libfuse never creates one)
    fs.commit()  # stored as a plain file, no longer held open
    assert get(fs, hidden) == b"a user's file of that name"


def test_a_small_tensor_given_a_subdirectory_becomes_a_group_of_its_files(fs, photos, tmp_path):
    """Found by QA: a folder's first file made it a tensor, which then refused every
    subdirectory (EPERM), so ``tar -x``, ``unzip``, ``cp -r`` and ``git clone`` of a
    Hugging Face layout (``train/metadata.csv`` before ``train/images/``) or of a
    project (``main.py`` before ``pkg/``) failed, depending on the order they made it in."""
    fs.mkdir("/train", 0o750)
    put(fs, "/train/metadata.csv", b"file_name,label\nimages/a.jpg,cat\n", mode=0o600)
    put(fs, "/train/notes.md", b"# notes\n")
    put(fs, "/train/.DS_Store", b"\0\1")  # a plain file in the tensor
    fs.utimens("/train/metadata.csv", 1_500_000_000_123_456_789)
    assert fs._dir_kind("train") == "tensor"
    before = {n: (a.size, a.mtime_ns, a.mode) for n, a in fs.readdir("/train")}
    fs.mkdir("/train/images", 0o755)
    assert fs._dir_kind("train") == "group" and fs._dir_kind("train/images") == "pending"
    assert "train" not in fs.ds.tensors
    after = {n: (a.size, a.mtime_ns, a.mode) for n, a in fs.readdir("/train")}
    assert after.pop("images")[2] & 0o777 == 0o755 and after == before
    assert get(fs, "/train/metadata.csv") == b"file_name,label\nimages/a.jpg,cat\n"
    assert get(fs, "/train/notes.md") == b"# notes\n" and get(fs, "/train/.DS_Store") == b"\0\1"
    assert fs.getattr("/train").mode & 0o777 == 0o750  # the directory keeps its mode
    put(fs, "/train/images/a.jpg", photos[0].read_bytes())
    assert fs.ds.tensors["train/images"].sample_compression == "jpeg"
    # A directory moved into a small tensor does the same.
    fs.mkdir("/proj", 0o755)
    put(fs, "/proj/main.py", b"print(1)\n")
    fs.mkdir("/pkg", 0o755)
    put(fs, "/pkg/__init__.py", b"")
    fs.rename("/pkg", "/proj/pkg")
    assert fs._dir_kind("proj") == "group" and get(fs, "/proj/main.py") == b"print(1)\n"
    assert fs.ds.tensors["proj/pkg"].htype == "bytes"
    fs.commit()
    again = lakefs.load(fs.ds.path, read_only=True)
    assert {"train", "proj"} <= set(again.groups) and {"train/images", "proj/pkg"} <= set(again.tensors)
    assert again.read_file("train/metadata.csv") == b"file_name,label\nimages/a.jpg,cat\n"
    assert again.files["train/metadata.csv"].mtime_ns == 1_500_000_000_123_456_789
    again.close()


def test_a_big_or_busy_tensor_refuses_a_subdirectory(fs, photos, monkeypatch):
    """A mistaken ``mkdir`` in a tensor of photos must not turn them into plain files:
    past REGROUP_FILES samples (or REGROUP_BYTES) it stays EPERM, with the reason; and
    while a sample of it is open for reading it answers EBUSY, as rename does."""
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_FILES", 2)
    fs.mkdir("/images", 0o755)
    for i in range(3):
        put(fs, f"/images/{i}.jpg", photos[i].read_bytes())
    with pytest.raises(LakeFSError, match=r"holds 3 files.*make directories before files") as e:
        fs.mkdir("/images/sub", 0o755)
    assert e.value.errno == errno.EPERM
    assert fs._dir_kind("images") == "tensor" and fs.find_attr("/images/sub") is None
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_BYTES", 10)
    fs.mkdir("/small", 0o755)
    put(fs, "/small/a.jpg", photos[0].read_bytes())
    assert errno_of(fs.mkdir, "/small/sub", 0o755) == errno.EPERM
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_BYTES", 1 << 30)
    reader = fs.open("/small/a.jpg", os.O_RDONLY)
    assert errno_of(fs.mkdir, "/small/sub", 0o755) == errno.EBUSY
    fs.release(reader)
    # A file being written in it, or one open in its plain directory (git's index.lock
    # while it checks out), does not hold it up: the new file becomes a plain file.
    fs.mkdir("/small/.git", 0o755)
    lock = fs.create("/small/.git/index.lock", 0o644)
    writer = fs.create("/small/b.jpg", 0o644)
    fs.write(writer, photos[1].read_bytes(), 0)
    fs.mkdir("/small/sub", 0o755)
    assert fs._dir_kind("small") == "group"
    fs.flush(writer)
    fs.release(writer)
    fs.release(lock)
    assert get(fs, "/small/a.jpg") == photos[0].read_bytes() and get(fs, "/small/b.jpg") == photos[1].read_bytes()
    fs.commit()  # (closed plain files are held until a commit)
    assert sorted(fs.ds._manifest.files) == ["small/.git/index.lock", "small/a.jpg", "small/b.jpg"]
    for name, data in (("a.jpg", photos[0].read_bytes()), ("b.jpg", photos[1].read_bytes())):
        assert fs.ds._manifest.files[f"small/{name}"].crc32 == zlib.crc32(data)  # (format v3: checked on read)


def test_only_a_tensor_this_mount_made_of_a_first_file_becomes_a_group(tmp_path, photos):
    """Found by QA: ``mkdir labels/sub`` turned a class_label tensor the API made into
    plain files (its class names gone), ``mv dir images/`` an API-made photo tensor. Only
    a tensor the running mount made of a first file (the copy now running) regroups."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.labels.append("dog")
    ds.create_tensor("notes", htype="text")
    ds.notes.append("hi")
    ds.flush()
    fs = DatasetFS(ds, Config())
    fs.mkdir("/made", 0o755)
    put(fs, "/made/a.txt", b"x")
    with pytest.raises(LakeFSError, match="the Python API, `lakefs tensor create`, ingest or an earlier mount"):
        fs.mkdir("/labels/sub", 0o755)
    fs.mkdir("/pend", 0o755)
    assert errno_of(fs.rename, "/pend", "/notes/pend") == errno.EPERM
    assert ds.labels.class_names == ["cat", "dog"] and ds.notes[0].text() == "hi"
    fs.commit()
    again = DatasetFS(ds, Config())  # another mount: made by an earlier one
    assert errno_of(again.mkdir, "/made/sub", 0o755) == errno.EPERM
    fs.mkdir("/made/sub", 0o755)  # (the mount that made it)
    assert fs._dir_kind("made") == "group"
    ds.close()
