"""Concurrency suite (issue 5): many processes on one mount, API readers beside it.

Three writer processes (one of them rsync-style: temp name, close, times, rename) copy
different self-describing files into one mounted tensor
while three reader processes list and read through the mount and two API readers
(``lakefs.load(path, read_only=True)``, reopened in a loop) read the dataset the mount
is committing to. Every read must be a prefix of the file's own content (a file being
written shows what was written so far, DESIGN §4) and whole once the writer closed it;
no process may hang (timeouts); the unmount is clean and everything written is there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mounting import mounted
from reliability_helpers import assert_fsck_clean, check_content, content, env, lakefs_mount, read_everything

# A writer with ``staged`` set writes as rsync does: a temp file (a staging name), closed,
# given its times, renamed to the sample name.
WRITER = textwrap.dedent("""
    import os, sys
    from reliability_helpers import content
    d, w, n, staged = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    for i in range(n):
        name = f"w{w}-{i:03d}.bin"
        data = content(name, 0, [300, 4000, 60_000, 250_000][(i + w) % 4])
        path = os.path.join(d, f".{name}.tmp" if staged else name)
        with open(path, "wb") as f:
            for off in range(0, len(data), 50_000):
                f.write(data[off:off + 50_000])
                f.flush()
        if staged:
            os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i))
            os.rename(path, os.path.join(d, name))
        print(name, flush=True)
""")

MOUNT_READER = textwrap.dedent("""
    import os, sys, time
    from reliability_helpers import content, parse_content
    d, seconds = sys.argv[1], float(sys.argv[2])
    end, reads = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for name in sorted(os.listdir(d)):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if len(data) > 40:  # the header is in: the rest must be a prefix of the content
                n, v, size = parse_content(data)
                staged = name.startswith(".") and name.endswith(".tmp")  # a staged writer's
                assert n == (name[1:-4] if staged else name), (name, n)
                assert content(n, v, size).startswith(data), f"{name}: mixed-up bytes"
            reads += 1
    print(reads)
""")

API_READER = textwrap.dedent("""
    import sys, time
    import lakefs
    from reliability_helpers import check_content
    path, seconds = sys.argv[1], float(sys.argv[2])
    end, reads, opens = time.monotonic() + seconds, 0, 0
    while time.monotonic() < end:
        try:
            ds = lakefs.load(path, read_only=True)
        except lakefs.errors.DatasetNotFoundError:
            time.sleep(0.05)
            continue
        opens += 1
        if "blobs" in ds.tensors:
            for s in ds["blobs"].iter_samples():
                check_content(s.tobytes(), s.filename)  # committed samples are whole
                reads += 1
        ds.close()
    print(opens, reads)
""")


def _spawn(code: str, *args: object) -> subprocess.Popen[str]:
    e = env()
    e["PYTHONPATH"] = str(Path(__file__).parent) + ":" + e["PYTHONPATH"]
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=e, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(p: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"process hung (deadlock?): {p.args[3:]}\n{err}")
    assert p.returncode == 0, f"{p.args[3:]} failed:\n{err}"
    return out


@pytest.mark.timeout(240)
def test_writers_and_readers_on_one_mount_and_api_readers(tmp_path, mountpoint, soak):
    ds_path = tmp_path / "ds"
    per_writer = 60 if soak else 15
    seconds = 60 if soak else 8
    with mounted(lakefs_mount(ds_path, mountpoint, "-o", "commit_interval=0.3"), mountpoint):
        blobs = mountpoint / "blobs"
        blobs.mkdir()
        (blobs / "seed.bin").write_bytes(content("seed.bin", 0, 100))  # makes it a bytes tensor
        writers = [_spawn(WRITER, blobs, w, per_writer, int(w == 2)) for w in range(3)]
        readers = [_spawn(MOUNT_READER, blobs, seconds) for _ in range(3)]
        api = [_spawn(API_READER, ds_path, seconds) for _ in range(2)]
        written = [_finish(p, 120).split() for p in writers]
        mount_reads = [int(_finish(p, 120)) for p in readers]
        api_counts = [_finish(p, 120).split() for p in api]
        assert all(len(w) == per_writer for w in written)
        assert min(mount_reads) > 0
        assert all(int(opens) > 0 for opens, _ in api_counts)
        names = sorted(n for w in written for n in w)
        listed = sorted(p.name for p in blobs.iterdir())
        assert listed == sorted([*names, "seed.bin"])
        for name in names:
            check_content((blobs / name).read_bytes(), name)
        for i, name in enumerate(written[2]):  # the times set before the rename are kept
            assert (blobs / name).stat().st_mtime_ns == 1_600_000_000_000_000_000 + i, name
    everything = read_everything(ds_path)
    assert sorted(everything) == sorted(f"blobs/{n}" for n in [*names, "seed.bin"])
    for key, data in everything.items():
        check_content(data, key.split("/", 1)[1])
    assert_fsck_clean(ds_path)
