#!/usr/bin/env python3
"""Mount benchmark (issue 3, "Measured"): lakefs vs the bare FUSE floor vs a plain directory.

In one run, on the same disk, with the same FUSE options for both FUSE filesystems:

- **lakefs**: ``python -m lakefs mount DS MNT -f`` on a local dataset;
- **floor**: ``scripts/bare_memfs.py``'s in-memory filesystem, mounted by this script with
  exactly the keyword arguments lakefs computes (``lakefs.fs.mount.fuse_kwargs``); for
  ``cp -r`` also **floor+flush**, the same with a no-op ``flush`` (the round trip per
  closed file that lakefs pays to report errors at ``close``);
- **plain**: a directory on the same disk;
- **ratarmount** (reads only): the same photos served from an uncompressed tar.

Work and what is timed:

1. ``cp -r`` of a folder of N real-photo JPEGs (scripts/make_photos.py) to the top of each
   target (the same command everywhere; in lakefs the new folder becomes a jpeg tensor at
   its first file), then ``sync``. For lakefs two figures: *cp+sync* (each file is committed to the dataset at
   its close, but the dataset's index is only made durable by the periodic commit), and
   *cp+umount+sync*: the unmount makes everything durable (final commit, fsync) — that
   is the honest "data is on disk" time and the one the ratios use.
2. ``cat`` of every file (``find -print0 | xargs -0 cat >/dev/null``): *cold* = page cache
   dropped (``echo 3 > /proc/sys/vm/drop_caches``, needs root) and, for lakefs and
   ratarmount, a fresh mount; *warm* = the same pass again right after (best of
   ``--repeat``: the machines here are shared, so warm passes take the least-disturbed run).
   lakefs reads through a read-only mount (``-o ro``: no OPEN/RELEASE per file), and
   again as **lakefs-opens** with ``-o ro,snapshot_opens`` (an OPEN and RELEASE per file).
3. A 100k-file tensor of tiny text samples (made with the Python API; the floor is filled
   in memory before mounting; the plain dir with Python): ``ls -l`` cold (fresh mount,
   caches dropped) and warm, and ``stat`` of every file (``xargs stat``) cold and warm.
   lakefs is measured with and without xattrs.
4. ``rsync -a`` of the same photos into a jpeg tensor dir, then ``sync`` (for lakefs also
   *rsync+umount+sync*, used by the ratios): rsync writes each file under a temp name
   (``.name.XXXXXX``, a staging file for lakefs), sets its times and mode, renames it.
5. One 1 GiB file: ``dd bs=1M conv=fsync`` in (from a random source file in page cache;
   for lakefs the file becomes a bytes sample committed at close), then read back cold.
6. ``--only transcode`` (not in the default run): N real-photo PNGs (PNG twins of the
   photos) copied into a jpeg tensor by ``--parallel`` ``cp`` processes at once, each
   file transcoded at its close (DESIGN §3: in parallel across cores where files arrive
   in parallel; use ``-o threads``), and meanwhile the latency of a ``stat`` of a missing
   name (a LOOKUP each: the kernel keeps no negative entries) and a listing of another
   tensor, polled every 20 ms. lakefs only.

Dependencies beyond lakefs: ``ratarmount`` (``pip install ratarmount``; the ratarmount rows
are skipped with a message when it is missing), scikit-learn for the photos,
coreutils/findutils/tar. Run as root for cold figures (drop_caches).

    python scripts/bench_mount.py [--quick] [--workdir DIR] [-o lakefs-and-floor-options]
    python scripts/bench_mount.py --only transcode --photos 400 --parallel 2 -o threads
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


# --- mounts ---------------------------------------------------------------------------


def mounted_paths() -> set[str]:
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        return {line.split()[1] for line in f if len(line.split()) > 2}


def unmount(mnt: Path) -> None:
    """Unmount ``mnt``, retrying while it is busy (lazily in the end). A successful
    unmount returns at once: timed rows include it (``umount_and_wait``), and a fixed
    pause after it was counted as lakefs's final commit (~0.07 s of every cp -r row
    before 2026-11-24)."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    for args in (["-u"], ["-u", "-z"]):
        for _ in range(20):
            if str(mnt) not in mounted_paths():
                return
            cmd = [tool, *args, str(mnt)] if tool else ["umount", *(["-l"] if "-z" in args else []), str(mnt)]
            if subprocess.run(cmd, capture_output=True, check=False).returncode == 0:
                continue  # gone from the mount table now: checked at once
            time.sleep(0.1)


@contextlib.contextmanager
def mounted(argv: list[str], mnt: Path, log: Path, timeout: float = 60) -> Iterator[subprocess.Popen]:
    """Run a foreground mount command; yield once mounted; always unmount and reap it."""
    mnt = Path(os.path.abspath(mnt))
    mnt.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while str(mnt) not in mounted_paths():
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:4]}... exited {proc.returncode} before mounting; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mnt} not mounted within {timeout} s; see {log}")
            time.sleep(0.02)
        yield proc
    finally:
        unmount(mnt)
        try:
            proc.wait(timeout=600)  # lakefs commits everything before exiting
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def umount_and_wait(proc: subprocess.Popen, mnt: Path) -> None:
    """Unmount inside a ``mounted`` block (to time the final commit)."""
    unmount(mnt)
    proc.wait(timeout=600)


# --- timing helpers -------------------------------------------------------------------


def sh(cmd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def drop_caches() -> bool:
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def cat_all(d: Path) -> float:
    return sh(f"find {q(d)} -type f -print0 | xargs -0 cat > /dev/null")


def q(p: Path | str) -> str:
    return "'" + str(p).replace("'", "'\\''") + "'"


# --- the floor server -----------------------------------------------------------------


def serve_floor(mnt: str, options: str, tiny: int, flush: bool = False) -> int:
    """Mount bare_memfs with lakefs's own FUSE kwargs (optionally pre-filled with tiny files).

    ``flush``: give it a no-op ``flush``, the one kernel round trip per closed file that
    lakefs pays to report errors at ``close`` (the "floor+flush" row)."""
    import stat as st

    from bare_memfs import BareMemFS, FileData, Node

    from lakefs.config import Config
    from lakefs.fs.binding import FUSE
    from lakefs.fs.mount import fuse_kwargs, parse_options

    config = Config()
    opts = parse_options(options)
    kw, tuning = fuse_kwargs(config, opts, "floor")
    kw["fsname"], kw["subtype"] = "bare_memfs", "bare_memfs"
    ops = BareMemFS()
    ops.conn_tuning = tuning
    if flush:
        ops.flush = lambda path, fh: 0  # an attribute named after an op registers it
    if tiny:
        now = time.time_ns()
        uid, gid = os.getuid(), os.getgid()
        ops._nodes["/tiny"] = Node(st.S_IFDIR | 0o755, uid, gid, now, now, now)
        ops._nodes["/"].children.add("tiny")
        for i in range(tiny):
            data = FileData()
            data.write(0, tiny_text(i))
            name = f"{tiny_key(i)}.txt"
            ops._nodes[f"/tiny/{name}"] = Node(st.S_IFREG | 0o644, uid, gid, now, now, now, data)
            ops._nodes["/tiny"].children.add(name)
    # The same threading rule as lakefs.fs.mount.run_mount for a local dataset.
    threads = (bool(config.fuse.threads) or bool(opts.get("threads"))) and not opts.get("nothreads")
    FUSE(ops, os.path.abspath(mnt), foreground=True, nothreads=not threads, **kw)
    return 0


def tiny_key(i: int) -> str:
    return f"t{i:06d}"


def tiny_text(i: int) -> bytes:
    return f"sample {i}\n".encode()


# --- the benchmark --------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.workdir).resolve()
        self.results: dict[str, dict[str, float]] = {}
        self.notes: list[str] = []
        self.can_drop = drop_caches()
        if not self.can_drop:
            self.notes.append("cannot drop caches (not root?): cold figures are warm-ish")
        self.log = self.work / "mounts.log"

    def put(self, target: str, metric: str, value: float) -> None:
        self.results.setdefault(metric, {})[target] = value
        print(f"  {target:11s} {metric:28s} {value:10.1f}", flush=True)

    def lakefs_argv(self, ds: Path, mnt: Path, extra: str = "") -> list[str]:
        opts = ",".join(o for o in (self.args.options, extra) if o)
        return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), "-f", *(["-o", opts] if opts else [])]

    def floor_argv(self, mnt: Path, tiny: int = 0, flush: bool = False) -> list[str]:
        return [sys.executable, __file__, "--serve-floor", str(mnt), "--floor-options", self.args.options,
                "--floor-tiny", str(tiny), *(["--floor-flush"] if flush else [])]

    # -- setup

    def setup(self) -> None:
        a = self.args
        self.src = self.work / "src" / "images"
        if not self.src.is_dir() or len(list(self.src.iterdir())) != a.photos:
            from make_photos import make_photos

            shutil.rmtree(self.src, ignore_errors=True)
            print(f"making {a.photos} photos in {self.src}", flush=True)
            make_photos(self.src, a.photos)
        sizes = [p.stat().st_size for p in self.src.iterdir()]
        self.photo_bytes = sum(sizes)
        self.nphotos = len(sizes)
        mean = self.photo_bytes / self.nphotos / 1e3
        self.notes.append(f"{self.nphotos} JPEGs, {self.photo_bytes / 1e6:.1f} MB, mean {mean:.1f} kB")
        self.tar = self.work / "src" / "images.tar"
        if not self.tar.exists():
            subprocess.run(["tar", "-cf", str(self.tar), "-C", str(self.src.parent), "images"], check=True)
        self.bigsrc = self.work / "src" / "big.bin"
        if not self.bigsrc.exists() or self.bigsrc.stat().st_size != a.big_mb << 20:
            with open(self.bigsrc, "wb") as f:
                f.writelines(os.urandom(1 << 20) for _ in range(a.big_mb))

    def fresh(self, name: str) -> Path:
        p = self.work / name
        if p.exists():
            if str(p) in mounted_paths():
                unmount(p)
            shutil.rmtree(p)
        p.mkdir(parents=True)
        return p

    # -- 1 + 2: photos

    def photos_plain(self) -> None:
        d = self.fresh("plain")
        drop_caches()
        self.put("plain", "cp -r + sync (s)", sh(f"cp -r {q(self.src)} {q(d)}/ && sync"))
        self.read_pass("plain", d / "images")

    def photos_floor(self) -> None:
        mnt = self.fresh("mnt_floor")
        with mounted(self.floor_argv(mnt), mnt, self.log):
            drop_caches()
            self.put("floor", "cp -r + sync (s)", sh(f"cp -r {q(self.src)} {q(mnt)}/ && sync"))
            self.read_pass("floor", mnt / "images")  # cold = caches dropped (no remount: in memory)
        mnt = self.fresh("mnt_floor")
        with mounted(self.floor_argv(mnt, flush=True), mnt, self.log):
            drop_caches()
            self.put("floor+flush", "cp -r + sync (s)", sh(f"cp -r {q(self.src)} {q(mnt)}/ && sync"))

    def photos_lakefs(self) -> None:
        ds = self.fresh("ds_photos") / "ds"
        mnt = self.fresh("mnt_lakefs")
        with mounted(self.lakefs_argv(ds, mnt), mnt, self.log) as proc:
            drop_caches()
            t0 = time.perf_counter()
            # The same command as for the floor and the plain directory: cp makes
            # ``images`` (a pending directory; its first photo makes it a jpeg tensor).
            t_cp = sh(f"cp -r {q(self.src)} {q(mnt)}/ && sync")
            umount_and_wait(proc, mnt)
            subprocess.run(["sync"], check=True)
            t_all = time.perf_counter() - t0
        self.put("lakefs", "cp -r + sync (s)", t_cp)
        self.put("lakefs", "cp -r + umount + sync (s)", t_all)
        drop_caches()
        with mounted(self.lakefs_argv(ds, mnt, "ro"), mnt, self.log):
            self.read_pass("lakefs", mnt / "images")
        # The same with an OPEN and RELEASE per file (each open keeps its commit), as
        # read-only mounts read before they used the kernel's no-open mode.
        with mounted(self.lakefs_argv(ds, mnt, "ro,snapshot_opens"), mnt, self.log):
            self.read_pass("lakefs-opens", mnt / "images")

    def rsync_all(self) -> None:
        rsync = f"rsync -a {q(self.src)}/ {{dst}}/ && sync"
        d = self.fresh("plain_rsync")
        drop_caches()
        self.put("plain", "rsync -a + sync (s)", sh(rsync.format(dst=q(d))))
        mnt = self.fresh("mnt_floor")
        with mounted(self.floor_argv(mnt), mnt, self.log):
            (mnt / "images").mkdir()
            drop_caches()
            self.put("floor", "rsync -a + sync (s)", sh(rsync.format(dst=q(mnt / "images"))))
        ds = self.fresh("ds_rsync") / "ds"
        mnt = self.fresh("mnt_lakefs")
        with mounted(self.lakefs_argv(ds, mnt), mnt, self.log) as proc:
            (mnt / "images").mkdir()
            drop_caches()
            t0 = time.perf_counter()
            self.put("lakefs", "rsync -a + sync (s)", sh(rsync.format(dst=q(mnt / "images"))))
            umount_and_wait(proc, mnt)
            subprocess.run(["sync"], check=True)
            self.put("lakefs", "rsync -a + umount + sync (s)", time.perf_counter() - t0)
        shutil.rmtree(ds.parent, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)

    def photos_ratarmount(self) -> None:
        if shutil.which("ratarmount") is None:
            self.notes.append("ratarmount not installed (pip install ratarmount): its rows are skipped")
            return
        mnt = self.fresh("mnt_rata")
        argv = ["ratarmount", "-f", str(self.tar), str(mnt)]
        with mounted(argv, mnt, self.log, timeout=300):  # first mount builds the index: untimed
            pass
        drop_caches()
        with mounted(argv, mnt, self.log):
            self.read_pass("ratarmount", mnt / "images")

    def read_pass(self, target: str, d: Path) -> None:
        n, mb = self.nphotos, self.photo_bytes / 1e6
        if self.can_drop:
            drop_caches()
            t = cat_all(d)
            self.put(target, "cat cold (files/s)", n / t)
        t = min(cat_all(d) for _ in range(self.args.repeat))
        self.put(target, "cat warm (files/s)", n / t)
        self.put(target, "cat warm (MB/s)", mb / t)

    # -- 3: 100k tiny files

    def tiny_lakefs(self) -> Path:
        import lakefs

        ds_path = self.work / "ds_tiny" / "ds"
        stamp = ds_path.parent / f"done-{self.args.tiny}"
        if not stamp.exists():
            shutil.rmtree(ds_path.parent, ignore_errors=True)
            ds_path.parent.mkdir(parents=True)
            ds = lakefs.empty(ds_path)
            t = ds.create_tensor("tiny", htype="text")
            for i in range(self.args.tiny):
                t[tiny_key(i)] = tiny_text(i).decode()
            ds.close()
            stamp.touch()
        return ds_path

    def tiny_plain(self) -> Path:
        d = self.work / "plain_tiny" / "tiny"
        stamp = d.parent / f"done-{self.args.tiny}"
        if not stamp.exists():
            shutil.rmtree(d.parent, ignore_errors=True)
            d.mkdir(parents=True)
            for i in range(self.args.tiny):
                (d / f"{tiny_key(i)}.txt").write_bytes(tiny_text(i))
            stamp.touch()
        return d

    def listing(self, target: str, d: Path, remount=None) -> None:
        """ls -l and stat of every file, cold and warm. ``remount`` gives a fresh mount."""
        n = self.args.tiny
        names = self.work / "tiny-names.txt"
        names.write_text("".join(f"{d}/{tiny_key(i)}.txt\0" for i in range(n)))
        with remount() if remount else contextlib.nullcontext():
            drop_caches()
            self.put(target, "ls -l cold (s)", sh(f"ls -l {q(d)} > /dev/null"))
            self.put(target, "ls -l warm (s)", min(sh(f"ls -l {q(d)} > /dev/null") for _ in range(self.args.repeat)))
        with remount() if remount else contextlib.nullcontext():
            drop_caches()
            t = sh(f"xargs -0 stat --format=%s < {q(names)} > /dev/null")
            self.put(target, "stat cold (k files/s)", n / t / 1e3)
            t = min(sh(f"xargs -0 stat --format=%s < {q(names)} > /dev/null") for _ in range(self.args.repeat))
            self.put(target, "stat warm (k files/s)", n / t / 1e3)

    def tiny_all(self) -> None:
        n = self.args.tiny
        print(f"- {n} tiny files", flush=True)
        self.listing("plain", self.tiny_plain())
        ds = self.tiny_lakefs()
        mnt = self.fresh("mnt_lakefs")
        variants = [("lakefs", "ro")]
        if not self.args.skip_xattr:
            variants += [("lakefs-noxa", "ro,noxattr"), ("lakefs-xa", "ro,xattr")]
        for label, extra in variants:
            self.listing(label, mnt / "tiny",
                         lambda extra=extra: mounted(self.lakefs_argv(ds, mnt, extra), mnt, self.log))
        fmnt = self.fresh("mnt_floor")
        with mounted(self.floor_argv(fmnt, n), fmnt, self.log, timeout=300):
            self.listing("floor", fmnt / "tiny")

    # -- 4: one big file

    def big_all(self) -> None:
        mb = self.args.big_mb
        src = self.bigsrc
        sh(f"cat {q(src)} > /dev/null")  # source in page cache
        dd_in = "dd if={src} of={dst} bs=1M conv=fsync status=none"
        dd_out = "dd if={dst} of=/dev/null bs=1M status=none"
        print(f"- one {mb} MiB file", flush=True)
        d = self.fresh("plain_big")
        t = sh(dd_in.format(src=q(src), dst=q(d / "big.bin")) + " && sync")
        self.put("plain", "1 file write (MB/s)", mb * 1.048576 / t)
        drop_caches()
        self.put("plain", "1 file read cold (MB/s)", mb * 1.048576 / sh(dd_out.format(dst=q(d / "big.bin"))))
        (d / "big.bin").unlink()

        mnt = self.fresh("mnt_floor")
        with mounted(self.floor_argv(mnt), mnt, self.log):
            os.mkdir(mnt / "big")
            t = sh(dd_in.format(src=q(src), dst=q(mnt / "big" / "big.bin")) + " && sync")
            self.put("floor", "1 file write (MB/s)", mb * 1.048576 / t)
            drop_caches()
            self.put("floor", "1 file read cold (MB/s)", mb * 1.048576 / sh(dd_out.format(dst=q(mnt / "big/big.bin"))))

        ds = self.fresh("ds_big") / "ds"
        mnt = self.fresh("mnt_lakefs")
        with mounted(self.lakefs_argv(ds, mnt), mnt, self.log):
            os.mkdir(mnt / "big")
            t = sh(dd_in.format(src=q(src), dst=q(mnt / "big" / "big.bin")) + " && sync")
            self.put("lakefs", "1 file write (MB/s)", mb * 1.048576 / t)
        drop_caches()
        with mounted(self.lakefs_argv(ds, mnt, "ro"), mnt, self.log):
            self.put("lakefs", "1 file read cold (MB/s)", mb * 1.048576 / sh(dd_out.format(dst=q(mnt / "big/big.bin"))))
        shutil.rmtree(ds.parent, ignore_errors=True)

    # -- 6: PNGs transcoded into a jpeg tensor

    def transcode_all(self) -> None:
        import threading

        from make_photos import make_photos

        import lakefs

        n, k = self.args.photos, self.args.parallel
        src = self.work / "src" / "png"
        if not src.is_dir() or len(list(src.glob("*.png"))) != n:
            shutil.rmtree(src, ignore_errors=True)
            print(f"making {n} PNG photos in {src}", flush=True)
            make_photos(src, n, png=True)
        pngs = sorted(src.glob("*.png"))
        mb = sum(p.stat().st_size for p in pngs) / 1e6
        self.notes.append(f"transcode: {n} PNGs, {mb:.1f} MB, into a jpeg tensor by {k} cp at once")
        ds_path = self.fresh("ds_transcode") / "ds"
        ds = lakefs.empty(ds_path)
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        ds.create_tensor("other", htype="image", sample_compression="jpeg")
        ds.other.write_file("x.jpg", (src / pngs[0].name).with_suffix(".jpg").read_bytes())
        ds.close()
        mnt = self.fresh("mnt_lakefs")
        lists = []
        for i in range(k):
            lists.append(self.work / f"transcode-{i}.list")
            lists[-1].write_bytes(b"".join(bytes(p) + b"\0" for p in pngs[i::k]))
        latencies: list[float] = []
        copying = threading.Event()

        def poll() -> None:  # a LOOKUP and a listing of another tensor, while the copies run
            i = 0
            while copying.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(FileNotFoundError):
                    os.stat(mnt / "other" / f"missing{i}.jpg")
                os.listdir(mnt / "other")
                latencies.append(time.perf_counter() - t0)
                i += 1
                time.sleep(0.02)

        with mounted(self.lakefs_argv(ds_path, mnt), mnt, self.log) as proc:
            copying.set()
            poller = threading.Thread(target=poll)
            poller.start()
            t0 = time.perf_counter()
            cps = [subprocess.Popen(["bash", "-c", f"xargs -0 cp -t {q(mnt / 'images')} < {q(lst)}"])
                   for lst in lists]
            codes = [c.wait() for c in cps]
            elapsed = time.perf_counter() - t0
            copying.clear()
            poller.join()
            if any(codes) or len(os.listdir(mnt / "images")) != n:
                raise RuntimeError(f"transcode copies failed ({codes}); see {self.log}")
            umount_and_wait(proc, mnt)
        latencies.sort()
        self.put("lakefs", f"{n} PNG->jpeg, {k} cp (s)", elapsed)
        self.put("lakefs", f"{n} PNG->jpeg, {k} cp (files/s)", n / elapsed)
        if latencies:
            self.put("lakefs", "stat+ls meanwhile, median (ms)", latencies[len(latencies) // 2] * 1e3)
            self.put("lakefs", "stat+ls meanwhile, max (ms)", latencies[-1] * 1e3)
        for lst in lists:
            lst.unlink()
        shutil.rmtree(ds_path.parent, ignore_errors=True)

    # -- report

    def report(self) -> str:
        targets = ["lakefs", "floor", "floor+flush", "plain", "ratarmount", "lakefs-opens", "lakefs-noxa",
                   "lakefs-xa"]

        def higher_better(metric: str) -> bool:
            return "/s" in metric

        others = ("floor", "floor+flush", "plain", "ratarmount")
        lines = ["| metric | " + " | ".join(targets) + " | " + " | ".join(f"lakefs/{o}" for o in others) + " |",
                 "|---|" + "---:|" * (len(targets) + len(others))]
        for metric, row in self.results.items():
            cells = [f"{row[t]:.1f}" if t in row else "" for t in targets]
            ratios = []
            for other in others:
                lk = row.get("lakefs")
                durable = metric.replace(" + sync (s)", " + umount + sync (s)")
                if durable != metric and durable in self.results:
                    lk = self.results[durable].get("lakefs")  # lakefs's time until everything is durable
                ot = row.get(other)
                if lk and ot:
                    r = lk / ot if higher_better(metric) else ot / lk
                    ratios.append(f"{r:.2f}×")
                else:
                    ratios.append("")
            lines.append(f"| {metric} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        lines.append("")
        lines.append("Ratios are speed ratios (>1 = lakefs faster); for cp -r and rsync -a the lakefs time "
                     "used is the one with umount (everything durable).")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run: 300 photos, 10k tiny files, 128 MiB")
    p.add_argument("--workdir", default=None, help="where data, datasets and mountpoints go (same disk)")
    p.add_argument("-o", dest="options", default="", help="extra mount options for lakefs and the floor")
    p.add_argument("--photos", type=int, default=None)
    p.add_argument("--tiny", type=int, default=None)
    p.add_argument("--big-mb", type=int, default=None)
    p.add_argument("--only", default="photos,rsync,ratarmount,tiny,big", help="comma list of parts to run")
    p.add_argument("--skip-xattr", action="store_true", help="no ls -l/stat rows with xattrs on and off")
    p.add_argument("--repeat", type=int, default=3, help="warm passes are the best of this many")
    p.add_argument("--parallel", type=int, default=2, help="cp processes at once (--only transcode)")
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--serve-floor", default=None, help=argparse.SUPPRESS)
    p.add_argument("--floor-options", default="", help=argparse.SUPPRESS)
    p.add_argument("--floor-tiny", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--floor-flush", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    # Stop cleanly (every mount unmounted by the finally blocks) on SIGTERM, and on SIGINT
    # even when started in the background by a shell that ignores it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if a.serve_floor:
        return serve_floor(a.serve_floor, a.floor_options, a.floor_tiny, a.floor_flush)
    a.photos = a.photos or (300 if a.quick else 2000)
    a.tiny = a.tiny or (10_000 if a.quick else 100_000)
    a.big_mb = a.big_mb or (128 if a.quick else 1024)
    a.workdir = a.workdir or os.path.join(tempfile.gettempdir(), "lakefs-bench")
    os.makedirs(a.workdir, exist_ok=True)
    if shutil.which("ratarmount") is None:
        print("note: ratarmount is not installed (pip install ratarmount); its rows will be skipped",
              file=sys.stderr)
    b = Bench(a)
    parts = set(a.only.split(","))
    print(f"workdir {b.work}; options {a.options or '(defaults)'}", flush=True)
    if parts - {"transcode"}:
        b.setup()
    if "photos" in parts:
        print(f"- {b.nphotos} photos", flush=True)
        b.photos_plain()
        b.photos_floor()
        b.photos_lakefs()
    if "rsync" in parts:
        b.rsync_all()
    if "ratarmount" in parts:
        b.photos_ratarmount()
    if "tiny" in parts:
        b.tiny_all()
    if "big" in parts:
        b.big_all()
    if "transcode" in parts:
        b.transcode_all()
    table = b.report()
    print()
    print(table)
    if a.json:
        Path(a.json).write_text(json.dumps({"results": b.results, "notes": b.notes, "args": vars(a)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
