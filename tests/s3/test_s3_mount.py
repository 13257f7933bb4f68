"""Mounting datasets that live on S3 (a real moto server), with the chunk cache (issue 6)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mounting import kill_during_the_final_commit, mounted
from s3server import BUCKET, CREDENTIALS, boto_client
from s3util import fill, lakefs_mount, md5, options, write_config

import lakefs

pytestmark = pytest.mark.timeout(90)


def read_all(mnt: Path) -> dict[str, str]:
    return {p.name: md5(p.read_bytes()) for p in sorted((mnt / "images").iterdir())}


def test_mount_with_config_reads_every_sample_and_epochs_hit_the_cache(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint):
    want = fill(s3_url, s3_endpoint, photos)
    argv = lakefs_mount(s3_url, mountpoint, "-o", "ro", "--config", str(s3_config))
    with mounted(argv, mountpoint) as m:
        assert read_all(mountpoint) == want
        assert "chunk cache of" in m.log()
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cached and sum(p.stat().st_size for p in cached) >= sum(p.stat().st_size for p in photos)

    # Take the chunks away from the store: a second epoch must read them from the cache.
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/") + "/"
    client = boto_client(s3_endpoint)
    chunks = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
              if "/chunks/" in o["Key"]]
    assert chunks
    for key in chunks:
        client.delete_object(Bucket=BUCKET, Key=key)
    with mounted(argv, mountpoint):
        assert read_all(mountpoint) == want


def test_cli_ingest_and_mount_with_aws_environment_variables(photos, s3_endpoint, s3_url,
                                                             tmp_path, mountpoint):
    """No config at all: endpoint, credentials and region from AWS_* variables; the cache
    defaults to $XDG_CACHE_HOME/lakefs/<hash>."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": CREDENTIALS["key"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret"], "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_endpoint, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    src = tmp_path / "src" / "images"
    src.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, src / p.name)
    done = subprocess.run([sys.executable, "-m", "lakefs", "ingest", str(src), s3_url, "-j", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"ingested {len(photos)} of {len(photos)} files" in done.stdout
    with mounted(lakefs_mount(s3_url, mountpoint, "-o", "ro"), mountpoint, env=env):
        assert read_all(mountpoint) == {p.name: md5(p.read_bytes()) for p in photos}
    caches = list((tmp_path / "xdg" / "lakefs").iterdir())
    assert len(caches) == 1 and any(p.is_file() for p in caches[0].rglob("*"))


def test_writable_mount_commits_to_the_store(photos, s3_endpoint, s3_url, s3_config, mountpoint):
    with mounted(lakefs_mount(s3_url, mountpoint, "--config", str(s3_config)), mountpoint):
        (mountpoint / "images").mkdir()
        for p in photos:
            shutil.copyfile(p, mountpoint / "images" / p.name)
        os.sync()
        assert sorted(os.listdir(mountpoint / "images")) == sorted(p.name for p in photos)
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == {
        p.name: md5(p.read_bytes()) for p in photos}


def test_rsync_into_a_writable_mount_stores_each_file_once(photos, s3_endpoint, s3_url, tmp_path,
                                                          mountpoint):
    """rsync writes .name.XXXXXX, closes it and renames it: the closed temp file waits in
    memory, so each photo goes into a chunk and no staged object is ever uploaded."""
    import yaml

    config = tmp_path / "lakefs.yaml"  # no periodic commit during the test: nothing stored early
    config.write_text(yaml.safe_dump({"storage": {"options": options(s3_endpoint), "cache_dir": str(tmp_path / "c")},
                                      "commit_interval": 600}))
    src = tmp_path / "src"
    src.mkdir()
    for p in photos:
        shutil.copy2(p, src / p.name)
    (src / "README").write_text("a plain file, kept as one")
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/") + "/"
    client = boto_client(s3_endpoint)

    def staged_objects() -> list[str]:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "files/")
        return [o["Key"] for o in listed.get("Contents", [])]

    with mounted(lakefs_mount(s3_url, mountpoint, "--config", str(config)), mountpoint):
        (mountpoint / "images").mkdir()
        shutil.copyfile(photos[0], mountpoint / "images" / photos[0].name)  # a jpeg tensor
        subprocess.run(["rsync", "-a", "--exclude", "README", f"{src}/", f"{mountpoint}/images/"], check=True)
        subprocess.run(["rsync", "-a", f"{src}/README", f"{mountpoint}/"], check=True)
        assert staged_objects() == []  # the README too waits for the next commit
        assert (mountpoint / "README").read_text() == "a plain file, kept as one"
        again = subprocess.run(["rsync", "-a", "--stats", "--exclude", "README", f"{src}/",
                                f"{mountpoint}/images/"], check=True, capture_output=True, text=True)
        assert "Number of regular files transferred: 0" in again.stdout
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == {p.name: md5(p.read_bytes()) for p in photos}
    assert ds.read_file("README") == b"a plain file, kept as one"
    assert len(staged_objects()) == 1  # the README, stored by the commit at unmount


def test_api_cache_dir_keeps_chunks_locally(photos, s3_endpoint, s3_url, tmp_path):
    want = fill(s3_url, s3_endpoint, photos)
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint),
                     cache_dir=tmp_path / "cache")
    first = {s.filename: md5(s.tobytes()) for s in ds.images}
    assert first == want
    cache = ds.storage
    assert cache.misses >= 1 and cache.hits >= len(photos) - cache.misses
    before = cache.misses
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == want
    assert cache.misses == before  # the second epoch is all local


def test_background_mount_and_lakefs_umount_wait_for_the_final_commit(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint):
    cli = [sys.executable, "-m", "lakefs"]
    subprocess.run([*cli, "mount", s3_url, str(mountpoint), "--config", str(s3_config),
                    "-o", "commit_interval=600", "--log-file", str(tmp_path / "mount.log")],
                   check=True, timeout=60)
    try:
        (mountpoint / "images").mkdir()
        (mountpoint / "images" / photos[0].name).write_bytes(photos[0].read_bytes())
    finally:
        done = subprocess.run([*cli, "umount", str(mountpoint)], capture_output=True, text=True,
                              timeout=150)
    assert done.returncode == 0, done.stderr
    # The mount process has committed and given the lease back: a writer gets it at once.
    with lakefs.load(s3_url, storage_options=options(s3_endpoint)) as ds:
        assert ds.images[0].tobytes() == photos[0].read_bytes()


def test_umount_says_when_the_mount_process_died_during_its_final_commit(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint):
    """Found by QA (on a local dataset): a mount killed during its final commit, after
    the kernel unmount, and `lakefs umount` exited 0. Here the killed writer's lease
    stays in the store: umount must not wait for it, only see the process gone."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, str(Path(__file__).parents[1] / "fs" / "slow_stop_mount.py"), "mount", s3_url,
            str(mountpoint), "--config", str(s3_config), "-o", "commit_interval=3600"]

    def fill(mnt: Path) -> None:
        (mnt / "images").mkdir()
        for p in photos:
            shutil.copyfile(p, mnt / "images" / p.name)

    started = time.monotonic()
    r = kill_during_the_final_commit(argv, mountpoint, gate, env, fill,
                                     [sys.executable, "-m", "lakefs", "umount", str(mountpoint)])
    assert r.returncode == 1, r.stderr
    assert r.stderr == (f"lakefs: error: unmounted {mountpoint}, but its mount process died before its final "
                        f"commit finished (files written since the last commit are lost; `lakefs fsck {s3_url}` "
                        "checks the rest)\n")
    assert time.monotonic() - started < 30  # (not the lease's 30 s, nor UMOUNT_WAIT)
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert "images" not in ds.tensors  # (lost indeed)


def test_a_dataset_url_with_a_comma_mounts(photos, s3_endpoint, s3_url, s3_config, mountpoint):
    """Found by review: the dataset's URL goes into libfuse's option string (fsname), which
    splits at commas: `lakefs mount s3://bucket/a,b ./mnt` failed with "could not mount
    ...: 3" (libfuse: "unknown option(s): `-o b'"). A backslash is libfuse's escape too."""
    url = s3_url + ",v2\\x"
    want = fill(url, s3_endpoint, photos[:2])
    with mounted(lakefs_mount(url, mountpoint, "--config", str(s3_config)), mountpoint):
        assert read_all(mountpoint) == want
        (mountpoint / "README").write_text("beside the photos")
        source = "lakefs:" + url.replace("\\", "\\134")  # (as proc(5) writes a backslash)
        with open("/proc/self/mounts") as table:
            assert f"{source} {mountpoint} " in table.read()
    ds = lakefs.load(url, read_only=True, storage_options=options(s3_endpoint))
    assert ds.read_file("README") == b"beside the photos"


def wait_for(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_a_mount_whose_writer_lease_was_taken_over_turns_read_only_and_umount_fails(
        photos, s3_endpoint, s3_url, tmp_path, mountpoint):
    """Found by review: a mount paused past its lease (SIGSTOP) while another writer took
    the lease and committed went on taking files it could never commit: `cp` succeeded,
    every periodic commit logged an ERROR, and the files were silently never stored. It
    now says so in one ERROR line and turns read-only (EROFS); reads go on, and `lakefs
    umount` exits 1 saying what was lost."""
    config = write_config(tmp_path / "lakefs.yaml", s3_endpoint, tmp_path / "cache", lease_seconds=2)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    argv = lakefs_mount(s3_url, mountpoint, "--config", str(config))
    lost = r"lakefs\.dataset: .* the writer lease was lost to another writer"
    with mounted(argv, mountpoint, env=env, expect_exit_code=1, expected_errors=[lost]) as m:
        fd = os.open(mountpoint / "kept.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"committed before")
        os.fsync(fd)
        os.close(fd)
        fd = os.open(mountpoint / "open.txt", os.O_WRONLY | os.O_CREAT, 0o644)  # written across the pause
        os.write(fd, b"half")
        os.kill(m.process.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # past its lease
            with lakefs.load(s3_url, storage_options=options(s3_endpoint)) as w2:  # takes it over
                w2.write_file("from_w2.txt", b"the other writer's")
        finally:
            os.kill(m.process.pid, signal.SIGCONT)
        wait_for(lambda: "serving the dataset's latest commit" in m.log())
        with pytest.raises(OSError) as e:
            os.write(fd, b" and the rest")
        assert e.value.errno == errno.EROFS
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EROFS
        done = subprocess.run(["cp", str(photos[0]), str(mountpoint / "late.jpg")], capture_output=True, text=True)
        assert done.returncode != 0 and "Read-only file system" in done.stderr
        assert (mountpoint / "kept.txt").read_bytes() == b"committed before"
        assert (mountpoint / "from_w2.txt").read_bytes() == b"the other writer's"  # the latest commit
        assert sorted(os.listdir(mountpoint)) == ["from_w2.txt", "kept.txt"]
        time.sleep(1.5)  # three commit intervals
        log = m.log()
        assert len([line for line in log.splitlines() if " ERROR " in line]) == 1, log
        assert "periodic commit failed" not in log
        done = subprocess.run([sys.executable, "-m", "lakefs", "umount", str(mountpoint)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "writer lease was lost to another writer" in done.stderr and "/open.txt" in done.stderr
        assert "Traceback" not in done.stderr
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert sorted(ds.files) == ["from_w2.txt", "kept.txt"] and not ds.tensors
    assert ds.read_file("from_w2.txt") == b"the other writer's"


def damage_cached(cache: Path, min_size: int, step: int = 50_000) -> list[Path]:
    """Flip one byte every ``step`` bytes of every cached file of ``min_size`` bytes or more
    (as QA did to a chunk; a small segment loses its first byte)."""
    files = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size >= min_size]
    for p in files:
        data = bytearray(p.read_bytes())
        for i in range(0, len(data), step):
            data[i] ^= 0xFF
        p.write_bytes(bytes(data))
    return files


@pytest.mark.parametrize("min_size", [64 << 10, 0], ids=["chunk", "every file"])
def test_a_damaged_cache_file_is_fetched_again_not_an_eio_for_good(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint, min_size):
    """Found by QA: a chunk damaged in the local cache gave EIO on every file in it, on
    every remount ("stored data is damaged", while fsck of the store said clean). It is
    now dropped and fetched again from the store, with one WARNING naming the file."""
    want = fill(s3_url, s3_endpoint, photos)
    argv = lakefs_mount(s3_url, mountpoint, "-o", "ro", "--config", str(s3_config))
    with mounted(argv, mountpoint):
        assert read_all(mountpoint) == want
    damaged = damage_cached(tmp_path / "cache", min_size)
    assert damaged
    with mounted(argv, mountpoint) as m:
        assert read_all(mountpoint) == want
        log = m.log()
    warned = [line for line in log.splitlines() if "WARNING" in line and "was damaged" in line]
    assert len(warned) == len(damaged) and all(any(str(p) in w for w in warned) for p in damaged)
    with mounted(argv, mountpoint) as m:  # the cache holds good copies again
        assert read_all(mountpoint) == want
        assert "was damaged" not in m.log()


def test_the_lease_of_a_killed_writer_of_this_machine_is_waited_out_and_said_so(s3_endpoint, s3_url, s3_config,
                                                                                tmp_path, mountpoint):
    """After kill -9 of a writable mount, the next one said "dataset is locked by another
    writer (pid 4121 on vm, lease expires in 26 s) ...; mount it with -o ro to read it
    beside its writer" of a pid of this machine that was dead, and named the dataset
    twice (found by QA). The wait stays (a writer in a container on this machine has a
    pid we cannot see); the message says what is so, once."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    with lakefs.dataset(s3_url, storage_options=options(s3_endpoint)) as ds:
        ds.create_tensor("notes", htype="text")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid of this machine, not running
    dead.wait()
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    key = s3_url.removeprefix(f"s3://{BUCKET}/") + "/locks/writer"

    def lease(pid: int) -> None:  # as a writer of this machine writes it, 26 s before its end
        record = {"owner": "w", "pid": pid, "host": socket.gethostname(), "seconds": 30, "renewal": 3,
                  "boot": boot, "boot_expires": time.clock_gettime(time.CLOCK_BOOTTIME) + 26,
                  "expires": time.time() + 26}
        boto_client(s3_endpoint).put_object(Bucket=BUCKET, Key=key, Body=json.dumps(record).encode())

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakefs", *argv, "--config", str(s3_config)],
                              capture_output=True, text=True, timeout=60, env=env)

    lease(dead.pid)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    gone = rf"the writer that holds its lease \(pid {dead.pid} on this machine\) is not running here; its lease"
    r = run("mount", s3_url, str(mountpoint))
    assert r.returncode == 1 and not os.path.ismount(mountpoint)
    assert re.fullmatch(rf"lakefs: error: {s3_url}: {gone} runs out in 2[0-6] s: mount again then\n",
                        r.stderr), r.stderr
    r = run("ingest", str(src), s3_url)
    assert r.returncode == 1
    assert re.fullmatch(rf"lakefs: error: {s3_url}: {gone} runs out in 2[0-6] s: try again then\n", r.stderr), r.stderr
    lease(os.getpid())  # a writer that runs: read beside it
    r = run("mount", s3_url, str(mountpoint))
    assert r.returncode == 1 and r.stderr.count(s3_url) == 1, r.stderr
    assert re.fullmatch(rf"lakefs: error: {s3_url} is already open for writing \(mounted or in use\) by another "
                        rf"writer \(pid {os.getpid()} on {re.escape(socket.gethostname())}, lease expires in "
                        r"2[0-6] s\); "
                        r"mount it with -o ro to read it beside its writer\n", r.stderr), r.stderr
