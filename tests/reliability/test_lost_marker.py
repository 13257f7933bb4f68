"""A dataset whose marker (``lakefs.json``) was lost is never taken for an empty place:
opening, ``lakefs.dataset()``, ``ingest`` and ``mount`` refuse it with one line saying so
and how to recover, and change nothing; only what an interrupted creation leaves (an
empty first commit without its marker) is completed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from reliability_helpers import LAKEFS, REPO, env

import lakefs
from lakefs.errors import CorruptionError
from lakefs.format import keys

pytestmark = pytest.mark.timeout(120)


def files(ds: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ds)): p.read_bytes() for p in sorted(ds.rglob("*")) if p.is_file()}


@pytest.fixture
def markerless(dataset_path: Path) -> Path:
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("blobs", htype="bytes")
        for i in range(5):
            ds.append({"blobs": b"sample %d" % i})
    (dataset_path / keys.MARKER).unlink()
    return dataset_path


def assert_refused(text: str, ds: Path) -> None:
    assert f"{ds}: the dataset marker lakefs.json is missing, but a dataset is there (HEAD names commit" in text
    assert f"`lakefs fsck --repair {ds}` restores the marker" in text


@pytest.mark.parametrize("open_it", [
    lambda p: lakefs.dataset(p), lambda p: lakefs.load(p), lambda p: lakefs.load(p, read_only=True),
    lambda p: lakefs.empty(p)], ids=["dataset", "load", "load-ro", "empty"])
def test_the_api_refuses_a_dataset_that_lost_its_marker(markerless: Path, open_it) -> None:
    before = files(markerless)
    with pytest.raises(CorruptionError) as e:
        open_it(markerless)
    assert_refused(str(e.value), markerless)
    assert files(markerless) == before  # not even a lock file


def test_ingest_and_mount_refuse_it(cli, markerless: Path, tmp_path: Path) -> None:
    before = files(markerless)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json").write_text("{}")
    r = cli("ingest", src, markerless)
    assert r.code == 1 and len(r.err.splitlines()) == 1
    assert_refused(r.err, markerless)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run([*LAKEFS, "mount", str(markerless), str(mnt)], capture_output=True, text=True,
                          cwd=REPO, env=env(), timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert_refused(proc.stderr, markerless)
    assert files(markerless) == before


@pytest.mark.parametrize("argv", [("info", ""), ("ls", ""), ("ls", "/blobs"), ("ls", "/blobs/nothing"),
                                  ("ls", "-l", "")], ids=["info", "ls", "ls-tensor", "ls-file", "ls-l"])
def test_ls_says_what_info_says(cli, markerless: Path, argv: tuple[str, ...]) -> None:
    """Found by QA: `lakefs ls` said "no lakefs dataset at ..." where info, export and
    compact said the marker is missing and how to restore it (one detection for all)."""
    before = files(markerless)
    *opts, inner = argv
    r = cli(*opts, f"{markerless}{inner}")
    assert r.code == 1 and len(r.err.splitlines()) == 1, r.err
    assert_refused(r.err, markerless)
    assert files(markerless) == before


def test_overwrite_replaces_it(markerless: Path) -> None:
    with lakefs.empty(markerless, overwrite=True) as ds:
        assert ds.tensors == {} and len(ds) == 0
    assert not [name for name in files(markerless) if name.startswith(("tensors/", "rows/"))]


@pytest.mark.parametrize("left", ["manifest", "manifest+HEAD"])
def test_an_interrupted_creation_is_completed(dataset_path: Path, left: str) -> None:
    lakefs.empty(dataset_path).close()
    (dataset_path / keys.MARKER).unlink()  # killed before its last put, the marker
    if left == "manifest":
        (dataset_path / keys.HEAD).unlink()  # or before HEAD
    with lakefs.dataset(dataset_path) as ds:
        ds.create_tensor("blobs", htype="bytes")
        ds.append({"blobs": b"x"})
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["blobs"][0].tobytes() == b"x"
