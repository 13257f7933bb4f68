#!/usr/bin/env python3
"""Object-store benchmark (issue 6, "Measured"): lakefs on S3 against fsspec on the same objects.

Everything runs in one go against one local S3 server (moto's standalone server on
127.0.0.1, as in tests/s3/), with N real-photo JPEGs (scripts/make_photos.py):

1. **Writes.** ``lakefs ingest SRC s3://bucket/ds -j 0`` (the CLI, process start included)
   and ``rsync -a`` into a writable mount of a new dataset (until the unmount has
   committed), against copying the same files to ``s3://bucket/raw/`` with fsspec
   (``fs.put`` of the folder: s3fs uploads them concurrently).
2. **Reads, one reader.** Every file read sequentially (open + read, like ``cat``):
   - *fsspec*: ``fs.cat_file`` of each raw object (no cache exists on this path);
   - *mount, no cache* (``storage.cache_size: 0``): each sample is one ranged GET;
   - *mount cold*: a fresh mount over an empty chunk cache (a miss fetches the whole
     chunk, so one GET serves every sample of that chunk);
   - *mount warm*: a fresh mount (the kernel's page cache of the old one is gone) over the
     filled chunk cache: the second epoch;
   - and the same epochs with 8 reader threads, against ``fs.cat`` of all paths (s3fs
     fetches them concurrently).
3. **Two concurrent mounts** of the same dataset (read-only, sharing one cache directory)
   each reading every file with 4 threads at the same time: cold, then warm.

Figures are seconds and MB/s of sample bytes; ratios are against the fsspec row of the
same kind. The S3 server is a Python process on this machine: it is the bottleneck of
every cold figure, so the ratios, not the absolute numbers, carry over to a real store.

    python scripts/bench_s3.py [--count N] [--workdir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "scripts", ROOT / "tests"):
    sys.path.insert(0, str(_p))

from make_photos import make_photos  # noqa: E402
from s3server import BUCKET, MotoServer, boto_client, s3_options  # noqa: E402

DATASET = f"s3://{BUCKET}/ds"
RAW = f"{BUCKET}/raw"


# --- mounts ----------------------------------------------------------------------------


def is_mounted(mnt: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        return any(line.split()[1] == str(mnt) for line in f if len(line.split()) > 2)


@contextlib.contextmanager
def mounted(mnt: Path, config: Path, log: Path, dataset: str = DATASET, ro: bool = True) -> Iterator[None]:
    """A lakefs mount of ``dataset`` (read-only by default) in the foreground; always
    unmounted, and the mount process waited for (a writable one commits at unmount)."""
    mnt.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "lakefs", "mount", "-f", dataset, str(mnt), *(["-o", "ro"] if ro else []),
            "--config", str(config)]
    with open(log, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mount of {mnt} failed; see {log}")
            time.sleep(0.02)
        yield
    finally:
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
        for args in (["-u"], ["-u", "-z"]):
            for _ in range(20):
                if not is_mounted(mnt):
                    break
                subprocess.run([tool, *args, str(mnt)], capture_output=True, check=False)
                time.sleep(0.1)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(path: Path, endpoint: str, cache_dir: Path, cache_size: str = "10GB") -> Path:
    import yaml

    opts = s3_options(endpoint)
    opts["config_kwargs"] = {"max_pool_connections": 32}  # defaults otherwise: retries on
    path.write_text(yaml.safe_dump({"storage": {"options": opts, "cache_dir": str(cache_dir),
                                                "cache_size": cache_size}}))
    return path


# --- timed work ------------------------------------------------------------------------


def read_file(path: Path) -> int:
    with open(path, "rb") as f:
        return len(f.read())


def read_tree(mnt: Path, threads: int) -> tuple[float, int]:
    files = sorted((mnt / "images").iterdir())
    t0 = time.perf_counter()
    if threads == 1:
        total = sum(read_file(p) for p in files)
    else:
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(read_file, files))
    return time.perf_counter() - t0, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=400, help="photos (~70 KB each)")
    ap.add_argument("--workdir", help="scratch directory (default: a temp dir, removed)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-s3-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "mount.log"
    server = MotoServer()
    server.start()
    rows: list[tuple[str, float, int, str]] = []  # (what, seconds, bytes, ratio note)
    try:
        boto_client(server.endpoint).create_bucket(Bucket=BUCKET)
        src = work / "src" / "images"
        photos = make_photos(src, args.count)
        nbytes = sum(p.stat().st_size for p in photos)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.endpoint}

        import fsspec

        fs = fsspec.filesystem("s3", **s3_options(server.endpoint), skip_instance_cache=True)

        # 1. writes
        t0 = time.perf_counter()
        fs.put(str(src) + "/", RAW + "/", recursive=True)
        t_put = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lakefs", "ingest", str(src), DATASET, "-j", "0",
                        "-q", "--no-progress"], env=env, check=True)
        t_ingest = time.perf_counter() - t0
        rows += [("write: fsspec put of the folder", t_put, nbytes, "1.00"),
                 ("write: lakefs ingest (CLI, process start included)", t_ingest, nbytes,
                  f"{t_ingest / t_put:.2f}")]
        # rsync -a into a writable mount of a new dataset; the unmount (final commit) included
        config = write_config(work / "rw.yaml", server.endpoint, work / "cache_rw")
        with mounted(work / "mnt", config, log, dataset=f"s3://{BUCKET}/rsynced", ro=False):
            (work / "mnt" / "images").mkdir()
            t0 = time.perf_counter()
            subprocess.run(["rsync", "-a", f"{src}/", f"{work / 'mnt' / 'images'}/"], check=True)
        t_rsync = time.perf_counter() - t0
        rows.append(("write: rsync -a into a mount (unmount included)", t_rsync, nbytes, f"{t_rsync / t_put:.2f}"))

        # 2. reads, one mount
        paths = sorted(fs.find(RAW))
        t0 = time.perf_counter()
        got = sum(len(fs.cat_file(p)) for p in paths)
        t_cat1 = time.perf_counter() - t0
        assert got == nbytes
        t0 = time.perf_counter()
        got = sum(len(v) for v in fs.cat(paths).values())
        t_cat8 = time.perf_counter() - t0
        assert got == nbytes
        rows.append(("read 1 thread: fsspec cat_file per object", t_cat1, nbytes, "1.00"))

        def epoch(name: str, cache: Path, threads: int, base: float, size: str = "10GB") -> None:
            config = write_config(work / f"{name}.yaml", server.endpoint, cache, size)
            with mounted(work / "mnt", config, log):
                seconds, total = read_tree(work / "mnt", threads)
            assert total == nbytes, (total, nbytes)
            rows.append((f"read {threads} thread{'s' if threads > 1 else ''}: mount, {name}",
                         seconds, total, f"{seconds / base:.2f}"))

        epoch("no cache", work / "nocache", 1, t_cat1, size="0")
        epoch("cold cache", work / "cache1", 1, t_cat1)
        epoch("warm cache", work / "cache1", 1, t_cat1)
        rows.append(("read 8 threads: fsspec cat of all paths (concurrent)", t_cat8, nbytes, "1.00"))
        epoch("no cache", work / "nocache", 8, t_cat8, size="0")
        epoch("cold cache", work / "cache8", 8, t_cat8)
        epoch("warm cache", work / "cache8", 8, t_cat8)

        # 3. two concurrent mounts sharing one cache directory
        config = write_config(work / "two.yaml", server.endpoint, work / "cache2")
        for name in ("cold cache", "warm cache"):
            with mounted(work / "m1", config, log), mounted(work / "m2", config, log):
                t0 = time.perf_counter()
                with ThreadPoolExecutor(2) as pool:
                    results = list(pool.map(lambda m: read_tree(m, 4), [work / "m1", work / "m2"]))
                seconds = time.perf_counter() - t0
            assert all(total == nbytes for _, total in results)
            rows.append((f"two mounts x 4 threads at once, {name} (both read all)", seconds,
                         2 * nbytes, f"{seconds / (2 * t_cat8):.2f}"))
    finally:
        server.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.count} photos, {nbytes / 1e6:.1f} MB, moto S3 server on 127.0.0.1\n")
    print(f"| {'what':<62} | {'seconds':>8} | {'MB/s':>7} | {'files/s':>7} | {'vs fsspec':>9} |")
    print(f"|{'-' * 64}|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|")
    for what, seconds, total, ratio in rows:
        files = args.count * (total // nbytes)
        print(f"| {what:<62} | {seconds:8.2f} | {total / 1e6 / seconds:7.1f} | "
              f"{files / seconds:7.0f} | {ratio:>9} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"what": w, "seconds": s, "bytes": b, "ratio": r} for w, s, b, r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
