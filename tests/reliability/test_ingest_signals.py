"""A transcoding ``lakefs ingest -j N`` killed (kill -9) or stopped (SIGTERM) mid-run: the
periodic commits keep what was ingested before, a rerun resumes, and no worker process
is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from reliability_helpers import LAKEFS, REPO, env, fsck

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


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (/proc), as pid → its start time (tells a reused pid)."""
    parents: dict[int, list[int]] = {}
    start: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(stat[1]), []).append(int(entry))
        start[int(entry)] = stat[19]
    out, todo = {}, list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        out[child] = start[child]
        todo += parents.get(child, [])
    return out


def alive(procs: dict[int, str]) -> list[int]:
    left = []
    for pid, started in procs.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[19] == started and stat[0] != "Z":
            left.append(pid)
    return left


def assert_all_gone(procs: dict[int, str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = alive(procs)
    for pid in left:  # do not leak them into the rest of the run
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes still running after their ingest ended: {left}"


def workers_of(proc: subprocess.Popen, count: int = 2, timeout: float = 60) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while len(found := descendants(proc.pid)) < count:
        assert proc.poll() is None and time.monotonic() < deadline, "no worker processes started"
        time.sleep(0.02)
    return found


def committed(ds: Path) -> int:
    with lakefs.load(ds, read_only=True) as d:
        return d["images"].num_samples if "images" in d.tensors else 0


def assert_rerun_resumes(cli, src: Path, ds: Path, kept: int) -> None:
    r = cli("ingest", src, ds, "--tensor", "images", "--htype", "image", "--sample-compression", "jpeg", "-j", "2")
    assert r.code == 0, r.err
    assert f"ingested {FILES - kept} of {FILES} files" in r.out and f"{kept} already stored" in r.out, r.out
    assert committed(ds) == FILES


@pytest.mark.timeout(240)
def test_kill_9_keeps_the_periodic_commits_and_leaves_no_worker(cli, many_pngs: Path, dataset_path: Path) -> None:
    proc = start_ingest(many_pngs, dataset_path)
    try:
        wait_for_commits(proc, dataset_path, 3)  # created, then two commits by --commit-seconds
        workers = workers_of(proc)
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_all_gone(workers)
    kept = committed(dataset_path)
    assert 0 < kept < FILES
    assert_rerun_resumes(cli, many_pngs, dataset_path, kept)


@pytest.mark.timeout(240)
def test_sigterm_commits_what_was_written_and_ends_the_workers(cli, many_pngs: Path, dataset_path: Path) -> None:
    proc = start_ingest(many_pngs, dataset_path)
    try:
        wait_for_commits(proc, dataset_path, 2)
        workers = workers_of(proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "lakefs: terminated (SIGTERM); what was written before is committed"
    assert_all_gone(workers)
    kept = committed(dataset_path)
    assert 0 < kept < FILES
    assert_rerun_resumes(cli, many_pngs, dataset_path, kept)


def signal_set(pid: int, field: str) -> int:
    """A mask of /proc/PID/status (SigBlk, SigIgn): bit n-1 is signal n."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def transcoding_workers(proc: subprocess.Popen, timeout: float = 60) -> dict[int, str]:
    """The pool's worker processes (not multiprocessing's resource tracker), once both run."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for pid, started in descendants(proc.pid).items():
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found[pid] = started
            except OSError:
                continue
        if len(found) >= 2:
            return found
        assert proc.poll() is None and time.monotonic() < deadline, "no worker processes started"
        time.sleep(0.005)


@pytest.mark.timeout(240)
def test_ctrl_c_stops_the_ingest_and_no_worker_prints_a_traceback(many_pngs: Path, dataset_path: Path) -> None:
    """A terminal's Ctrl-C reaches its whole foreground process group: the transcoding
    workers, still importing Python right after they start, printed tracebacks of their
    own KeyboardInterrupt. They are started with SIGINT blocked; the ingest stops alone."""
    proc = subprocess.Popen(
        [*LAKEFS, "ingest", str(many_pngs), str(dataset_path), "--tensor", "images", "--htype", "image",
         "--sample-compression", "jpeg", "-j", "2", "-q"],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a shell's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (pytest run in the background)
    try:
        workers = transcoding_workers(proc)
        sigint = 1 << (signal.SIGINT - 1)
        shielded = {pid: bool((signal_set(pid, "SigBlk") | signal_set(pid, "SigIgn")) & sigint) for pid in workers}
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, while the workers start up
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(shielded.values()), f"a worker would take Ctrl-C itself: {shielded}"
    assert proc.returncode == 130, err
    assert err.strip() == "lakefs: interrupted"
    assert_all_gone(workers)
    assert fsck(dataset_path).returncode == 0
