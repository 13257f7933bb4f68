"""Hidden directories through a real mount (found by review: ``mkdir .git`` said "Invalid
argument", so ``cp -r``/``rsync -a`` of a project folder failed partway, Jupyter could
not save its checkpoints, and ``snapshot_download(local_dir=...)`` failed on ``.cache``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import mounted

import lakefs

pytestmark = pytest.mark.timeout(120)


def lakefs_mount(ds: Path, mnt: Path, *opts: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), *opts]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


def tree_md5(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def tree_dirs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


@pytest.fixture
def project(photos, tmp_path) -> Path:
    """A project folder: a git repository, notebook checkpoints, images (with a hidden
    cache directory in the image folder, which becomes a tensor), notebooks with their
    checkpoints (the notebooks' folder becomes a tensor too)."""
    src = tmp_path / "project"
    (src / ".git" / "objects" / "ab").mkdir(parents=True)
    (src / ".git" / "objects" / "ab" / "cdef").write_bytes(os.urandom(3000))
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / ".git" / "refs" / "heads").mkdir(parents=True)  # an empty directory too
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text('{"cells": []}\n')
    (src / "notebooks" / ".ipynb_checkpoints").mkdir(parents=True)  # in a tensor (of notebooks)
    (src / "notebooks" / "x.ipynb").write_text('{"cells": [1]}\n')
    (src / "notebooks" / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text('{"cells": []}\n')
    (src / "images" / ".cache" / "huggingface").mkdir(parents=True)
    (src / "images" / ".cache" / "huggingface" / "a.jpg.lock").write_bytes(b"")
    for p in photos[:4]:
        shutil.copy(p, src / "images" / p.name)
    os.chmod(src / ".git" / "objects", 0o750)
    for k, d in enumerate(sorted((p for p in src.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))):
        os.utime(d, ns=(1_600_000_000_000_000_000 + k, 1_600_000_000_000_000_000 + 1000 * k))
    return src


def test_cp_r_and_rsync_a_of_a_project_with_hidden_directories(project, dataset_path, mountpoint):
    want, dirs = tree_md5(project), tree_dirs(project)
    itemize = ["rsync", "-ai", f"{project}/", f"{mountpoint}/rs/"]
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        run("cp", "-r", str(project), str(mountpoint / "cp"))
        run("rsync", "-a", f"{project}/", f"{mountpoint}/rs/")
        second = run("rsync", "-a", "--stats", f"{project}/", f"{mountpoint}/rs/").stdout
        assert "Number of regular files transferred: 0" in second
        assert run(*itemize).stdout == ""  # directories keep their modes and times too
        for top in ("cp", "rs"):
            assert tree_md5(mountpoint / top) == want and tree_dirs(mountpoint / top) == dirs
        st = (mountpoint / "rs" / ".git" / "objects").stat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
        ls = run("ls", "-la", str(mountpoint / "rs")).stdout
        assert ".git" in ls and ".ipynb_checkpoints" in ls
        found = run("find", str(mountpoint / "rs"), "-type", "f").stdout.split()
        assert len(found) == len(want)
    ds = lakefs.load(dataset_path, read_only=True)
    # The hidden directories are no tensors.
    assert sorted(ds.tensors) == ["cp/images", "cp/notebooks", "rs/images", "rs/notebooks"]
    assert ds.tensors["rs/images"].num_samples == 4
    ds.close()
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        for top in ("cp", "rs"):
            assert tree_md5(mountpoint / top) == want and tree_dirs(mountpoint / top) == dirs
        assert run(*itemize).stdout == ""


def test_rm_r_of_a_hidden_directory(project, dataset_path, mountpoint):
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        run("cp", "-r", f"{project}/.", str(mountpoint))
        (mountpoint / ".cache").mkdir(mode=0o700)  # what snapshot_download(local_dir=) makes
        (mountpoint / ".cache" / "huggingface" / "download").mkdir(parents=True)
        (mountpoint / ".cache" / "huggingface" / "download" / "x.metadata").write_text("m\n")
        assert stat.S_IMODE((mountpoint / ".cache").stat().st_mode) == 0o700
        with pytest.raises(OSError):
            (mountpoint / ".git").rmdir()  # not empty
        run("rm", "-r", str(mountpoint / ".git"), str(mountpoint / "images" / ".cache"))
        assert not (mountpoint / ".git").exists()
        assert sorted(os.listdir(mountpoint)) == [".cache", ".ipynb_checkpoints", "images", "notebooks"]
        assert sorted(os.listdir(mountpoint / "images")) == sorted(p.name for p in project.glob("images/*.jpg"))
    ds = lakefs.load(dataset_path, read_only=True)
    assert not [p for p in [*ds.files, *ds.pending_dirs] if p.startswith((".git", "images/.cache"))]
    ds.close()
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        assert not (mountpoint / ".git").exists()
        assert (mountpoint / ".cache" / "huggingface" / "download" / "x.metadata").read_text() == "m\n"
