"""Plain directories (hidden names: ``.git``, ``.ipynb_checkpoints``, ``.cache``) through
DatasetFS, without a kernel: they hold plain files and plain directories of any name,
never become tensors or groups, and leave their parent's kind alone."""

from __future__ import annotations

import errno
import stat

import pytest
from tree_ops import errno_of, get, put

import lakefs
from lakefs.config import Config
from lakefs.errors import InvalidNameError, LakeFSError
from lakefs.fs.tree import DatasetFS


@pytest.fixture
def fs(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    yield DatasetFS(ds, Config())
    ds.close()


def names(fs: DatasetFS, d: str) -> list[str]:
    return [n for n, _ in fs.readdir(d)]


def test_hidden_directories_hold_plain_files_and_directories_of_any_name(fs, photos):
    fs.mkdir("/.git", 0o750)
    fs.mkdir("/.git/objects", 0o755)
    fs.mkdir("/.git/objects/ab", 0o755)
    put(fs, "/.git/objects/ab/cdef", b"blob")
    put(fs, "/.git/objects/ab/cat.jpg", photos[0].read_bytes())  # a sample name: still plain
    fs.mkdir("/.git/refs", 0o755)
    assert names(fs, "/") == [".git"]
    assert names(fs, "/.git") == ["objects", "refs"]
    assert names(fs, "/.git/objects/ab") == ["cdef", "cat.jpg"]
    assert get(fs, "/.git/objects/ab/cdef") == b"blob"
    assert get(fs, "/.git/objects/ab/cat.jpg") == photos[0].read_bytes()
    assert fs.ds.tensors == {} and fs.ds.groups == []  # no tensor, no group
    a = fs.getattr("/.git")
    assert a.is_dir() and stat.S_IMODE(a.mode) == 0o750
    fs.chmod("/.git/objects", 0o700)
    fs.utimens("/.git/objects", 1_600_000_000_000_000_000)
    a = fs.getattr("/.git/objects")
    assert (stat.S_IMODE(a.mode), a.mtime_ns) == (0o700, 1_600_000_000_000_000_000)
    assert errno_of(fs.mkdir, "/.git/objects", 0o755) == errno.EEXIST
    assert errno_of(fs.create, "/.git", 0o644) == errno.EISDIR


def test_a_hidden_directory_leaves_its_parents_kind_alone(fs, photos, monkeypatch):
    fs.mkdir("/proj", 0o755)
    fs.mkdir("/proj/.ipynb_checkpoints", 0o755)
    assert fs._dir_kind("proj") == "pending"  # not a group
    put(fs, "/proj/a.jpg", photos[0].read_bytes())
    assert fs.ds.tensors["proj"].num_samples == 1  # its first sample still makes it a tensor
    put(fs, "/proj/.ipynb_checkpoints/x-checkpoint.ipynb", b"{}")
    assert names(fs, "/proj") == ["a.jpg", ".ipynb_checkpoints"]
    # In a tensor: a hidden directory may be made (checkpoints beside the notebooks), an
    # ordinary one may not (a tensor holds samples; only a small one becomes a group).
    monkeypatch.setattr("lakefs.fs.tree.REGROUP_FILES", 0)
    fs.mkdir("/proj/.cache", 0o755)
    fs.mkdir("/proj/.cache/hub", 0o755)
    assert errno_of(fs.mkdir, "/proj/sub", 0o755) == errno.EPERM
    assert names(fs, "/proj") == ["a.jpg", ".ipynb_checkpoints", ".cache"]
    assert get(fs, "/proj/.ipynb_checkpoints/x-checkpoint.ipynb") == b"{}"
    # A tensor holding plain directories is not empty; renamed, it takes them along.
    fs.rename("/proj", "/proj2")
    assert names(fs, "/proj2") == ["a.jpg", ".ipynb_checkpoints", ".cache"]
    assert get(fs, "/proj2/.ipynb_checkpoints/x-checkpoint.ipynb") == b"{}"
    assert fs.find_attr("/proj/.cache/hub") is None and fs.getattr("/proj2/.cache/hub").is_dir()
    fs.unlink("/proj2/a.jpg")
    assert errno_of(fs.rmdir, "/proj2") == errno.ENOTEMPTY
    # The Python API: a pending directory holding one is not empty either.
    fs.mkdir("/p", 0o755)
    fs.mkdir("/p/.x", 0o755)
    with pytest.raises(LakeFSError):
        fs.ds.delete_group("p")
    fs.ds.delete_group("p", recursive=True)
    assert "p/.x" not in fs.ds.pending_dirs
    # In a group, beside tensors.
    fs.mkdir("/g", 0o755)
    fs.mkdir("/g/images", 0o755)
    fs.mkdir("/g/.cache", 0o755)
    assert fs._dir_kind("g") == "group" and names(fs, "/g") == ["images", ".cache"]


def test_rmdir_and_rm_r(fs):
    fs.mkdir("/.cache", 0o755)
    fs.mkdir("/.cache/huggingface", 0o755)
    put(fs, "/.cache/huggingface/x.lock", b"")
    assert errno_of(fs.rmdir, "/.cache") == errno.ENOTEMPTY
    assert errno_of(fs.rmdir, "/.cache/huggingface") == errno.ENOTEMPTY
    fs.unlink("/.cache/huggingface/x.lock")
    assert errno_of(fs.rmdir, "/.cache") == errno.ENOTEMPTY
    fs.rmdir("/.cache/huggingface")
    fs.rmdir("/.cache")
    assert names(fs, "/") == [] and fs.ds.pending_dirs == []
    assert fs.find_attr("/.cache") is None
    # A file being written in it keeps it from being removed.
    fs.mkdir("/.w", 0o755)
    fh = fs.create("/.w/f", 0o644)
    assert errno_of(fs.rmdir, "/.w") == errno.ENOTEMPTY
    fs.release(fh)


def test_rename_moves_the_whole_subtree(fs, photos):
    fs.mkdir("/.git", 0o755)
    fs.mkdir("/.git/objects", 0o711)
    put(fs, "/.git/objects/o1", b"1")
    put(fs, "/.git/HEAD", b"ref")
    fs.mkdir("/images", 0o755)
    put(fs, "/images/a.jpg", photos[0].read_bytes())
    fs.rename("/.git", "/.git2")
    assert names(fs, "/") == ["images", ".git2"]
    assert get(fs, "/.git2/objects/o1") == b"1" and get(fs, "/.git2/HEAD") == b"ref"
    assert stat.S_IMODE(fs.getattr("/.git2/objects").mode) == 0o711  # modes follow
    assert fs.find_attr("/.git/objects/o1") is None and fs.find_attr("/.git") is None
    fs.rename("/.git2", "/images/.git")  # into a tensor
    assert names(fs, "/images") == ["a.jpg", ".git"]
    assert get(fs, "/images/.git/objects/o1") == b"1"
    # To an ordinary name: refused in place (EXDEV: mv copies it into ordinary directories).
    assert errno_of(fs.rename, "/images/.git", "/git") == errno.EXDEV
    # Inside itself: refused.
    assert errno_of(fs.rename, "/images/.git", "/images/.git/objects/.x") == errno.EINVAL
    # Onto an empty directory: replaces it; onto a non-empty one: ENOTEMPTY.
    fs.mkdir("/.empty", 0o755)
    fs.rename("/images/.git", "/.empty")
    assert get(fs, "/.empty/HEAD") == b"ref"
    fs.mkdir("/.full", 0o755)
    put(fs, "/.full/f", b"")
    assert errno_of(fs.rename, "/.empty", "/.full") == errno.ENOTEMPTY
    # An ordinary (pending) directory renamed to a hidden name becomes plain, in place;
    # a tensor or group copies (EXDEV).
    fs.mkdir("/pend", 0o755)
    put(fs, "/pend/notes", b"n")
    fs.rename("/pend", "/.full/pend")
    assert fs._dir_kind(".full/pend") == "plain" and get(fs, "/.full/pend/notes") == b"n"
    assert errno_of(fs.rename, "/images", "/.images") == errno.EXDEV
    # Files move in and out, and are plain inside.
    fs.rename("/images/a.jpg", "/.full/a.jpg")
    assert fs.ds.tensors["images"].num_samples == 0
    assert get(fs, "/.full/a.jpg") == photos[0].read_bytes()
    fs.mkdir("/pics", 0o755)
    fs.rename("/.full/a.jpg", "/pics/a.jpg")
    assert fs.ds.tensors["pics"].num_samples == 1


def test_a_pending_directory_renamed_takes_its_hidden_directories_along(fs):
    fs.mkdir("/proj", 0o755)
    fs.mkdir("/proj/.git", 0o755)
    put(fs, "/proj/.git/HEAD", b"ref")
    fs.rename("/proj", "/proj2")
    assert fs._dir_kind("proj2") == "pending" and names(fs, "/proj2") == [".git"]
    assert get(fs, "/proj2/.git/HEAD") == b"ref" and fs.ds.pending_dirs == ["proj2", "proj2/.git"]


def test_persistence_and_listing_order(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/.ipynb_checkpoints", 0o700)
    fs.mkdir("/b", 0o755)
    fs.mkdir("/.git", 0o755)
    fs.mkdir("/.git/objects", 0o755)
    for name in ("z", "a", "m"):
        put(fs, f"/.git/objects/{name}", name.encode())
    put(fs, "/.ipynb_checkpoints/x-checkpoint.ipynb", b"{}")
    fs.commit()  # (held files are listed after the stored ones until stored)
    before = {d: names(fs, d) for d in ("/", "/.git", "/.git/objects")}
    assert before["/.git/objects"] == ["a", "m", "z"]  # by name, as after a remount
    mode = fs.getattr("/.ipynb_checkpoints").mode
    fs.shutdown()
    ds.close()
    ds = lakefs.load(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    assert {d: names(fs, d) for d in before} == before
    assert fs.getattr("/.ipynb_checkpoints").mode == mode
    assert get(fs, "/.git/objects/m") == b"m"
    assert get(fs, "/.ipynb_checkpoints/x-checkpoint.ipynb") == b"{}"
    ds.close()


def test_the_python_api_keeps_refusing_hidden_tensor_and_group_names(fs):
    fs.mkdir("/.git", 0o755)
    ds = fs.ds
    for name in (".x", ".git/t", "a/.b"):
        with pytest.raises(InvalidNameError):
            ds.create_tensor(name)
        with pytest.raises(InvalidNameError):
            ds.create_group(name)
        with pytest.raises(InvalidNameError):
            ds.make_pending_dir(name)
    with pytest.raises(InvalidNameError):
        ds.make_plain_dir("plain")  # no hidden part
    with pytest.raises(LakeFSError):
        ds.make_plain_dir(".nope/.x")  # no parent


def test_a_tensor_is_renamed_in_place_with_its_plain_files(fs, photos):
    """Its plain files and directories move along (they were left behind under the old
    name by ``Dataset.rename_tensor``, so the mount answered EXDEV and mv copied)."""
    fs.mkdir("/t", 0o755)
    put(fs, "/t/a.jpg", photos[0].read_bytes())
    put(fs, "/t/README", b"r")
    fs.commit()  # stored, not held
    fs.rename("/t", "/u")
    assert names(fs, "/u") == ["a.jpg", "README"] and get(fs, "/u/README") == b"r"
    assert sorted(fs.ds.files) == ["u/README"]
    fs.ds.rename_tensor("u", "v")
    assert sorted(fs.ds.files) == ["v/README"]


def test_a_path_under_a_file_two_levels_up_is_enotdir(fs):
    """As the kernel's walk (``d/.g/a`` with ``d`` a file): found by the differential test."""
    put(fs, "/d", b"")
    assert errno_of(fs.create, "/d/.g/a", 0o644) == errno.ENOTDIR
    assert errno_of(fs.mkdir, "/d/.g/h", 0o755) == errno.ENOTDIR
    assert errno_of(fs.rmdir, "/d/.g") == errno.ENOTDIR
    assert errno_of(fs.getattr, "/d/.g/a") == errno.ENOTDIR
