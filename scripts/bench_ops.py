#!/usr/bin/env python3
"""Python cost per FUSE operation, lakefs vs the bare floor, with no kernel in the way.

``bench_mount.py`` times real mounts, where one kernel round trip per operation and a
noisy 2-core VM hide differences of tens of microseconds per file. This benchmark calls
the binding's own callbacks (``lakefs.fs.binding.FUSE``: path decoding, the stat struct,
errno mapping) in-process, in the order the kernel sends them for ``cp -r`` of one file:

    LOOKUP ×3 (missing name) → CREATE + GETATTR → WRITE → FLUSH → RELEASE → GETATTR

then a ``stat`` of every stored file (LOOKUP), and ``cat`` of each (OPEN, READ of the
whole file, RELEASE; a warm ``cat`` sends only OPEN and RELEASE), for the same real photos, for lakefs
(a local dataset, a jpeg tensor) and for scripts/bare_memfs.py. It reports µs per file
for each step and the ratio floor/lakefs: what lakefs's own work costs on top of the
binding's. (The floor has no ``flush``: on a mount the kernel stops sending FLUSH to it.)

    python scripts/bench_ops.py [--photos 2000] [--workdir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bare_memfs  # noqa: E402
from make_photos import make_photos  # noqa: E402

from lakefs.fs.binding import FUSE, _impl  # noqa: E402
from lakefs.fs.mount import tune_gc  # noqa: E402

STEPS = ("lookup (missing) x3", "create + getattr", "write", "flush", "release", "getattr (stored)",
         "stat of every file", "open + release (read-only)", "read of the whole file")
WRITE_STEPS = STEPS[:6]  # what cp -r costs per file


def binding_for(operations: Any, raw_fi: bool) -> FUSE:
    """A ``FUSE`` whose callbacks can be called without mounting (``__init__`` mounts)."""
    fuse = object.__new__(FUSE)
    fuse.operations, fuse.raw_fi, fuse.use_ns = operations, raw_fi, True
    fuse.encoding, fuse.errors = "utf-8", "surrogateescape"
    fuse._stat_record = getattr(operations, "stat_record", None)
    return fuse


def run(which: str, files: list[tuple[bytes, bytes]], workdir: Path) -> dict[str, float]:
    """Seconds spent in each step for every file of ``files`` (name, bytes)."""
    if which == "lakefs":
        from lakefs.config import Config
        from lakefs.dataset import Dataset
        from lakefs.fs.operations import LakeOperations
        from lakefs.fs.tree import DatasetFS
        from lakefs.storage.local import LocalStorage

        shutil.rmtree(workdir / "ds", ignore_errors=True)
        ds = Dataset(LocalStorage(str(workdir / "ds")), create=True)
        fs = DatasetFS(ds, Config())
        ops: Any = LakeOperations(fs, xattr=False)
        fuse = binding_for(ops, raw_fi=True)  # as lakefs mounts
    else:
        ds = fs = None
        ops = bare_memfs.BareMemFS()
        fuse = binding_for(ops, raw_fi=False)
    call = fuse._wrapper  # errors become -errno here, as on a mount
    has_flush = which == "lakefs"  # the floor defines no flush: the kernel stops asking
    ops.mkdir("/images", 0o755)
    st = _impl.c_stat()
    buf = ctypes.pointer(st)
    fi = _impl.fuse_file_info()
    fip = ctypes.pointer(fi)
    spent: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    for name, data in files:
        path = b"/images/" + name
        wbuf = ctypes.create_string_buffer(data, len(data))
        wptr = ctypes.cast(wbuf, ctypes.POINTER(ctypes.c_byte))
        t0 = clock()
        for _ in range(3):
            if call(fuse.getattr_fuse_3, path, buf, None) != -2:
                raise SystemExit(f"{which}: lookup of a missing name did not fail with ENOENT")
        t1 = clock()
        fi.flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        rc = call(fuse.create, path, 0o100644, fip) or call(fuse.getattr_fuse_3, path, buf, fip)
        t2 = clock()
        rc = rc or len(data) - call(fuse.write, path, wptr, len(data), 0, fip)
        t3 = clock()
        if has_flush:
            rc = rc or call(fuse.flush, path, fip)
        t4 = clock()
        rc = rc or call(fuse.release, path, fip)
        t5 = clock()
        rc = rc or call(fuse.getattr_fuse_3, path, buf, None)
        t6 = clock()
        if rc or st.st_size != len(data):
            raise SystemExit(f"{which}: storing {name.decode()} failed ({rc})")
        for step, a, b in zip(STEPS, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
            spent[step] += b - a
    t = clock()
    for name, data in files:
        if call(fuse.getattr_fuse_3, b"/images/" + name, buf, None) or st.st_size != len(data):
            raise SystemExit(f"{which}: stat of {name.decode()} failed")
    spent["stat of every file"] = clock() - t
    rbuf = ctypes.create_string_buffer(1 << 20)
    rptr = ctypes.cast(rbuf, ctypes.POINTER(ctypes.c_byte))
    for name, data in files:
        path = b"/images/" + name
        fi.flags = os.O_RDONLY
        t0 = clock()
        rc = call(fuse.open, path, fip)
        t1 = clock()
        n = call(fuse.read, path, rptr, 1 << 20, 0, fip)
        t2 = clock()
        rc = rc or call(fuse.release, path, fip)
        t3 = clock()
        if rc or n != len(data) or rbuf.raw[:n] != data:
            raise SystemExit(f"{which}: reading {name.decode()} back failed")
        spent["open + release (read-only)"] += (t1 - t0) + (t3 - t2)
        spent["read of the whole file"] += t2 - t1
    if fs is not None:
        fs.shutdown()
        ds.close()
    return spent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=2000)
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "lakefs-bench"))
    p.add_argument("--repeat", type=int, default=3, help="each figure is the best of this many runs")
    a = p.parse_args(argv)
    work = Path(a.workdir)
    src = work / "src" / "images"
    if not src.is_dir() or len(list(src.iterdir())) != a.photos:
        shutil.rmtree(src, ignore_errors=True)
        print(f"making {a.photos} photos in {src}", flush=True)
        make_photos(src, a.photos)
    files = [(p.name.encode(), p.read_bytes()) for p in sorted(src.iterdir())]
    n = len(files)
    tune_gc()  # as a mount process does (lakefs.fs.mount.run_mount); the floor's figures do not move
    best: dict[str, dict[str, float]] = {}
    for _ in range(a.repeat):  # interleaved, so that both see the same machine
        for which in ("floor", "lakefs"):
            spent = run(which, files, work / "ops")
            mine = best.setdefault(which, dict(spent))
            for step, s in spent.items():
                mine[step] = min(mine[step], s)
    shutil.rmtree(work / "ops", ignore_errors=True)
    print(f"\nPython cost per file, in µs (best of {a.repeat}; {n} photos, no kernel)\n")
    print("| step | floor | lakefs | floor/lakefs |\n|---|---:|---:|---:|")
    totals = {w: 0.0 for w in best}
    for step in STEPS:
        floor, lake = best["floor"].get(step, 0.0) / n * 1e6, best["lakefs"][step] / n * 1e6
        if step in WRITE_STEPS:
            totals["floor"] += floor
            totals["lakefs"] += lake
        ratio = f"{floor / lake:.2f}×" if floor else "(none)"
        print(f"| {step} | {floor:.1f} | {lake:.1f} | {ratio} |")
    print(f"| **cp -r, per file** | {totals['floor']:.1f} | {totals['lakefs']:.1f} | "
          f"{totals['floor'] / totals['lakefs']:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
