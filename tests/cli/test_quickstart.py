"""The README's quick start: ``scripts/quickstart.sh`` sets up, creates the demo dataset
and mounts it, and what it prints works (CI runs the other command, scripts/test.sh)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mounting import is_mounted, unmount

import lakefs

pytestmark = pytest.mark.timeout(300)  # (setup.sh checks apt and pip: ~10 s when all is there)

REPO = Path(__file__).resolve().parents[2]


def quickstart(dataset: Path, mnt: Path) -> subprocess.CompletedProcess:
    """Run it as the README says, except that it must not install: setup.sh's pip install
    -e would point the installed lakefs at whichever checkout runs the test (a worktree),
    and a .venv or build files would be left in the repo. ``$PYTHON`` refuses pip and
    venv, and no install stamp is found (as in a fresh checkout): only
    ``LAKEFS_SKIP_PIP`` keeps setup.sh from them."""
    python = dataset.parent / "python-that-refuses-installs"
    if not python.exists():
        python.write_text('#!/bin/sh\ncase "$1 $2" in "-m pip"|"-m venv") echo "a test must not install: $*" >&2; '
                          f'exit 1;; esac\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
    env = {**os.environ, "LAKEFS_DEMO_DATASET": str(dataset), "LAKEFS_DEMO_MNT": str(mnt),
           "LAKEFS_SKIP_PIP": "1", "PYTHON": str(python), "XDG_CACHE_HOME": str(dataset.parent / "cache")}
    return subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh")], capture_output=True, text=True,
                          cwd="/", env=env, timeout=240)


def repo_files() -> set[str]:
    """What git sees in the checkout, ignored files too (bytecode aside)."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {line for line in out.splitlines() if "__pycache__" not in line and ".pytest_cache" not in line}


def test_quickstart_mounts_a_new_dataset_that_takes_photos(tmp_path: Path, photos: list[Path]) -> None:
    dataset, mnt = tmp_path / "demo-dataset", tmp_path / "mnt"
    before = repo_files()
    try:
        r = quickstart(dataset, mnt)
        assert r.returncode == 0, r.stderr
        assert "lakefs is mounted" in r.stdout and f"umount {mnt}" in r.stdout
        assert is_mounted(mnt)
        # What it tells the user to do next:
        (mnt / "images").mkdir()
        subprocess.run(["cp", *map(str, photos[:3]), str(mnt / "images")], check=True, timeout=60)
        listed = sorted(os.listdir(mnt / "images"))
        assert listed == sorted(p.name for p in photos[:3])
        for p in photos[:3]:
            assert hashlib.md5((mnt / "images" / p.name).read_bytes()).digest() == \
                hashlib.md5(p.read_bytes()).digest()
        again = quickstart(dataset, mnt)  # a second run says it is mounted already
        assert again.returncode == 0 and "already mounted" in again.stdout, again.stdout + again.stderr
        umount = subprocess.run([*r.stdout.split("Unmount", 1)[1].splitlines()[1].split()], capture_output=True,
                                text=True, cwd="/", timeout=120)  # the printed umount command
        assert umount.returncode == 0, umount.stderr
        assert not is_mounted(mnt)
    finally:
        unmount(mnt)
    assert repo_files() == before  # nothing installed or written in the repo
    with lakefs.load(dataset, read_only=True) as ds:
        assert ds["images"].num_samples == 3
        assert ds["images"][photos[0].stem].tobytes() == photos[0].read_bytes()


def test_quickstart_knows_a_mount_at_a_path_with_spaces_also_a_dead_one(tmp_path: Path) -> None:
    """Found by review: the "already mounted" check looked for the path as typed in
    /proc/self/mounts, which writes a space as \\040, so a second run went on to mount
    again and failed; and a dead mount there stopped it at `mkdir -p` (ENOTCONN)."""
    from lakefs.cli.mount import _mount_pid

    dataset = tmp_path / "my data" / "demo dataset"
    dataset.parent.mkdir()
    # Not under pytest's temp root, where another session starting clears dead mounts.
    mnt = Path(tempfile.mkdtemp(prefix="lakefs quickstart ")) / "m nt"
    try:
        r = quickstart(dataset, mnt)
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)
        again = quickstart(dataset, mnt)
        assert again.returncode == 0 and "already mounted" in again.stdout, again.stdout + again.stderr
        pid = _mount_pid(str(mnt))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # its mount stays behind, dead
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        dead = quickstart(dataset, mnt)
        assert dead.returncode == 0 and "already mounted" in dead.stdout, dead.stdout + dead.stderr
        # The printed umount command, pasted into a shell, clears it.
        umount = subprocess.run(["bash", "-c", r.stdout.split("Unmount", 1)[1].splitlines()[1]], capture_output=True,
                                text=True, cwd="/", timeout=120)
        assert umount.returncode == 1 and "cleared the dead mount" in umount.stderr, umount.stderr
        assert not is_mounted(mnt)
    finally:
        if unmount(mnt):
            shutil.rmtree(mnt.parent)
