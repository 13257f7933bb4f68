"""Differential test of the filesystem (issue 5): lakefs against a plain directory.

A Hypothesis state machine applies the same random operations (create, write at an
offset, truncate, rename, unlink, mkdir, rmdir, read) to a plain directory and to a
mounted dataset, and requires the same observable results: file contents and sizes,
directory listings, and the errno of every failure. Hypothesis shrinks a difference to
a minimal sequence.

The domain is where lakefs promises plain-file behaviour (DESIGN §4):

- the root and directories made by ``mkdir`` at the root (pending directories, which
  become ``bytes`` tensors at their first ``.bin`` file: a bytes tensor stores any file
  as-is, so a sample behaves like a plain file);
- hidden directories: ``.h`` at the root and ``d/.g`` (in a pending directory or a
  tensor): plain directories, holding plain files of every name above;
- file names ``a``, ``b`` (no extension: staging files, plain files everywhere),
  ``x.bin``, ``y.bin`` (samples inside a bytes tensor, staging files elsewhere) and
  ``x.dat`` (a second name for the row key ``x`` when ``x.bin`` holds it: a plain file;
  it was EEXIST).

Outside the domain lakefs deliberately differs and other tests cover it: ordinary
directories inside a tensor (EPERM), samples moved between tensors, a hidden directory
renamed to an ordinary name and a tensor to a hidden one (EXDEV, mv copies: the machine
then checks that nothing changed), hidden and rsync temp names in image tensors, content
that must decode. Ordinary directories are only made at the root for that reason.

Two runs: through a real mount (one mount per test; ``remount`` is a rule), and directly
against :class:`DatasetFS` without a kernel (fast, many more examples; ``remount``
closes and reopens the dataset).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from mounting import mounted, unmount
from reliability_helpers import lakefs_mount

import lakefs
from lakefs.errors import LakeFSError
from lakefs.fs.tree import DatasetFS

DIRS = ["d", "e", ".h", "d/.g"]
NAMES = ["a", "b", "x.bin", "y.bin", "x.dat"]
paths = st.sampled_from([*NAMES, *(f"{d}/{n}" for d in DIRS for n in NAMES)])
any_path = st.sampled_from([*NAMES, *DIRS, *(f"{d}/{n}" for d in DIRS for n in NAMES)])
dirs = st.sampled_from(DIRS)
data = st.binary(max_size=300) | st.sampled_from([b"", b"x" * 5000])
offsets = st.integers(0, 400)


def _errno(fn, *args):
    """("ok", result) or ("err", errno) of a call."""
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", e.errno)


# --- backends --------------------------------------------------------------------------


class OsBackend:
    """Operations through the kernel on a directory: plain, or a lakefs mountpoint."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def p(self, path: str) -> str:
        return os.path.join(self.root, path)

    def create(self, path: str, content: bytes) -> None:
        fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)

    def write_at(self, path: str, offset: int, content: bytes) -> None:
        fd = os.open(self.p(path), os.O_WRONLY)
        try:
            os.pwrite(fd, content, offset)
        finally:
            os.close(fd)

    def truncate(self, path: str, length: int) -> None:
        os.truncate(self.p(path), length)

    def rename(self, old: str, new: str) -> None:
        os.rename(self.p(old), self.p(new))

    def unlink(self, path: str) -> None:
        os.unlink(self.p(path))

    def mkdir(self, path: str) -> None:
        os.mkdir(self.p(path))

    def rmdir(self, path: str) -> None:
        os.rmdir(self.p(path))

    def read(self, path: str) -> tuple[bytes, int]:
        with open(self.p(path), "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_size

    def tree(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            for d in dirnames:
                out[os.path.normpath(os.path.join(rel, d))] = None
            for f in filenames:
                path = os.path.join(dirpath, f)
                with open(path, "rb") as fh:
                    content = fh.read()
                assert os.stat(path).st_size == len(content), f"{path}: st_size is not exact"
                out[os.path.normpath(os.path.join(rel, f))] = content
        return out

    def reset(self) -> None:
        """Empty the tree through the same operations (a mount keeps its dataset)."""
        tree = self.tree()
        for path in sorted((p for p, c in tree.items() if c is not None), reverse=True):
            self.unlink(path)
        for path in sorted((p for p, c in tree.items() if c is None), key=len, reverse=True):
            self.rmdir(path)

    def clear(self) -> None:
        for name in os.listdir(self.root):
            p = self.p(name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)


class DirectBackend:
    """The same operations on :class:`DatasetFS`, no kernel. The few checks the kernel's
    VFS makes before calling a filesystem are done here the way the VFS does them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.n = 0
        self.fs: DatasetFS | None = None

    def reset(self) -> None:
        """A fresh dataset per example, so examples cannot leak state into each other."""
        if self.fs is not None:
            self.close()
        self.n += 1
        self.ds_path = self.base / f"ds{self.n}"
        self.fs = DatasetFS(lakefs.dataset(self.ds_path))

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except LakeFSError as e:
            raise OSError(e.errno, str(e)) from e

    def create(self, path: str, content: bytes) -> None:
        fh = self._call(self.fs.create, "/" + path, 0o644)
        try:
            self._call(self.fs.write, fh, content, 0)
            self._call(self.fs.flush, fh)
        finally:
            self.fs.release(fh)

    def write_at(self, path: str, offset: int, content: bytes) -> None:
        fh = self._call(self.fs.open, "/" + path, os.O_WRONLY)
        try:
            self._call(self.fs.write, fh, content, offset)
            self._call(self.fs.flush, fh)
        finally:
            self.fs.release(fh)

    def truncate(self, path: str, length: int) -> None:
        self._call(self.fs.truncate, "/" + path, length)

    def rename(self, old: str, new: str) -> None:
        if "/" in old:  # the kernel walks the source's parent, then the target's,
            self._call(self.fs.getattr, "/" + old.rsplit("/", 1)[0])  # then the source
        if "/" in new:
            parent = new.rsplit("/", 1)[0]
            try:
                is_dir = self._call(self.fs.getattr, "/" + parent).is_dir()
            except FileNotFoundError:
                is_dir = True  # ENOENT comes from the source lookup or the rename itself
            if not is_dir:
                raise OSError(errno.ENOTDIR, parent)
        self._call(self.fs.getattr, "/" + old)  # lookup of the source: ENOENT next
        if new.startswith(old + "/"):
            raise OSError(errno.EINVAL, "rename into itself")  # vfs_rename
        if old.startswith(new + "/"):
            raise OSError(errno.ENOTEMPTY, "rename onto an ancestor")  # lock_rename trap
        self._call(self.fs.rename, "/" + old, "/" + new)

    def unlink(self, path: str) -> None:
        self._call(self.fs.unlink, "/" + path)

    def mkdir(self, path: str) -> None:
        self._call(self.fs.mkdir, "/" + path, 0o755)

    def rmdir(self, path: str) -> None:
        self._call(self.fs.rmdir, "/" + path)

    def read(self, path: str) -> tuple[bytes, int]:
        if self._call(self.fs.getattr, "/" + path).is_dir():
            raise OSError(errno.EISDIR, path)
        fh = self._call(self.fs.open, "/" + path, os.O_RDONLY)
        try:
            size = self.fs.getattr("/" + path).size
            return self._call(self.fs.read, fh, 1 << 20, 0), size
        finally:
            self.fs.release(fh)

    def tree(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}

        def walk(d: str) -> None:
            for name, attr in self._call(self.fs.readdir, "/" + d):
                rel = f"{d}/{name}" if d else name
                if attr.is_dir():
                    out[rel] = None
                    walk(rel)
                else:
                    content = self.read(rel)[0]
                    assert self.fs.getattr("/" + rel).size == len(content) == attr.size, rel
                    out[rel] = content

        walk("")
        return out

    def remount(self) -> None:
        self.fs.shutdown()
        self.fs.ds.close()
        self.fs = DatasetFS(lakefs.dataset(self.ds_path))

    def close(self) -> None:
        if self.fs is not None:
            self.fs.shutdown()
            self.fs.ds.close()
            self.fs = None


# --- the state machine -----------------------------------------------------------------


class Differential(RuleBasedStateMachine):
    """Set ``plain`` and ``lake`` (backends) and ``remount_lake`` before running."""

    plain: OsBackend
    lake: OsBackend | DirectBackend
    remount_lake = staticmethod(lambda: None)

    def __init__(self) -> None:
        super().__init__()
        self.plain.clear()
        self.lake.reset()

    def both(self, op: str, *args):
        want = _errno(getattr(self.plain, op), *args)
        got = _errno(getattr(self.lake, op), *args)
        assert got == want, f"{op}{args}: plain dir gives {want}, lakefs gives {got}"
        return got

    @rule(path=paths, content=data)
    def create(self, path, content):
        self.both("create", path, content)

    @rule(path=paths, offset=offsets, content=data)
    def write_at(self, path, offset, content):
        self.both("write_at", path, offset, content)

    @rule(path=paths, length=st.integers(0, 600))
    def truncate(self, path, length):
        self.both("truncate", path, length)

    @rule(old=any_path, new=any_path)
    def rename(self, old, new):
        if os.path.isdir(self.plain.p(old)):
            if "/" in new:
                return  # directories live at the root only (see the module doc)
            # A hidden directory to an ordinary name, a tensor to a hidden one: lakefs
            # answers EXDEV (README), and mv then copies. Nothing changes on either side.
            got = _errno(self.lake.rename, old, new)
            if got == ("err", errno.EXDEV):
                return
            want = _errno(self.plain.rename, old, new)
            assert got == want, f"rename{(old, new)}: plain dir gives {want}, lakefs gives {got}"
            return
        if os.path.dirname(old) != os.path.dirname(new):
            # A sample moved into another tensor: EXDEV by design (DESIGN §4; mv copies).
            got = _errno(self.lake.rename, old, new)
            if got == ("err", errno.EXDEV):
                return
            want = _errno(self.plain.rename, old, new)
            assert got == want, f"rename{(old, new)}: plain dir gives {want}, lakefs gives {got}"
            return
        self.both("rename", old, new)

    @rule(path=paths)
    def unlink(self, path):
        self.both("unlink", path)

    @rule(path=dirs)
    def mkdir(self, path):
        self.both("mkdir", path)

    @rule(path=dirs)
    def rmdir(self, path):
        self.both("rmdir", path)

    @rule(path=any_path)
    def read(self, path):
        self.both("read", path)

    @rule()
    def remount(self):
        self.remount_lake()

    @invariant()
    def same_tree(self):
        plain, lake = self.plain.tree(), self.lake.tree()
        assert sorted(lake) == sorted(plain), f"listing differs: plain {sorted(plain)}, lakefs {sorted(lake)}"
        for path, content in plain.items():
            assert lake[path] == content, f"{path}: plain has {content!r:.80}, lakefs {lake[path]!r:.80}"


def _run(machine: type[Differential], examples: int, steps: int) -> None:
    run = machine.TestCase
    run.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                            suppress_health_check=list(HealthCheck), derandomize=False)
    run().runTest()


@pytest.mark.timeout(300)
def test_mount_behaves_like_a_plain_directory(tmp_path, mountpoint, soak):
    plain = tmp_path / "plain"
    plain.mkdir()
    ds_path = tmp_path / "ds"
    argv = lakefs_mount(ds_path, mountpoint, "-o", "commit_interval=1")
    state: dict = {}

    def remount() -> None:
        state["ctx"].__exit__(None, None, None)
        state["ctx"] = mounted(argv, mountpoint, expected_errors=[r"WARNING"])
        state["ctx"].__enter__()

    class MountDifferential(Differential):
        pass

    MountDifferential.plain = OsBackend(plain)
    MountDifferential.lake = OsBackend(mountpoint)
    MountDifferential.remount_lake = staticmethod(remount)
    state["ctx"] = mounted(argv, mountpoint)
    state["ctx"].__enter__()
    try:
        _run(MountDifferential, examples=150 if soak else 12, steps=40 if soak else 20)
    finally:
        state["ctx"].__exit__(None, None, None)
        unmount(mountpoint)


@pytest.mark.timeout(300)
def test_datasetfs_behaves_like_a_plain_directory(tmp_path, soak):
    plain = tmp_path / "plain"
    plain.mkdir()
    backend = DirectBackend(tmp_path)

    class DirectDifferential(Differential):
        pass

    DirectDifferential.plain = OsBackend(plain)
    DirectDifferential.lake = backend
    DirectDifferential.remount_lake = staticmethod(backend.remount)
    try:
        _run(DirectDifferential, examples=2000 if soak else 200, steps=50 if soak else 30)
    finally:
        backend.close()
