"""Crash suite (DESIGN §5, issue 5): writers SIGKILLed at random points.

After every kill: the dataset opens, ``lakefs fsck`` is clean, every sample is whole
(its bytes are exactly one version of what was written under that name) or absent, and
everything made durable before the kill is there, byte-identical:

- API writer: the state after the kill is exactly the state of the last completed
  ``ds.flush()``, or of the flush in progress at the kill (the commit is one atomic step).
- Mount: the mount process itself is SIGKILLed while ``cp`` and a writer that fsyncs
  copy files in; every file whose ``fsync`` returned is there.

Each kill continues the same dataset, so the suite also checks that a killed writer's
lock and half-written objects never stop the next writer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mounting import mounted, unmount
from reliability_helpers import (
    assert_fsck_clean,
    check_content,
    content,
    env,
    lakefs_mount,
    parse_content,
    read_everything,
)

import lakefs

WRITER = str(Path(__file__).with_name("crash_writer.py"))


def _kill_after(proc: subprocess.Popen, delay: float) -> None:
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _log_states(log: Path) -> tuple[dict | None, dict | None]:
    """(state of the last ``done`` line, state of a ``try`` after it or None)."""
    done = pending = None
    for line in log.read_text().splitlines():
        kind, _, state = line.partition(" ")
        if not line.endswith("}"):
            continue  # a line torn by the kill
        if kind == "done":
            done, pending = json.loads(state), None
        elif kind == "try":
            pending = json.loads(state)
    return done, pending


def _api_state(path: Path, photo_index: dict[bytes, int]) -> dict[str, int]:
    """Read every sample (crc-verified), check it is whole, return tensor/key → version."""
    state = {}
    with lakefs.load(path, read_only=True) as ds:
        for name, tensor in ds.tensors.items():
            for s in tensor.iter_samples():
                data = s.tobytes()
                k = f"{name}/{s.key}"
                if name == "images":
                    assert data in photo_index, f"{k}: not one of the photos written (torn or mixed up)"
                    state[k] = photo_index[data]
                else:
                    got, version, _ = check_content(data)
                    assert got == k, f"{k} holds the content of {got}"
                    state[k] = version
    return state


def _api_kills(tmp_path: Path, photos: list[Path], kills: int, seed: int) -> None:
    rng = random.Random(seed)
    ds_path = tmp_path / "ds"
    photo_index = {p.read_bytes(): i for i, p in enumerate(photos)}
    known: dict[str, int] | None = None  # the state verified after the previous kill
    for k in range(kills):
        log = tmp_path / f"writer-{k}.log"
        proc = subprocess.Popen([sys.executable, WRITER, "api", str(ds_path), str(log), str(seed * 1000 + k),
                                 *map(str, photos)], env=env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Early kills land in start-up and creation, later ones mid-run.
        _kill_after(proc, rng.uniform(0.05, 0.6) if k < 3 else rng.uniform(0.4, 2.0))
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        proc.stderr.close()
        if not (ds_path / "lakefs.json").exists():
            assert known is None, "a dataset that existed has lost its marker"
            continue  # killed before creation completed: "no dataset" is a valid outcome
        state = _api_state(ds_path, photo_index)
        done, pending = _log_states(log) if log.exists() else (None, None)
        if done is None:  # killed before this writer's first line: nothing may have changed
            allowed = [s for s in (known, pending) if s is not None] or [{}]
        else:
            allowed = [done] + ([pending] if pending is not None else [])
        assert state in allowed, (
            f"kill {k}: dataset state is neither the last commit nor the one in progress\n"
            f"missing from last commit: {sorted(set(allowed[0]) - set(state))[:5]}\n"
            f"unexpected: {sorted(set(state) - set(allowed[-1]))[:5]}")
        assert_fsck_clean(ds_path)
        known = state
    # After all the kills the dataset still takes a writer and commits.
    with lakefs.load(ds_path) as ds:
        ds["blobs"]["final"] = b"final/0/10|" + b"x"
    with lakefs.load(ds_path, read_only=True) as ds:
        assert ds["blobs"]["final"].tobytes() == b"final/0/10|x"


@pytest.mark.timeout(240)
def test_api_writer_killed_at_random_points(tmp_path, photos, soak):
    _api_kills(tmp_path, photos, kills=120 if soak else 14, seed=1)


def _verify_mount_dataset(ds_path: Path, photo_bytes: set[bytes], synced: set[str]) -> dict[str, bytes]:
    everything = read_everything(ds_path)
    for path, data in everything.items():
        tensor, name = path.split("/", 1)
        if tensor == "blobs":
            check_content(data, name)
        elif tensor == "images":
            assert data in photo_bytes, f"{path}: not a whole copy of a photo"
        else:
            raise AssertionError(f"unexpected file {path}")
    lost = sorted(f"blobs/{n}" for n in synced if f"blobs/{n}" not in everything)
    assert not lost, f"fsync'd files lost by the crash: {lost[:10]}"
    assert_fsck_clean(ds_path)
    return everything


def _mount_kills(tmp_path: Path, mnt: Path, photos: list[Path], kills: int, seed: int) -> None:
    rng = random.Random(seed)
    ds_path = tmp_path / "ds"
    photo_bytes = {p.read_bytes() for p in photos}
    synced: set[str] = set()
    for k in range(kills):
        procs: list[subprocess.Popen] = []
        logs = [tmp_path / f"files-{k}-{w}.log" for w in range(2)]
        with mounted(lakefs_mount(ds_path, mnt, "-o", "commit_interval=0.3"), mnt,
                     expect_exit_code=-signal.SIGKILL) as m:
            try:
                (mnt / "blobs").mkdir(exist_ok=True)
                (mnt / "images").mkdir(exist_ok=True)
                for w, log in enumerate(logs):
                    procs.append(subprocess.Popen(
                        [sys.executable, WRITER, "files", str(mnt / "blobs"), str(log), str(seed * 100 + k * 2 + w)],
                        env=env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                cp_loop = (f'i=0; while :; do for p in {" ".join(map(str, photos))}; do i=$((i+1)); '
                           f'cp "$p" {mnt}/images/k{k}-$i.jpg || exit 1; done; done')
                procs.append(subprocess.Popen(["sh", "-c", cp_loop], start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(rng.uniform(0.3, 2.5))
                os.killpg(m.process.pid, signal.SIGKILL)  # the crash: the mount process dies
                m.process.wait(timeout=30)
            finally:
                for p in procs:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=30)
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, timeout=30)
        assert unmount(mnt)
        for log in logs:
            if log.exists():
                synced |= {line.split()[1] for line in log.read_text().splitlines() if line.count(" ") == 1}
        _verify_mount_dataset(ds_path, photo_bytes, synced)
    # A clean mount after all the kills sees every synced file, byte-identical.
    with mounted(lakefs_mount(ds_path, mnt), mnt):
        for name in sorted(synced):
            data = (mnt / "blobs" / name).read_bytes()
            assert parse_content(data)[0] == name
            check_content(data, name)


@pytest.mark.timeout(300)
def test_mount_killed_during_cp_and_fsync(tmp_path, mountpoint, photos, soak):
    _mount_kills(tmp_path, mountpoint, photos, kills=40 if soak else 6, seed=2)


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_mount_killed_during_dd_leaves_the_file_absent_or_its_old_version(tmp_path, mountpoint):
    """Found by killing a mount during ``dd of=blobs/f.bin``: dd (as ``cmd > f``) closes
    the descriptor it opened before writing through its copy, and that close stored the
    still empty file, which the next periodic commit made durable. After the crash the
    new file was there, empty, and a file dd was rewriting was empty instead of its old
    version."""
    ds_path = tmp_path / "ds"
    old = content("old", 0, 300_000)
    head = content("new", 0, 3 << 20)[: 1 << 20]  # what dd has written when the mount dies
    feed = tmp_path / "head"
    feed.write_bytes(head)
    procs = []
    with mounted(lakefs_mount(ds_path, mountpoint, "-o", "commit_interval=0.2"), mountpoint,
                 expect_exit_code=-signal.SIGKILL) as m:
        try:
            (mountpoint / "blobs").mkdir()
            (mountpoint / "blobs" / "old.bin").write_bytes(old)
            fd = os.open(mountpoint / "blobs" / "old.bin", os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            for name in ("new.bin", "old.bin"):  # a file dd creates, one it rewrites
                procs.append(subprocess.Popen(
                    ["sh", "-c", f'(cat "{feed}"; sleep 60) | dd of="{mountpoint / "blobs" / name}" '
                                 "bs=64k status=none"], start_new_session=True))
            for name in ("new.bin", "old.bin"):
                _wait_for(lambda name=name: _size(mountpoint / "blobs" / name) == len(head))
            time.sleep(1.0)  # several periodic commits while dd is writing
            os.killpg(m.process.pid, signal.SIGKILL)
            m.process.wait(timeout=30)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True, timeout=30)
    assert unmount(mountpoint)
    assert read_everything(ds_path) == {"blobs/old.bin": old}
    assert_fsck_clean(ds_path)


@pytest.mark.timeout(120)
def test_mount_killed_while_a_writer_that_started_a_child_is_writing(tmp_path, mountpoint):
    """Found by killing a mount: a process writing a file that starts a child (any
    ``subprocess.run``, a data-loader worker) gives the child a copy of the descriptor,
    whose close at the child's exec or exit stored the half-written file; a periodic
    commit made it durable, and after the crash it was there, torn."""
    ds_path = tmp_path / "ds"
    head = content("ckpt", 0, 1 << 20)[: 300_000]
    out = mountpoint / "blobs" / "child.bin"
    with mounted(lakefs_mount(ds_path, mountpoint, "-o", "commit_interval=0.2"), mountpoint,
                 expect_exit_code=-signal.SIGKILL) as m:
        try:
            (mountpoint / "blobs").mkdir()
            with open(out, "wb") as f:  # a child writing into a descriptor it inherited
                subprocess.run(["sh", "-c", "printf child"], stdout=f, check=True)
            writer = open(mountpoint / "blobs" / "ckpt.bin", "wb")  # noqa: SIM115  (never closed)
            writer.write(head)
            writer.flush()
            subprocess.run(["true"], check=True)  # the child closes its copy at exec
            assert os.stat(mountpoint / "blobs" / "ckpt.bin").st_size == len(head)
            time.sleep(1.0)  # several periodic commits
            os.killpg(m.process.pid, signal.SIGKILL)
            m.process.wait(timeout=30)
            with pytest.raises(OSError):
                writer.close()
        finally:
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True, timeout=30)
    assert unmount(mountpoint)
    assert read_everything(ds_path) == {"blobs/child.bin": b"child"}
    assert_fsck_clean(ds_path)
