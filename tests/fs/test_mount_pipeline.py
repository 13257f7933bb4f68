"""A training job reading a mounted dataset while data is still being added to it.

Readers are worker processes (a multiprocessing pool, as a DataLoader's) that open files
by name, read them whole and decode them with Pillow; every read is checked against the
source's md5. Writers are the tools a user copies with (rsync, cp, lakefs ingest).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing import Pool
from pathlib import Path

import pytest
from mounting import is_mounted, mounted
from PIL import Image

import lakefs

pytestmark = pytest.mark.timeout(60)


def lakefs_mount(ds: Path, mnt: Path, *opts: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), *opts]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_and_decode(job: tuple[str, str]) -> str | None:
    """A worker's read: whole bytes, then a Pillow decode; None if right, else what went wrong."""
    path, want = job
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".jpg"):
            with Image.open(path) as im:
                im.load()
    except OSError as e:
        return f"{path}: {e!r}"
    return None if md5(data) == want else f"{path}: {len(data)} bytes, not the source's"


def epochs(jobs: list[tuple[str, str]], seconds: float) -> list[str | None]:
    """Shuffled epochs over ``jobs`` by a pool of 4 workers, for at least ``seconds``."""
    results: list[str | None] = []
    end = time.monotonic() + seconds
    with Pool(4) as pool:
        while time.monotonic() < end:
            order = random.sample(jobs, len(jobs))
            results += pool.map(read_and_decode, order, chunksize=4)
    return results


def fsck_clean(ds: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "lakefs", "fsck", str(ds)], capture_output=True, text=True)
    assert r.returncode == 0 and "clean" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("opts", [[], ["-o", "threads"]])
@pytest.mark.parametrize("tool", ["rsync", "cp"])
def test_copy_into_a_tensor_while_workers_read_it_and_another(photo_factory, tmp_path, mountpoint, tool, opts):
    old, new, other = photo_factory(16, seed=11), photo_factory(48, seed=12), photo_factory(16, seed=13)
    src = tmp_path / "new"
    src.mkdir()
    for p in new:
        shutil.copy(p, src / f"new_{p.name}")
    ds = tmp_path / "ds"
    with mounted(lakefs_mount(ds, mountpoint, *opts), mountpoint):
        images, others = mountpoint / "images", mountpoint / "other"
        images.mkdir()
        others.mkdir()
        subprocess.run(["cp", *map(str, old), str(images)], check=True)
        subprocess.run(["cp", *map(str, other), str(others)], check=True)
        jobs = [(str(images / p.name), md5(p.read_bytes())) for p in old]
        jobs += [(str(others / p.name), md5(p.read_bytes())) for p in other]
        cmd = (["rsync", "-a", f"{src}/", f"{images}/"] if tool == "rsync"
               else ["cp", "-r", "-T", str(src), str(images)])
        writer = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        results = epochs(jobs, 2.0)
        _, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
        assert [r for r in results if r] == []
        assert len(results) >= 2 * len(jobs)
        want = {p.name: md5(p.read_bytes()) for p in old} | {f.name: md5(f.read_bytes()) for f in src.iterdir()}
        assert {n: md5((images / n).read_bytes()) for n in os.listdir(images)} == want
    fsck_clean(ds)


def make_split_tree(root: Path, photos: list[Path]) -> dict[str, bytes]:
    """train/ and val/ with images, class-name labels and JSON boxes; relative path → bytes."""
    files: dict[str, bytes] = {}
    for i, p in enumerate(photos):
        split = "train" if i % 4 else "val"
        files[f"{split}/images/{p.name}"] = p.read_bytes()
        files[f"{split}/labels/{p.stem}.txt"] = ["cat\n", "dog\n", "dog\ncat\n"][i % 3].encode()
        files[f"{split}/boxes/{p.stem}.json"] = json.dumps({"boxes": [[i, 2, 30.5, 40]], "ü": "é"}).encode()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def walk(root: Path) -> list[str]:
    """Every file under root, as a DataLoader's dataset builds its list: os.walk, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in sorted(filenames)]
    return out


def test_a_split_dataset_walked_and_read_by_shuffled_workers(photo_factory, tmp_path, mountpoint):
    src, ds = tmp_path / "src", tmp_path / "ds"
    files = make_split_tree(src, photo_factory(16, seed=14))
    with lakefs.empty(ds) as d:  # labels as class labels: the tensor stores their indices
        for split in ("train", "val"):
            d.create_tensor(f"{split}/labels", htype="class_label", class_names=["cat", "dog"])
    with mounted(lakefs_mount(ds, mountpoint), mountpoint):
        subprocess.run(["rsync", "-a", f"{src}/", f"{mountpoint}/"], check=True)
        assert walk(mountpoint) == walk(src)
        jobs = [(str(mountpoint / rel), md5(data)) for rel, data in files.items()]
        results = epochs(jobs, 1.0)
        assert [r for r in results if r] == []
        # A label written without its line break reads back with it (README: class labels).
        (src / "train/labels/photo_00001.txt").write_text("dog")
        (mountpoint / "train/labels/photo_00001.txt").write_text("dog")
        assert (mountpoint / "train/labels/photo_00001.txt").read_bytes() == b"dog\n"
    with lakefs.load(ds, read_only=True) as d:
        assert d["train/labels"]["photo_00002"].numpy().tolist() == [1, 0]
        assert d["val/boxes"]["photo_00000"].numpy() == {"boxes": [[0, 2, 30.5, 40]], "ü": "é"}
    fsck_clean(ds)


def test_two_copies_at_once_into_two_tensors_and_into_one(photo_factory, tmp_path, mountpoint):
    a, b = photo_factory(24, seed=15), photo_factory(24, seed=16)  # the same names, other bytes
    srcs = {tag: tmp_path / tag for tag in ("a", "b", "c")}
    for tag, photos, prefix in (("a", a, "a_"), ("b", b, ""), ("c", a, "")):
        srcs[tag].mkdir()
        for p in photos:
            shutil.copy(p, srcs[tag] / f"{prefix}{p.name}")

    def together(*cmds: list[str]) -> None:
        procs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in cmds]
        for p in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err

    def contents(d: Path) -> dict[str, str]:
        return {n: md5((d / n).read_bytes()) for n in os.listdir(d)}

    def want(*dirs: Path) -> dict[str, str]:
        return {p.name: md5(p.read_bytes()) for d in dirs for p in d.iterdir()}

    with mounted(lakefs_mount(tmp_path / "ds", mountpoint), mountpoint):
        m = mountpoint
        together(["cp", "-r", str(srcs["a"]), str(m / "t1")], ["cp", "-r", str(srcs["b"]), str(m / "t2")])
        assert contents(m / "t1") == want(srcs["a"]) and contents(m / "t2") == want(srcs["b"])
        (m / "one").mkdir()
        together(["cp", "-r", "-T", str(srcs["a"]), str(m / "one")], ["cp", "-r", "-T", str(srcs["b"]), str(m / "one")])
        assert contents(m / "one") == want(srcs["a"], srcs["b"])
        # The same names at once: rsync renames each whole file in; either copy may win.
        (m / "same").mkdir()
        together(["rsync", "-a", f"{srcs['b']}/", f"{m / 'same'}/"], ["rsync", "-a", f"{srcs['c']}/", f"{m / 'same'}/"])
        got, b_, c_ = contents(m / "same"), want(srcs["b"]), want(srcs["c"])
        assert sorted(got) == sorted(b_) and all(got[n] in (b_[n], c_[n]) for n in got)
    fsck_clean(tmp_path / "ds")


READER = textwrap.dedent("""
    import mmap, os, sys
    d = sys.argv[1]
    print("reading", flush=True)
    while True:
        for n in sorted(os.listdir(d)):
            with open(os.path.join(d, n), "rb") as f:
                m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
                m[:]
                f.read(4096)
""")

# Writes rsync's way (a temp name, closed, renamed), printing each name once renamed;
# then leaves a sample and a temp file half written, and waits to be stopped.
WRITER = textwrap.dedent("""
    import os, sys, time
    src, dst = sys.argv[1], sys.argv[2]
    names = sorted(os.listdir(src))
    for n in names[:-2]:
        data = open(os.path.join(src, n), "rb").read()
        with open(os.path.join(dst, f".{n}.XyZ123"), "wb") as f:
            f.write(data)
        os.rename(os.path.join(dst, f".{n}.XyZ123"), os.path.join(dst, n))
        print(n, flush=True)
    half = [open(os.path.join(dst, names[-2]), "wb"), open(os.path.join(dst, f".{names[-1]}.XyZ123"), "wb")]
    for f, n in zip(half, names[-2:]):
        f.write(open(os.path.join(src, n), "rb").read()[:1000])
        f.flush()
    print("half", flush=True)
    time.sleep(60)
""")


def test_readers_killed_mid_read_then_sigterm_during_a_copy(photo_factory, tmp_path, mountpoint):
    photos = photo_factory(12, seed=17)
    ds = tmp_path / "ds"
    with mounted(lakefs_mount(ds, mountpoint), mountpoint,
                 expected_errors=[r"not stored: still being written when the mount stopped"],
                 expect_exit_code=1) as m:
        images = mountpoint / "images"
        images.mkdir()
        subprocess.run(["cp", *map(str, photos[:4]), str(images)], check=True)
        readers = [subprocess.Popen([sys.executable, "-c", READER, str(images)], stdout=subprocess.PIPE, text=True)
                   for _ in range(4)]
        for r in readers:
            assert r.stdout.readline() == "reading\n"
        time.sleep(0.5)
        for r in readers:
            r.kill()  # with files open and mapped
            r.wait()
        assert {p.name: md5((images / p.name).read_bytes()) for p in photos[:4]} == \
            {p.name: md5(p.read_bytes()) for p in photos[:4]}

        src = tmp_path / "src"
        src.mkdir()
        for p in photos[4:]:
            shutil.copy(p, src / f"new_{p.name}")
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(images)],
                                  stdout=subprocess.PIPE, text=True)
        renamed = []
        while (line := writer.stdout.readline().strip()) != "half":
            assert line, "the writer died"
            renamed.append(line)
        m.process.send_signal(signal.SIGTERM)
        m.process.wait(timeout=30)
        writer.kill()
        writer.wait()
        # exit 1: the half-written sample was not stored (the last log line names it)
        assert m.process.returncode == 1 and not is_mounted(mountpoint), m.log()
        assert "1 file(s) not stored (logged above): /images/new_photo" in m.log().splitlines()[-1]
    names = sorted(os.listdir(src))
    with lakefs.load(ds, read_only=True) as d:
        stored = {s.filename: s.tobytes() for s in d.images.iter_samples()}
        plain = {path: d.read_file(path) for path in d.files}
    # Every file renamed before the stop is kept, whole; the half-written sample is not.
    assert stored == {**{p.name: p.read_bytes() for p in photos[:4]},
                      **{n: (src / n).read_bytes() for n in renamed}}
    assert names[-2] not in stored and renamed == names[:-2]
    # The temp file the stop left is a plain file with what was written, as on a disk.
    assert plain == {f"images/.{names[-1]}.XyZ123": (src / names[-1]).read_bytes()[:1000]}
    fsck_clean(ds)


def test_a_read_only_mount_beside_lakefs_ingest(photo_factory, tmp_path, mountpoint):
    first, more = photo_factory(16, seed=18), photo_factory(32, seed=19)
    src = tmp_path / "more"
    src.mkdir()
    for p in more:
        shutil.copy(p, src / f"more_{p.name}")
    ds = tmp_path / "ds"
    with lakefs.empty(ds) as d:
        d.create_tensor("images", htype="image", sample_compression="jpeg")
        for p in first:
            d.images.write_file(p.name, p.read_bytes())
    want = {p.name: md5(p.read_bytes()) for p in first} | {p.name: md5(p.read_bytes()) for p in src.iterdir()}
    with mounted(lakefs_mount(ds, mountpoint, "-o", "ro,refresh_interval=0.2"), mountpoint):
        images = mountpoint / "images"
        ingest = subprocess.Popen([sys.executable, "-m", "lakefs", "ingest", str(src), str(ds), "--tensor", "images",
                                   "--commit-seconds", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        results: list[str | None] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # epochs over what is listed now
            listed = sorted(os.listdir(images))
            results += epochs([(str(images / n), want[n]) for n in listed], 0.1)
            if ingest.poll() is not None and len(listed) == len(want):
                break
        out, err = ingest.communicate(timeout=30)
        assert ingest.returncode == 0, err
        assert [r for r in results if r] == []
        assert sorted(os.listdir(images)) == sorted(want)
        assert {n: md5((images / n).read_bytes()) for n in want} == want
