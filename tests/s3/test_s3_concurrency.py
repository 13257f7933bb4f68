"""Many readers, one writer, on one S3 dataset: snapshots, the lease, a killed writer (issue 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mounting import mounted
from s3util import fill, lakefs_mount, md5, options, write_config

import lakefs
from lakefs.errors import LockedError

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


def snapshot(mnt: Path) -> dict[str, str]:
    return {p.name: md5(p.read_bytes()) for p in sorted((mnt / "images").iterdir())}


def test_two_readonly_mounts_read_while_a_writer_appends(photo_factory, s3_endpoint, s3_url,
                                                         tmp_path):
    first, more = photo_factory(6, seed=1), photo_factory(6, seed=2)
    want = fill(s3_url, s3_endpoint, first, chunk_size=128 << 10)
    config = write_config(tmp_path / "lakefs.yaml", s3_endpoint, tmp_path / "cache")
    mnts = [tmp_path / "a", tmp_path / "b"]
    for m in mnts:
        m.mkdir()
    writer = lakefs.load(s3_url, storage_options=options(s3_endpoint))
    try:
        with mounted(lakefs_mount(s3_url, mnts[0], "-o", "ro", "--config", str(config)), mnts[0]), \
             mounted(lakefs_mount(s3_url, mnts[1], "-o", "ro", "--config", str(config)), mnts[1]):
            seen: list[dict[str, str]] = []
            errors: list[BaseException] = []
            stop = threading.Event()

            def reader(mnt: Path) -> None:
                try:
                    while not stop.is_set():
                        seen.append(snapshot(mnt))
                except BaseException as e:  # reported below
                    errors.append(e)

            threads = [threading.Thread(target=reader, args=(m,)) for m in mnts for _ in range(2)]
            for t in threads:
                t.start()
            for p in more:  # the writer appends and commits while the readers read
                writer.append({"images": lakefs.read(p)}, key=f"more-{p.stem}")
                writer.flush()
            stop.set()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors
            # Each mount serves the snapshot it opened: complete, never a torn mix.
            assert len(seen) >= 4 and all(s == want for s in seen)

            # A second writer (a writable mount) is refused with one clear line.
            busy = tmp_path / "busy"
            busy.mkdir()
            done = subprocess.run(lakefs_mount(s3_url, busy, "--config", str(config)),
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 1
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert "already open for writing" in lines[0] and f"pid {os.getpid()}" in lines[0]
            assert not os.path.ismount(busy)
    finally:
        writer.close()
    everything = {**want, **{f"more-{p.name}": md5(p.read_bytes()) for p in more}}
    mnt = tmp_path / "c"
    mnt.mkdir()
    with mounted(lakefs_mount(s3_url, mnt, "-o", "ro", "--config", str(config)), mnt):
        assert snapshot(mnt) == everything  # a new mount sees every commit


_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
import lakefs
from s3server import s3_options
ds = lakefs.load(sys.argv[2], storage_options={**s3_options(sys.argv[3]), "lease_seconds": 2})
ds.append({"images": lakefs.read(sys.argv[4])}, key="durable")
ds.flush()
ds.append({"images": lakefs.read(sys.argv[4])}, key="never-committed")
print("ready", flush=True)
time.sleep(120)
"""


def test_killed_writer_lease_expires_and_a_mount_takes_over(photos, s3_endpoint, s3_url, tmp_path,
                                                            mountpoint, caplog):
    fill(s3_url, s3_endpoint, photos[:2])
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(REPO / "tests"), s3_url, s3_endpoint, str(photos[2])],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(LockedError, match=f"pid {child.pid}"):
            lakefs.load(s3_url, storage_options=options(s3_endpoint))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    deadline = time.monotonic() + 10  # the lease is 2 s; renewals stopped with the process
    while True:
        try:
            with caplog.at_level("WARNING", logger="lakefs"):
                lakefs.load(s3_url, storage_options=options(s3_endpoint)).close()
            break
        except LockedError:
            assert time.monotonic() < deadline, "a killed writer's lease never expired"
            time.sleep(0.2)
    taken = [r.getMessage() for r in caplog.records if "taking over the expired writer lease" in r.getMessage()]
    assert len(taken) == 1 and f"(pid {child.pid} on " in taken[0] and "{" not in taken[0], taken  # (no dict)
    config = write_config(tmp_path / "lakefs.yaml", s3_endpoint, tmp_path / "cache", lease_seconds=2)
    with mounted(lakefs_mount(s3_url, mountpoint, "--config", str(config)), mountpoint):
        names = sorted(os.listdir(mountpoint / "images"))
        assert names == sorted([photos[0].name, photos[1].name, "durable.jpg"])
        (mountpoint / "images" / "after.jpg").write_bytes(photos[3].read_bytes())
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert ds["after"]["images"].tobytes() == photos[3].read_bytes()


def test_a_second_writer_in_this_process_is_told_so(s3_endpoint, s3_url):
    """Not "locked by another writer (pid <this process> ...)"."""
    first = lakefs.empty(s3_url, storage_options=options(s3_endpoint))
    try:
        with pytest.raises(LockedError, match="already open for writing in this process") as e:
            lakefs.load(s3_url, storage_options=options(s3_endpoint))
        assert e.value.in_this_process
    finally:
        first.close()
    lakefs.load(s3_url, storage_options=options(s3_endpoint)).close()


def test_with_blocks_release_the_lease_and_take_it_again(s3_endpoint, s3_url):
    ds = lakefs.empty(s3_url, storage_options=options(s3_endpoint))
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
    with lakefs.load(s3_url, storage_options=options(s3_endpoint)) as other:  # the lease is free
        other.x.append(2)
    with ds:
        ds.x.append(3)
    ds.close()
    ro = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert [s.numpy().item() for s in ro.x] == [1, 2, 3]
