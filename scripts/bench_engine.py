#!/usr/bin/env python3
"""Benchmark of the dataset engine (the Python API, no mount), against plain files.

    python scripts/bench_engine.py [--photos 2000] [--tiny 1000000] [--workdir DIR]

Part 1, ~2000 real-photo JPEGs (~70 KB random crops of the scikit-learn photos, made by
scripts/make_photos.py, cached in WORKDIR/photos). Both sides read every source file the
same way (open + read + stat, i.e. ``lakefs.read``), in the same run, on the same disk:

- files write:    write each photo to its own file in a plain directory (open/write/close),
                  then fsync every file and the directory at the end (durable, like `sync`).
- lakefs append:  ``t.append(lakefs.read(p))`` for each photo, then ``ds.flush()``
                  (lakefs fsyncs each chunk, segment, manifest and HEAD as it puts them).
- lakefs extend:  ``t.extend([lakefs.read(p) for p in photos])``, then ``ds.flush()``.
- files read:     open + read each file of the plain directory.
- lakefs read:    ``s.tobytes()`` for every sample of a freshly opened read-only dataset.
Reads are warm page cache on both sides (the files were just written). Ratios > 1 mean
lakefs is faster. Storage overhead = all dataset objects / sum of file sizes - 1.

Part 2, TINY tiny samples (class labels): append rate of ``t.append(i % 10)``, flush
time, reopen time (read-only, in a fresh process) and that process's peak RSS.

No part of this is a test: results go to docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import lakefs  # noqa: E402


def _photos(workdir: Path, count: int) -> list[Path]:
    from make_photos import make_photos  # scripts/make_photos.py

    folder = workdir / "photos"
    existing = sorted(folder.glob("*.jpg")) if folder.exists() else []
    if len(existing) >= count:
        return existing[:count]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return sorted(make_photos(folder, count, seed=0))[:count]


def _read_file(p: Path) -> tuple[bytes, os.stat_result]:
    with open(p, "rb") as f:
        return f.read(), os.fstat(f.fileno())


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_files_write(photos: list[Path], out: Path) -> float:
    out.mkdir()
    t0 = time.perf_counter()
    written = []
    for p in photos:
        data, _ = _read_file(p)
        dst = out / p.name
        with open(dst, "wb") as f:
            f.write(data)
        written.append(dst)
    for dst in written:
        _fsync_path(dst)
    _fsync_path(out, os.O_RDONLY | os.O_DIRECTORY)
    return time.perf_counter() - t0


def bench_lakefs_write(photos: list[Path], path: Path, mode: str) -> float:
    ds = lakefs.empty(path)
    t = ds.create_tensor("images", htype="image", sample_compression="jpeg")
    t0 = time.perf_counter()
    if mode == "append":
        for p in photos:
            t.append(lakefs.read(p))
    else:
        t.extend([lakefs.read(p) for p in photos])
    ds.flush()
    elapsed = time.perf_counter() - t0
    ds.close()
    return elapsed


def bench_files_read(folder: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    total = 0
    for p in sorted(folder.iterdir()):
        with open(p, "rb") as f:
            total += len(f.read())
    return time.perf_counter() - t0, total


def bench_lakefs_read(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    ds = lakefs.load(path, read_only=True)
    total = sum(len(s.tobytes()) for s in ds.images)
    return time.perf_counter() - t0, total


def _drop_caches() -> bool:
    """Empty the page cache (root only); False when that is not allowed here."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def bench_shuffled_cold(folder: Path, path: Path) -> tuple[float, float] | None:
    """A data loader's epoch: every sample in a shuffled order, page cache dropped first.
    Plain files (open + read each) against lakefs ``tobytes()``."""
    files = sorted(folder.iterdir())
    order = list(range(len(files)))
    random.Random(0).shuffle(order)
    if not _drop_caches():
        return None
    t0 = time.perf_counter()
    for i in order:
        with open(files[i], "rb") as f:
            f.read()
    plain = time.perf_counter() - t0
    _drop_caches()
    t0 = time.perf_counter()
    ds = lakefs.load(path, read_only=True)
    for i in order:
        ds.images[i].tobytes()
    return plain, time.perf_counter() - t0


def _peak_rss_kb() -> int:
    """VmHWM: peak resident set of this process. (Not ru_maxrss: Linux carries that
    across execve, so a child would report its parent's peak.)"""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1])


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "locks" not in p.parts)


REOPEN = """
import sys, time, resource
sys.path.insert(0, {repo!r})
import lakefs
t0 = time.perf_counter()
ds = lakefs.load({path!r}, read_only=True)
n = len(ds.labels)
last = ds.labels[n - 1].numpy()
key = ds.row_of("{last_key}")
elapsed = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(elapsed, n, key, hwm)
"""


def bench_tiny(path: Path, n: int) -> dict[str, float]:
    ds = lakefs.empty(path)
    t = ds.create_tensor("labels", htype="class_label", class_names=[str(i) for i in range(10)])
    t0 = time.perf_counter()
    for i in range(n):
        t.append(i % 10)
    append = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds.flush()
    flush = time.perf_counter() - t0
    ds.close()
    rss_writer = _peak_rss_kb() / 1024
    code = REOPEN.format(repo=str(REPO), path=str(path), last_key=f"{n - 1:08d}")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    reopen, count, key, rss = float(out[0]), int(out[1]), int(out[2]), int(out[3]) / 1024
    assert count == n and key == n - 1
    return {"append_rate": n / append, "append_s": append, "flush_s": flush, "reopen_s": reopen,
            "reopen_rss_mb": rss, "writer_peak_rss_mb": rss_writer, "bytes": _tree_size(path)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--tiny", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lakefs-bench-engine")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(dir=args.workdir, prefix="run-"))
    try:
        if args.photos:
            bench_photos(args, run)
        if args.tiny:
            tiny = bench_tiny(run / "tiny", args.tiny)
            print(f"\n{args.tiny} tiny samples (class_label)")
            print(f"append: {tiny['append_rate']:.0f}/s ({tiny['append_s']:.1f} s); "
                  f"flush: {tiny['flush_s']:.2f} s; reopen: {tiny['reopen_s']:.2f} s; "
                  f"reader peak RSS: {tiny['reopen_rss_mb']:.0f} MB; writer peak RSS: "
                  f"{tiny['writer_peak_rss_mb']:.0f} MB; on disk: {tiny['bytes'] / 1e6:.1f} MB")
    finally:
        shutil.rmtree(run, ignore_errors=True)


def bench_photos(args: argparse.Namespace, run: Path) -> None:
    photos = _photos(args.workdir, args.photos)
    files_bytes = sum(p.stat().st_size for p in photos)
    for p in photos:  # warm the source files for both sides
        _read_file(p)
    files_w = bench_files_write(photos, run / "files")
    append_w = bench_lakefs_write(photos, run / "ds-append", "append")
    extend_w = bench_lakefs_write(photos, run / "ds-extend", "extend")
    files_r, n1 = bench_files_read(run / "files")
    lake_r, n2 = bench_lakefs_read(run / "ds-append")
    assert n1 == n2 == files_bytes
    shuffled = bench_shuffled_cold(run / "files", run / "ds-append")
    overhead = _tree_size(run / "ds-append") / files_bytes - 1
    n = len(photos)
    print(f"\n{n} JPEGs, {files_bytes / n / 1000:.1f} kB mean, {files_bytes / 1e6:.1f} MB total")
    print(f"{'operation':<34}{'seconds':>9}{'files/s':>10}{'vs plain files':>16}")
    rows = [
        ("plain files: write + fsync", files_w, None),
        ("lakefs append + flush", append_w, files_w / append_w),
        ("lakefs extend + flush", extend_w, files_w / extend_w),
        ("plain files: read", files_r, None),
        ("lakefs tobytes() (incl. open)", lake_r, files_r / lake_r),
    ]
    if shuffled is not None:  # rows in sorted file order = row order; here a shuffled epoch
        rows += [("plain files: shuffled, cold", shuffled[0], None),
                 ("lakefs: shuffled, cold", shuffled[1], shuffled[0] / shuffled[1])]
    for name, secs, ratio in rows:
        r = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"{name:<34}{secs:>9.3f}{n / secs:>10.0f}{r:>16}")
    print(f"storage overhead: {overhead * 100:+.3f}% ({_tree_size(run / 'ds-append') - files_bytes} bytes)")


if __name__ == "__main__":
    main()
