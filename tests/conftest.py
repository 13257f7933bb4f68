"""Fixtures shared by the whole test suite.

- ``photos`` / ``photo_factory``: realistic JPEGs (scripts/make_photos.py), made once per
  session and shared read-only: copy them before modifying.
- ``dataset_path``: where a test's dataset goes (not created).
- ``mountpoint``: an empty directory to mount on.
- Stale-mount hygiene: FUSE mounts left under this session's tmp dirs are lazily
  unmounted at the end; dead ones (ENOTCONN) from earlier crashed sessions at the start.
  Live mounts of other, concurrent pytest sessions are left alone.
"""

from __future__ import annotations

import getpass
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _path in (TESTS_DIR, REPO_ROOT / "scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from mounting import mounted_paths, unmount  # noqa: E402

PhotoFactory = Callable[..., list[Path]]


# --- stale mounts ------------------------------------------------------------------------


def _pytest_tmp_root() -> Path:
    """The parent of every session's basetemp (``/tmp/pytest-of-<user>``)."""
    return Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"


def _is_dead(path: str) -> bool:
    """True if stat on a mountpoint fails with ENOTCONN (its FUSE process is gone); a
    wedged (alive but hung) filesystem cannot hang the suite (lakefs.fs.mount.is_dead)."""
    from lakefs.fs.mount import is_dead

    return is_dead(path)


def _fuse_mounts_under(root: Path) -> list[str]:
    prefix = str(root) + os.sep
    return [p for p in mounted_paths("fuse") if p.startswith(prefix)]


def pytest_configure(config: pytest.Config) -> None:
    """Mounts and ``lakefs umount`` keep state files (logs, failure records) in
    $XDG_STATE_HOME: the suite's go to a directory of its own, not the user's
    ~/.local/state (set before collection: modules copy os.environ into their ENV)."""
    if not hasattr(config, "workerinput") and "LAKEFS_TEST_STATE" not in os.environ:
        state = tempfile.mkdtemp(prefix="lakefs-test-state-")
        os.environ["XDG_STATE_HOME"] = os.environ["LAKEFS_TEST_STATE"] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    state = os.environ.get("XDG_STATE_HOME", "")
    if os.path.basename(state).startswith("lakefs-test-state-") and state == os.environ.get("LAKEFS_TEST_STATE"):
        shutil.rmtree(state, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Detach dead FUSE mounts left by earlier crashed sessions (they break tmp cleanup)."""
    for path in _fuse_mounts_under(_pytest_tmp_root()):
        if _is_dead(path):
            unmount(path)


@pytest.fixture(autouse=True)
def garbage_deleted_by_the_next_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process datasets delete what a commit made garbage at the next commit, not
    GARBAGE_GRACE seconds later, so tests can see it go (tests/dataset/test_garbage.py
    tests the grace itself; mounts in subprocesses keep it)."""
    from lakefs.dataset import dataset as dataset_module

    monkeypatch.setattr(dataset_module, "GARBAGE_GRACE", 0.0)


@pytest.fixture(scope="session", autouse=True)
def _unmount_leftovers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, unmount every FUSE mount left under our basetemp."""
    yield
    for path in _fuse_mounts_under(tmp_path_factory.getbasetemp()):
        unmount(path)


# --- data ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def photo_factory(tmp_path_factory: pytest.TempPathFactory) -> PhotoFactory:
    """``photo_factory(count, png=False, seed=0)`` -> JPEG paths, cached per session."""
    from make_photos import make_photos  # noqa: PLC0415  (scripts/make_photos.py)

    cache: dict[tuple[int, bool, int], list[Path]] = {}

    def make(count: int, png: bool = False, seed: int = 0) -> list[Path]:
        key = (count, png, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"photos-{count}-{'png' if png else 'jpg'}-{seed}")
            cache[key] = make_photos(out, count, png=png, seed=seed)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def photos(photo_factory: PhotoFactory) -> list[Path]:
    """Eight realistic ~70 KB JPEGs (shared: do not modify them in place)."""
    return photo_factory(8)


@pytest.fixture
def dataset_path(tmp_path: Path) -> Path:
    """A path for a new dataset (the directory does not exist yet)."""
    return tmp_path / "dataset"


@pytest.fixture
def mountpoint(tmp_path: Path) -> Path:
    """An empty directory to mount on."""
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@pytest.fixture
def fsync_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths fsynced from now on, in order (``os.fsync`` is spied on; it still syncs)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def pytest_addoption(parser: pytest.Parser) -> None:
    # pytest parses the command line before it loads conftests below tests/ (only
    # tests/test*/conftest.py are read that early), so `pytest --soak` from the repo root
    # needs the option registered here; it is defined in tests/reliability/conftest.py.
    from reliability.conftest import add_soak_option  # noqa: PLC0415

    add_soak_option(parser)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One real S3 server (moto, a subprocess on 127.0.0.1) for the whole session, with
    the test bucket created; tests/s3server.py."""
    from s3server import BUCKET, boto_client, moto_server  # noqa: PLC0415  (boto only when needed)

    with moto_server() as endpoint:
        boto_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
