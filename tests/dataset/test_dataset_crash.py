"""Crash safety (DESIGN §5): a writer killed with SIGKILL at random moments leaves a
dataset that opens, with every sample whole or absent and every flushed sample there.
Also: chunk objects are immutable, and compact reclaims space and keeps every sample."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import lakefs
from lakefs.format import keys

REPO = Path(__file__).resolve().parents[2]

# The writer appends and updates rows in several kinds of tensors, flushing now and then;
# after each flush returns it appends "key version" lines to a log and fsyncs it, so the
# log only ever names durable (committed) samples.
WRITER = textwrap.dedent("""
    import os, sys, random, hashlib
    sys.path.insert(0, {repo!r})
    import lakefs

    def content(key, version):
        seed = int.from_bytes(hashlib.sha256(f"{{key}}/{{version}}".encode()).digest()[:8], "little")
        rng = random.Random(seed)
        n = rng.choice([10, 300, 3000, 9000, 20000])  # 20000 > 2 * chunk_size: tiled
        head = f"{{key}}/{{version}}/".encode()
        return head + rng.randbytes(n)

    path, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    ds = lakefs.dataset(path)
    for name, kw in (("raw", {{}}), ("lz", {{"chunk_compression": "lz4"}}), ("slz", {{"sample_compression": "lz4"}})):
        ds.create_tensor(name, htype="bytes", chunk_size=4096, exist_ok=True, **kw)
    ds.flush()
    print("ready", flush=True)
    log = open(log_path, "a")
    pending = []
    n = len(ds)
    step = 0
    while True:
        step += 1
        if n and rng.random() < 0.2:  # update an existing row (a new version)
            row = rng.randrange(n)
            key = ds.keys()[row]
            version = seed * 100000 + step  # grows across writers: newer is bigger
            for name in ("raw", "lz", "slz"):
                ds[name][key] = content(key, version)
        else:
            key, version = f"s{{seed}}-{{n}}", 0
            value = content(key, version)
            ds.append({{"raw": value, "lz": value, "slz": value}}, key=key)
            n += 1
        pending.append(f"{{key}} {{version}}\\n")
        if rng.random() < 0.15:
            ds.flush()
            log.write("".join(pending)); log.flush(); os.fsync(log.fileno())
            pending = []
""")


def _content(key: str, version: int) -> bytes:
    seed = int.from_bytes(hashlib.sha256(f"{key}/{version}".encode()).digest()[:8], "little")
    rng = random.Random(seed)
    n = rng.choice([10, 300, 3000, 9000, 20000])
    return f"{key}/{version}/".encode() + rng.randbytes(n)


def _check(path: Path, log_path: Path) -> int:
    """Open the dataset and check it against the log; return the number of rows."""
    last: dict[str, int] = {}  # the newest durable version of each key
    earlier: dict[str, set[int]] = {}  # versions a later durable update replaced
    for line in log_path.read_text().splitlines():
        key, version = line.split()
        if key in last:
            earlier.setdefault(key, set()).add(last[key])
        last[key] = int(version)
    ds = lakefs.load(path, read_only=True)
    seen = set()
    for name in ("raw", "lz", "slz"):
        for s in ds[name].iter_samples():
            data = s.tobytes()
            key, version, _ = data.split(b"/", 2)
            assert key.decode() == s.key, f"{name}[{s.key}] holds another row's sample"
            assert data == _content(s.key, int(version)), f"{name}[{s.key}] is not whole"
            seen.add(s.key)
    missing = set(last) - seen
    assert not missing, f"flushed samples lost: {sorted(missing)[:5]}"
    for key, version in last.items():
        # the newest durable version, or a newer one committed just before the kill
        got = int(ds["raw"][key].tobytes().split(b"/", 2)[1])
        assert got == version or (got > version and got not in earlier.get(key, ())), key
    return len(ds)


def test_sigkill_writer_leaves_a_consistent_dataset(tmp_path):
    path, log_path = tmp_path / "ds", tmp_path / "log"
    log_path.touch()
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    rng = random.Random(1234)
    rows = 0
    for i in range(20):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(log_path), str(i)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()[-2000:]
        time.sleep(rng.uniform(0.02, 0.6))  # a random moment of the append/flush loop
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        if lakefs.exists(path):
            rows = _check(path, log_path)
    assert rows > 20  # the writers made real progress
    assert len(log_path.read_text().splitlines()) > 10


def _chunk_objects(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in (path / keys.TENSORS).rglob("*")
            if p.is_file() and "/chunks/" in p.relative_to(path).as_posix()}


def test_updates_and_deletes_never_rewrite_a_chunk(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
    z = ds.create_tensor("z", htype="bytes", chunk_compression="lz4", chunk_size=4096)
    for i in range(40):
        t.append(b"v0-%d-" % i + bytes(500))
        z.append(b"v0-%d-" % i + bytes(500))
    ds.flush()
    before = _chunk_objects(tmp_path / "ds")
    for i in range(0, 40, 3):
        t[i] = b"v1-%d" % i
        z[i] = b"v1-%d" % i
    for i in range(1, 40, 5):
        t.pop(i)
        z.pop(i)
    ds.flush()
    t.append(b"tail")
    ds.close()
    after = _chunk_objects(tmp_path / "ds")
    for key, blob in before.items():
        assert after[key] == blob, f"chunk {key} was rewritten"
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.b[3].tobytes() == b"v1-3" and ds.b[1].is_empty and ds.z[2].tobytes().startswith(b"v0-2-")


def test_compact_reclaims_space_and_keeps_every_sample(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=8192)
    a = ds.create_tensor("a", htype="generic", dtype="int64", chunk_compression="lz4", chunk_size=8192)
    big = os.urandom(30_000)  # tiled
    for i in range(100):
        t.append(os.urandom(1000))
        a.append(np.arange(i + 1))
    t.append(big)
    ds.flush()
    for i in range(0, 100, 2):
        t[i] = b"small %d" % i
    for i in range(1, 100, 4):
        t.pop(i)
        a.pop(i)
    expected = {n: [(s.row, s.tobytes(), s.size, s.mtime_ns) for s in ds[n].iter_samples()] for n in ("a", "b")}
    ds.flush()
    stats = ds.compact()
    assert stats["reclaimed"] > 50_000 and stats["bytes_after"] < stats["bytes_before"]
    ds.close()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "ds").rglob("*") if p.is_file())
    live = sum(len(x[1]) for x in expected["b"]) + sum(len(x[1]) for x in expected["a"])
    assert on_disk < live + 60_000  # little beyond the live data is left
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    got = {n: [(s.row, s.tobytes(), s.size, s.mtime_ns) for s in ds[n].iter_samples()] for n in ("a", "b")}
    assert got == expected
    assert ds.b[100].tobytes() == big


def _chunk_objects(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("chunks/*")}


def test_compact_merges_small_chunks_and_leaves_healthy_ones_alone(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("b", htype="bytes", chunk_size=64 << 10)
    payloads = [os.urandom(1000) for _ in range(30)]
    for i, p in enumerate(payloads):  # a commit every 5 samples: 6 small chunks (a fsyncing mount)
        t.append(p)
        if i % 5 == 4:
            ds.flush()
    assert len(_chunk_objects(tmp_path / "ds")) == 6
    ds.compact()
    assert len(_chunk_objects(tmp_path / "ds")) == 1
    merged = _chunk_objects(tmp_path / "ds")
    ds.compact()  # nothing left to do: the merged chunk is not rewritten
    assert _chunk_objects(tmp_path / "ds") == merged
    assert [s.tobytes() for s in t] == payloads
    ds.close()


def test_staged_files_are_flushed_by_the_commit_that_publishes_them(tmp_path, fsync_log):
    """A staged file (what rsync writes before its rename) is put without an fsync of its
    own: the commit fsyncs it, and its directory, before HEAD names it. Its deletion once
    obsolete is made durable by a later commit's sync, not one fsync each."""
    ds = lakefs.empty(tmp_path / "ds")
    synced = fsync_log
    synced.clear()
    ds.write_file("notes.txt", b"staged bytes")
    root = Path(ds.storage.root)
    staged = [p for p in (root / "files").rglob("*") if p.is_file()]
    assert len(staged) == 1 and staged[0].read_bytes() == b"staged bytes"
    assert str(staged[0]) not in synced
    ds.flush()
    head_sync = next(i for i, p in enumerate(synced) if ".HEAD.tmp~" in p)
    assert synced.index(str(staged[0])) < head_sync
    assert synced.index(str(staged[0].parent)) < head_sync
    synced.clear()
    ds.write_file("notes.txt", b"replaced")  # the first staged object becomes garbage
    ds.flush()
    assert not staged[0].exists()
    after_head = synced[next(i for i, p in enumerate(synced) if ".HEAD.tmp~" in p):]
    assert str(staged[0].parent) not in after_head  # the delete waits for the next sync
    ds.close()
    assert lakefs.load(tmp_path / "ds", read_only=True).read_file("notes.txt") == b"replaced"


def test_compact_deletes_temp_files_crashed_puts_left_and_keeps_fresh_ones(tmp_path):
    """A put killed mid-write leaves its temp file (never listed, so no commit's garbage):
    compact deletes those untouched for an hour; a fresh one may be a live put's."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("b", htype="bytes").append(b"kept")
    ds.flush()
    old, fresh = tmp_path / "ds" / "tensors" / ".x.tmp~0badf00d", tmp_path / "ds" / ".y.tmp~12345678"
    old.write_bytes(b"torn")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh.write_bytes(b"being written")
    stats = ds.compact()
    assert stats["temp_files_deleted"] == 1 and stats["temp_bytes_deleted"] == 4
    assert not old.exists() and fresh.exists()
    assert ds.b[0].tobytes() == b"kept"
    ds.close()
