"""A transcoding ``lakefs ingest -j N`` killed (kill -9) mid-run: the periodic commits keep
what was ingested before, and a rerun resumes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from reliability_helpers import LAKEFS, REPO, env

import lakefs

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")

FILES = 300  # about 4 s of transcoding with two workers


@pytest.fixture
def many_pngs(tmp_path: Path, png_dir: Path) -> Path:
    """FILES PNGs (hard links to six photos): each one is transcoded into the jpeg tensor."""
    out = tmp_path / "many"
    out.mkdir()
    pngs = sorted(png_dir.iterdir())
    for i in range(FILES):
        os.link(pngs[i % len(pngs)], out / f"f{i:04d}.png")
    return out


@pytest.fixture
def png_dir(tmp_path: Path, photo_factory) -> Path:
    out = tmp_path / "pngs"
    out.mkdir()
    for p in photo_factory(6, png=True):
        png = p.with_suffix(".png")
        os.link(png, out / png.name)
    return out


def start_ingest(src: Path, ds: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*LAKEFS, "ingest", str(src), str(ds), "--tensor", "images", "--htype", "image",
         "--sample-compression", "jpeg", "-j", "2", "--commit-seconds", "0.2", "-q"],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def head_seq(ds: Path) -> int:
    try:
        return json.loads((ds / "HEAD").read_text())["seq"]
    except (OSError, ValueError):
        return 0


def wait_for_commits(proc: subprocess.Popen, ds: Path, seq: int, timeout: float = 60) -> None:
    """Until HEAD reaches ``seq`` while ``proc`` still runs (commits made during the run)."""
    deadline = time.monotonic() + timeout
    while head_seq(ds) < seq:
        assert proc.poll() is None, f"ingest ended at commit {head_seq(ds)} without committing as it went"
        assert time.monotonic() < deadline, "no commit in time"
        time.sleep(0.02)


def committed(ds: Path) -> int:
    with lakefs.load(ds, read_only=True) as d:
        return d["images"].num_samples if "images" in d.tensors else 0


def assert_rerun_resumes(cli, src: Path, ds: Path, kept: int) -> None:
    r = cli("ingest", src, ds, "--tensor", "images", "--htype", "image", "--sample-compression", "jpeg", "-j", "2")
    assert r.code == 0, r.err
    assert f"ingested {FILES - kept} of {FILES} files" in r.out and f"{kept} already stored" in r.out, r.out
    assert committed(ds) == FILES


@pytest.mark.timeout(240)
def test_kill_9_keeps_the_periodic_commits(cli, many_pngs: Path, dataset_path: Path) -> None:
    proc = start_ingest(many_pngs, dataset_path)
    try:
        wait_for_commits(proc, dataset_path, 3)  # created, then two commits by --commit-seconds
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = committed(dataset_path)
    assert 0 < kept < FILES
    assert_rerun_resumes(cli, many_pngs, dataset_path, kept)
