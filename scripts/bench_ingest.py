#!/usr/bin/env python3
"""Benchmark ``lakefs ingest`` against ``cp -r`` and a plain Pillow transcode loop.

In one run, on the same disk:

1. ``cp -r`` of a folder of ~70 KB JPEGs, then ``sync``;
2. ``lakefs ingest`` of the same folder into a jpeg tensor (pass-through), then ``sync``;
3. ``lakefs ingest`` of the same photos as PNG into a jpeg tensor (the transcode path)
   with ``-j 1`` and with one worker per core;
4. a plain Python loop decoding each PNG with Pillow and encoding it as JPEG
   (quality 90, as lakefs does) into memory — the single-core floor.

Deep Lake 3.9 transcoded these PNGs into a jpeg tensor at ~38 images/s on this machine.

    python scripts/bench_ingest.py [--count 2000] [--work DIR] [--photos DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEEPLAKE_PNG_TO_JPEG = 38.0  # images/s, Deep Lake 3.9 on this machine (issue 4)


CPU: dict[float, float] = {}  # wall seconds of a run → CPU seconds its processes used


def _timed(cmd: list[str], **kw) -> float:
    """Wall seconds of ``cmd`` followed by ``sync``; its CPU seconds are kept in CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[wall] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def _ingest(src: Path, ds: Path, *extra: str) -> float:
    shutil.rmtree(ds, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return _timed([sys.executable, "-m", "lakefs", "ingest", str(src), str(ds), "--no-progress", *extra], env=env)


def _pillow_loop(pngs: list[Path]) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    for p in pngs:
        with Image.open(p) as img:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=90)
    wall = time.perf_counter() - start
    CPU[wall] = time.process_time() - cpu
    return wall


def _photos(work: Path, count: int, given: str | None) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "scripts"))
    from make_photos import make_photos  # noqa: PLC0415

    jpg, png = work / "jpg", work / "png"
    if given:
        src = Path(given)
        jpg, png = src / "jpg", src / "png"
        if not any(png.glob("*.png")):
            raise SystemExit(f"{given} must hold jpg/ and png/ folders (made by a previous run)")
        return jpg, png
    tmp = work / "made"
    make_photos(tmp, count, png=True)
    jpg.mkdir()
    png.mkdir()
    for p in sorted(tmp.iterdir()):
        p.rename((jpg if p.suffix == ".jpg" else png) / p.name)
    tmp.rmdir()
    return jpg, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--work", help="scratch folder on the disk to measure (default: a temp dir)")
    parser.add_argument("--photos", help="reuse DIR/jpg and DIR/png from an earlier run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each transcode measurement N times, interleaved; keep the fastest")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_ingest_", dir=args.work))
    try:
        jpg, png = _photos(work, args.count, args.photos)
        jpgs, pngs = sorted(jpg.glob("*.jpg")), sorted(png.glob("*.png"))
        n = len(jpgs)
        mb = sum(p.stat().st_size for p in jpgs) / 1e6
        png_mb = sum(p.stat().st_size for p in pngs) / 1e6
        cores = os.cpu_count() or 1
        subprocess.run(["sync"], check=True)
        load_before = os.getloadavg()[0]

        t_cp = _timed(["cp", "-r", str(jpg), str(work / "cp")])
        t_ing = _ingest(jpg, work / "ds_jpg", "--tensor", "images")
        t_rerun = _ingest_rerun(jpg, work / "ds_jpg")
        png_args = ["--tensor", "images", "--htype", "image", "--sample-compression", "jpeg"]
        runs: dict[str, list[float]] = {"pil": [], "j1": [], "jn": []}
        for _ in range(max(1, args.repeat)):  # interleaved, so a burst of load hits all three
            runs["pil"].append(_pillow_loop(pngs))
            runs["j1"].append(_ingest(png, work / "ds_png1", *png_args, "-j", "1"))
            runs["jn"].append(_ingest(png, work / "ds_pngN", *png_args, "-j", str(cores)))
        t_pil, t_j1, t_jn = (min(runs[k]) for k in ("pil", "j1", "jn"))
        load = os.getloadavg()[0]
        print(f"# {n} photos: {mb:.1f} MB of JPEG (mean {mb * 1000 / n:.0f} KB), "
              f"{png_mb:.1f} MB of PNG; {cores} cores; load average {load_before:.1f} before, {load:.1f} after")
        print("| what | wall s | CPU s | images/s | ratio |")
        print("|---|---:|---:|---:|---|")

        def row(what: str, t: float, ratio: str) -> None:
            print(f"| {what} | {t:.2f} | {CPU[t]:.2f} | {n / t:.0f} | {ratio} |")

        row("`cp -r` JPEG folder + sync", t_cp, "baseline")
        row("`lakefs ingest` JPEG → jpeg tensor + sync", t_ing, f"{t_ing / t_cp:.2f}× the time of cp")
        row("`lakefs ingest` rerun, everything skipped", t_rerun, "")
        row("Pillow loop: PNG decode + JPEG encode, 1 core, no writes", t_pil, "baseline")
        row("`lakefs ingest` PNG → jpeg tensor, `-j 1` + sync", t_j1, f"{t_pil / t_j1:.2f}× Pillow's rate")
        row(f"`lakefs ingest` PNG → jpeg tensor, `-j {cores}` + sync", t_jn,
            f"{t_pil / t_jn:.2f}× Pillow's rate, {t_j1 / t_jn:.2f}× `-j 1`, "
            f"{n / t_jn / DEEPLAKE_PNG_TO_JPEG:.1f}× Deep Lake's {DEEPLAKE_PNG_TO_JPEG:.0f} img/s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0


def _ingest_rerun(src: Path, ds: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return _timed([sys.executable, "-m", "lakefs", "ingest", str(src), str(ds), "--no-progress",
                   "--tensor", "images"], env=env)


if __name__ == "__main__":
    sys.exit(main())
