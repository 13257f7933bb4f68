"""``lakefs create``, ``tensor``, ``info``, ``ls``, ``compact`` and the error edge."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lakefs

REPO = Path(__file__).resolve().parents[2]


def test_create_and_refuse_an_existing_dataset(cli, dataset_path: Path) -> None:
    r = cli("create", dataset_path)
    assert r.code == 0 and r.out == f"created dataset {dataset_path}\n"
    r = cli("create", dataset_path)
    # the CLI's flag is named, not the API's keyword ("(use overwrite)")
    assert (r.code, r.err) == (1, f"lakefs: error: a dataset already exists at {dataset_path} (--overwrite "
                                  "replaces it, deleting its data)\n")
    with pytest.raises(lakefs.errors.DatasetExistsError, match=r"\(use overwrite\)"):
        lakefs.empty(dataset_path)
    assert cli("create", dataset_path, "--overwrite").code == 0


def test_tensor_create_list_delete(cli, dataset_path: Path) -> None:
    cli("create", dataset_path)
    r = cli("tensor", "create", dataset_path, "train/labels", "--htype", "class_label", "--class-names", "cat,dog")
    assert r.code == 0 and "class_names=cat,dog" in r.out
    r = cli("tensor", "create", dataset_path, "images", "--htype", "image", "--sample-compression", "png",
            "--chunk-size", "1MB")
    assert r.code == 0
    r = cli("tensor", "create", dataset_path, "raw", "--dtype", "float32", "--chunk-compression", "lz4")
    assert r.code == 0
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["images"].meta.chunk_size == 1 << 20
        assert ds["raw"].chunk_compression == "lz4" and ds["raw"].dtype == "float32"
        assert ds.groups == ["train"]
    lines = cli("tensor", "list", dataset_path).out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["images", "raw", "train/labels"]
    assert "sample_compression=png" in lines[0]
    assert cli("tensor", "delete", dataset_path, "raw").code == 0
    r = cli("tensor", "delete", dataset_path, "raw")
    assert r.code == 1 and "no tensor 'raw'" in r.err


def test_tensor_delete_of_a_group_says_so_and_r_deletes_it(cli, dataset_path: Path) -> None:
    """``lakefs tensor delete DS train`` of a group said "no tensor 'train'" (found by QA)."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("train/images", htype="bytes")
        ds.create_tensor("train/labels", htype="class_label")
        ds.create_tensor("val/images", htype="bytes")
        ds.write_file("train/README", b"x")
    r = cli("tensor", "delete", dataset_path, "train")
    assert (r.code, r.err) == (1, f"lakefs: error: 'train' is a group of 2 tensors, not a tensor: "
                                  f"`lakefs tensor delete -r {dataset_path} train` deletes it and everything in it\n")
    with pytest.raises(lakefs.errors.TensorNotFoundError, match=r"^'train' is a group, not a tensor: "
                                                                 r"delete_group\('train', recursive=True\)"):
        with lakefs.load(dataset_path) as ds:
            ds.delete_tensor("train")
    r = cli("tensor", "delete", "-r", dataset_path, "train")
    assert (r.code, r.out) == (0, "deleted group train (2 tensors)\n")
    assert cli("tensor", "delete", "--recursive", dataset_path, "val/images").out == "deleted tensor val/images\n"
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert (list(ds.tensors), ds.groups, list(ds.files)) == ([], ["val"], [])


@pytest.mark.parametrize(("options", "message"), [
    (["--htype", "nope"], "unknown htype 'nope'"),
    (["--sample-compression", "zip"], "unknown compression 'zip'"),
    (["--sample-compression", "jpeg", "--chunk-compression", "lz4"], "not both"),
    (["--htype", "image", "--sample-compression", "wav"], "cannot use sample_compression 'wav'"),
    (["--chunk-size", "lots"], "--chunk-size must be a size like 512MB, got 'lots'"),
    (["--chunk-size", "100"], "too small"),
    (["--chunk-size", "0"], "chunk_size 0 is too small"),
    (["--chunk-size", "100TB"], "--chunk-size must be at most 256 MiB (268435456 bytes), got '100TB'"),
    (["--chunk-size", "257MiB"], "--chunk-size must be at most 256 MiB (268435456 bytes), got '257MiB'"),
    (["--dtype", "int99"], "dtype"),
])
def test_bad_tensor_options(cli, dataset_path: Path, options: list[str], message: str) -> None:
    cli("create", dataset_path)
    r = cli("tensor", "create", dataset_path, "t", *options)
    assert r.code == 1
    assert r.err.startswith("lakefs: error: ") and message in r.err and len(r.err.splitlines()) == 1
    assert "t" not in lakefs.load(dataset_path, read_only=True).tensors


def test_ingest_refuses_a_chunk_size_beyond_the_maximum_and_creates_nothing(cli, jpeg_dir: Path,
                                                                            dataset_path: Path) -> None:
    r = cli("ingest", jpeg_dir, dataset_path, "--chunk-size", "100TB", "-j", "0")
    assert r.code == 1
    assert r.err == "lakefs: error: --chunk-size must be at most 256 MiB (268435456 bytes), got '100TB'\n"
    assert not dataset_path.exists()
    cfg = dataset_path.parent / "c.yaml"
    cfg.write_text("chunk_size: 1TB\n")
    r = cli("ingest", jpeg_dir, dataset_path, "--config", cfg, "-j", "0")
    assert r.code == 1 and r.err == "lakefs: error: config: chunk_size must be at most 256 MiB (268435456 bytes), " \
                                    "got '1TB'\n"
    assert not dataset_path.exists()
    assert cli("ingest", jpeg_dir, dataset_path, "--chunk-size", "256MiB", "-j", "0", "-q").code == 0


def test_tensor_name_clash_and_bad_name(cli, dataset_path: Path) -> None:
    cli("create", dataset_path)
    cli("tensor", "create", dataset_path, "a")
    assert "already exists" in cli("tensor", "create", dataset_path, "a").err
    assert "must not start with '.'" in cli("tensor", "create", dataset_path, ".hidden").err


@pytest.mark.parametrize("command", [["info"], ["tensor", "list"], ["ls"], ["compact"],
                                     ["tensor", "create", "DS", "x"], ["export", "DS", "OUT"]])
def test_missing_dataset_is_one_line(cli, tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing"
    argv = [missing if a == "DS" else tmp_path / "out" if a == "OUT" else a for a in command]
    if "DS" not in command:
        argv.append(missing)
    r = cli(*argv)
    assert r.code == 1 and r.err.startswith("lakefs: error: no lakefs dataset") and len(r.err.splitlines()) == 1


@pytest.mark.parametrize("command", [["create"], ["ingest", "SRC"]])
def test_a_dataset_folder_that_cannot_be_created_is_one_line(cli, tmp_path: Path, command: list[str]) -> None:
    """Under a file, or where mkdir fails (/proc): said as such, not "no such object 'locks/writer'"."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    for where, reason in ((tmp_path / "file" / "ds", f"{tmp_path / 'file'} is not a directory"),
                          (Path("/proc/lakefs-test-ds"), "No such file or directory")):
        r = cli(*[tmp_path / "src" if a == "SRC" else a for a in command], where)
        assert r.code == 1 and r.err == f"lakefs: error: cannot create storage root {where}: {reason}\n"
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("command", [["create"], ["ingest", "SRC"]])
def test_a_dataset_whose_parent_folder_is_missing_is_refused(cli, tmp_path: Path, command: list[str]) -> None:
    """`lakefs create /data/cast/ds` (a typo of cats) made /data/cast as mkdir -p would, and
    an empty dataset in it; as mkdir, the CLI refuses a missing parent folder."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    for where, parent in ((tmp_path / "typo" / "deeper" / "ds", tmp_path / "typo" / "deeper"),
                          (f"file://{tmp_path}/typo/ds", tmp_path / "typo")):
        r = cli(*[tmp_path / "src" if a == "SRC" else a for a in command], where)
        assert r.code == 1 and r.err == (
            f"lakefs: error: cannot create the dataset {where}: its parent folder {parent} does not exist "
            "(check the path, or create the folder first with mkdir -p)\n")
        assert not (tmp_path / "typo").exists()
    assert cli(*[tmp_path / "src" if a == "SRC" else a for a in command], tmp_path / "ds").code == 0
    with lakefs.empty(tmp_path / "api" / "made" / "ds"):  # the API makes parents, as Deep Lake's does
        pass


EMPTY_DATASET = "lakefs: error: the dataset is an empty path; name one (. for the current folder)\n"


@pytest.mark.parametrize(("argv", "err"), [
    (["ls", ""], "lakefs: error: the path to list is an empty path; name a dataset or a path in one "
                 "(. for the current folder)\n"),
    (["ls", "-l", ""], "lakefs: error: the path to list is an empty path; name a dataset or a path in one "
                       "(. for the current folder)\n"),
    (["create", ""], EMPTY_DATASET), (["create", "", "--overwrite"], EMPTY_DATASET),
    (["info", ""], EMPTY_DATASET), (["tensor", "list", ""], EMPTY_DATASET),
    (["tensor", "create", "", "y"], EMPTY_DATASET), (["tensor", "delete", "", "x"], EMPTY_DATASET),
    (["compact", ""], EMPTY_DATASET), (["fsck", ""], EMPTY_DATASET), (["fsck", "--repair", ""], EMPTY_DATASET),
    (["export", "", "OUT"], EMPTY_DATASET), (["ingest", "SRC", ""], EMPTY_DATASET),
    (["ingest", "", "OTHER"], "lakefs: error: the source folder is an empty path; name a folder "
                              "(. for the current one)\n"),
    (["info", ".", "--config", ""], "lakefs: error: --config is an empty path; name a YAML file\n"),
])
def test_an_empty_path_argument_is_refused(cli, monkeypatch, tmp_path: Path, jpeg_dir: Path, argv: list[str],
                                           err: str) -> None:
    """'' is no path: `lakefs ls ''` listed /, and every other command took it for the
    working directory (`lakefs tensor delete '' x` deleted x from the dataset there,
    `lakefs create --overwrite ''` emptied it)."""
    from lakefs.tools import split_dataset_path

    work = tmp_path / "work"
    with lakefs.empty(work) as ds:
        ds.create_tensor("x")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    monkeypatch.chdir(work)
    subs = {"SRC": jpeg_dir, "OUT": tmp_path / "out", "OTHER": tmp_path / "other"}
    r = cli(*[subs.get(a, a) for a in argv])
    assert r.code == 1 and r.err == err and r.out == ""
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
    assert list(lakefs.load(work, read_only=True).tensors) == ["x"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "other").exists()
    with pytest.raises(lakefs.errors.ConfigError, match="the path is empty"):
        split_dataset_path("")


@pytest.mark.parametrize(("names", "message"), [
    ("cat,dog,,bird", "class name '' is empty"),
    (" cat,dog", "class name ' cat' has leading or trailing whitespace"),
    ("cat, dog", "class name ' dog' has leading or trailing whitespace"),
])
def test_class_names_the_api_refuses_are_refused(cli, dataset_path: Path, names: str, message: str) -> None:
    """The CLI dropped an empty name and stripped spaces, where the API refuses both."""
    cli("create", dataset_path)
    r = cli("tensor", "create", dataset_path, "labels", "--htype", "class_label", "--class-names", names)
    assert (r.code, r.err) == (1, f"lakefs: error: {message}\n")
    with lakefs.load(dataset_path) as ds, pytest.raises(lakefs.errors.InvalidSampleError, match=message):
        ds.create_tensor("labels", htype="class_label", class_names=names.split(","))  # the API's message


def test_class_names_only_for_a_class_label_tensor(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    """--class-names was kept (and shown) on a text tensor, and given to an image tensor an
    ingest created; the names an ImageFolder's labels get from its folders stay."""
    cli("create", dataset_path)
    for argv, htype in ((("--htype", "text"), "--htype text"), ((), "--htype generic")):
        r = cli("tensor", "create", dataset_path, "t", *argv, "--class-names", "a")
        assert (r.code, r.err) == (1, f"lakefs: error: --class-names is for a class_label tensor, not {htype}\n")
    other = dataset_path.parent / "other"
    r = cli("ingest", jpeg_dir, other, "--class-names", "a,b")
    assert (r.code, r.err) == (1, "lakefs: error: --class-names is for a class_label tensor: give --htype "
                                  "class_label with it\n")
    assert not other.exists()
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 0
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "--htype", "class_label", "--class-names", "a")
    assert (r.code, r.err) == (1, "lakefs: error: cannot add class names to tensor 'images': its htype is image, "
                                  "not class_label\n")
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["images"].class_names == [] and "t" not in ds.tensors
    pets = dataset_path.parent / "pets"
    for cls in ("cat", "dog"):
        (pets / cls).mkdir(parents=True)
        shutil.copy2(sorted(jpeg_dir.iterdir())[0], pets / cls / f"{cls}.jpg")
    assert cli("ingest", pets, dataset_path.parent / "pets-ds").code == 0
    with lakefs.load(dataset_path.parent / "pets-ds", read_only=True) as ds:
        assert ds["labels"].class_names == ["cat", "dog"] and ds["images"].class_names == []


def test_info_table_and_json(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    with lakefs.load(dataset_path) as ds:
        ds.create_tensor("labels", htype="class_label", class_names=["a", "b"])
        ds["labels"][ds.keys()[0]] = "b"
        ds.create_tensor("empty", htype="text")
    r = cli("info", dataset_path)
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].startswith(f"dataset {dataset_path}: 8 rows, 3 tensors")
    empty = next(line for line in lines if line.startswith("empty"))
    assert empty.split()[4:] == ["0", "0", "B", "-", "-"]  # no ratio of nothing (it said 0.00x)
    assert lines[1].split() == ["tensor", "htype", "dtype", "compression", "samples", "stored", "per", "sample",
                                "ratio"]
    images = next(line for line in lines if line.startswith("images"))
    assert images.split()[1:5] == ["image", "uint8", "jpeg", "8"]
    info = json.loads(cli("info", dataset_path, "--json").out)
    assert info["rows"] == 8
    t = {x["name"]: x for x in info["tensors"]}
    total = sum(p.stat().st_size for p in jpeg_dir.iterdir())
    assert t["images"]["sample_bytes"] == total
    assert t["images"]["stored_bytes"] >= total
    assert t["images"]["bytes_per_sample"] == pytest.approx(total / 8, abs=0.1)
    assert t["images"]["compression_ratio"] > 3  # JPEG vs raw pixels
    assert t["labels"]["samples"] == 1 and t["labels"]["class_names"] == ["a", "b"]


def test_info_of_a_chunk_compressed_tensor_counts_its_compressed_bytes(cli, dataset_path: Path) -> None:
    """An lz4 tensor's samples were counted uncompressed (index lengths are payload
    lengths): "ratio 1.00x" and a sample bigger than all that was stored."""
    rng = np.random.default_rng(0)
    with lakefs.empty(dataset_path) as ds:
        t = ds.create_tensor("arr", htype="generic", dtype="float32", chunk_compression="lz4", chunk_size=1 << 20)
        for _ in range(40):
            a = np.zeros((128, 256), "float32")
            a[:32] = rng.random((32, 256))
            t.append(a)
        big = np.zeros((1024, 1024), "float32")  # 4 MB, over twice the chunk size: tiled
        big[:64] = rng.random((64, 1024))
        t.append(big)
    info = json.loads(cli("info", dataset_path, "--json").out)
    arr = info["tensors"][0]
    assert arr["raw_bytes"] == 40 * 128 * 256 * 4 + 1024 * 1024 * 4
    assert arr["sample_bytes"] <= arr["stored_bytes"] < arr["raw_bytes"] / 3
    assert arr["compression_ratio"] == pytest.approx(arr["raw_bytes"] / arr["sample_bytes"], rel=1e-3)
    assert arr["compression_ratio"] > 3
    assert arr["bytes_per_sample"] * 41 <= arr["stored_bytes"]
    row = next(line for line in cli("info", dataset_path).out.splitlines() if line.startswith("arr"))
    assert row.split()[-1] == f"{arr['compression_ratio']:.2f}x" != "1.00x"
    with lakefs.load(dataset_path) as ds:  # half the small ones deleted: their share is no sample's
        assert ds["arr"]._engine.index.live()["tiles"].max() > 1
        for row in range(0, 40, 2):
            ds["arr"].pop(row)
    after = json.loads(cli("info", dataset_path, "--json").out)["tensors"][0]
    assert after["stored_bytes"] == arr["stored_bytes"]
    assert 0 < arr["sample_bytes"] - after["sample_bytes"] < arr["sample_bytes"] / 2  # (the big one is left)


def test_info_says_how_much_is_left_by_deletes_and_compact_reclaims_it(cli, dataset_path: Path) -> None:
    """The stored column counted the bytes of deleted samples with no word of it: 42
    photos said 2.0 MB stored, 975 kB after `lakefs compact` (found by QA)."""
    rng = np.random.default_rng(0)
    with lakefs.empty(dataset_path) as ds:
        t = ds.create_tensor("blobs", htype="bytes", chunk_size=1 << 20)
        for i in range(8):
            t.write_file(f"b{i}.bin", rng.bytes(600_000))
    assert "hold no current sample" not in cli("info", dataset_path).out
    with lakefs.load(dataset_path) as ds:
        for i in range(6):
            ds["blobs"].pop(f"b{i}")
    out = cli("info", dataset_path).out
    assert "of the stored bytes hold no current sample" in out and "lakefs compact" in out, out
    assert cli("compact", dataset_path).code == 0
    assert "hold no current sample" not in cli("info", dataset_path).out


def test_info_says_compact_reclaims_only_what_it_does(cli, dataset_path: Path) -> None:
    """A chunk exactly half live: info said its 2.0 MB of deleted samples "`lakefs compact`
    reclaims", and compact kept the chunk and reclaimed 0 B (found by QA). Info's figure
    is now compact's own rule; the rest is said to stay."""
    rng = np.random.default_rng(0)
    with lakefs.empty(dataset_path) as ds:
        for name in ("half", "quarter"):  # one 4 MB chunk each
            t = ds.create_tensor(name, htype="bytes", chunk_size=8 << 20)
            for i in range(4):
                t.write_file(f"b{i}.bin", rng.bytes(1_000_000))
    with lakefs.load(dataset_path) as ds:
        for i in range(2):
            ds["half"].pop(f"b{i}")
    out = cli("info", dataset_path).out
    assert "2.0 MB of the stored bytes hold no current sample but are in chunks at least half live, which " \
           "`lakefs compact` keeps" in out, out
    assert "reclaims" not in out
    with lakefs.load(dataset_path) as ds:
        for i in range(3):
            ds["quarter"].pop(f"b{i}")
    out = cli("info", dataset_path).out
    info = json.loads(cli("info", dataset_path, "--json").out)
    t = {x["name"]: x for x in info["tensors"]}
    assert (t["half"]["reclaimable_bytes"], t["half"]["kept_dead_bytes"]) == (0, 2_000_000)
    assert 3_000_000 <= t["quarter"]["reclaimable_bytes"] < 3_000_100 and t["quarter"]["kept_dead_bytes"] == 0
    assert info["reclaimable_bytes"] == t["quarter"]["reclaimable_bytes"] and info["kept_dead_bytes"] == 2_000_000
    lines = out.splitlines()
    assert "3.0 MB of the stored bytes hold no current sample: space left by updates and deletes, which " \
           "`lakefs compact` reclaims" in lines, out
    assert "2.0 MB more are in chunks at least half live, which `lakefs compact` keeps" in lines, out
    assert cli("compact", dataset_path).code == 0
    after = json.loads(cli("info", dataset_path, "--json").out)
    assert abs(info["stored_bytes"] - info["reclaimable_bytes"] - after["stored_bytes"]) < 100  # (new headers)
    assert (after["reclaimable_bytes"], after["kept_dead_bytes"]) == (0, 2_000_000)


CRASHED_WRITER = """
import os, signal, sys
import lakefs
ds = lakefs.load(sys.argv[1], commit_at_exit=False)
for name in ("blobs", "new"):
    t = ds.tensors.get(name) or ds.create_tensor(name, htype="bytes", chunk_size=1 << 20)
    for i in range(3):
        t.write_file(f"c{i}.bin", os.urandom(600_000))
    t._engine.seal()
ds._chunk_writer.drain()  # the chunks are stored; the commit never comes
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_info_and_fsck_count_what_no_commit_references(cli, dataset_path: Path) -> None:
    """Found by QA: an ingest that stopped on a full disk left 13 MB of chunks no commit
    references: `lakefs info` said "0 rows, 0 tensors, 0 B stored", and of a tensor it
    had committed blamed updates and deletes; `lakefs fsck` said "clean", no more."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("blobs", htype="bytes").write_file("b.bin", b"kept")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(dataset_path)], env=env, capture_output=True)
    assert done.returncode == -9, done.stderr
    out = cli("info", dataset_path).out
    assert out.startswith(f"dataset {dataset_path}: 1 rows, 1 tensors, 3.6 MB stored"), out
    assert ("3.6 MB of the stored bytes hold no current sample: space left by updates, deletes and writes that "
            "were never committed (a crash or full disk); `lakefs compact` reclaims it") in out.splitlines(), out
    info = json.loads(cli("info", dataset_path, "--json").out)
    assert info["unreferenced_bytes"] == info["reclaimable_bytes"] == info["stored_bytes"] - 4 - 32 > 3_600_000
    r = cli("fsck", dataset_path)
    assert r.code == 0 and r.out.endswith("clean (1 samples in 1 chunks verified)\n"), r.out
    assert "fsck: note: 3.6 MB in 4 objects no commit references: left by updates, deletes and writes that " \
           "were never committed (a crash or full disk)" in r.out, r.out
    assert cli("compact", dataset_path).code == 0
    info = json.loads(cli("info", dataset_path, "--json").out)
    assert info["unreferenced_bytes"] == info["reclaimable_bytes"] == 0
    assert "note" not in cli("fsck", dataset_path).out


def test_ls_shows_what_the_mount_shows(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    cli("ingest", jpeg_dir, dataset_path, "--tensor", "train/images")
    with lakefs.load(dataset_path) as ds:
        ds.write_file("README.md", b"hello")
        ds.write_file("train/images/.swap", b"x")
    assert cli("ls", dataset_path).out.splitlines() == ["train/", "README.md"]
    assert cli("ls", dataset_path / "train").out.splitlines() == ["images/"]
    names = cli("ls", dataset_path / "train" / "images").out.splitlines()
    assert names == sorted(p.name for p in jpeg_dir.iterdir()) + [".swap"]
    long = cli("ls", "-l", dataset_path / "train/images").out.splitlines()
    first = sorted(jpeg_dir.iterdir())[0]
    assert long[0].startswith("-rw-r--r--") and long[0].split()[1] == str(first.stat().st_size)
    assert long[0].endswith(first.name)
    r = cli("ls", dataset_path / "nope")
    assert r.code == 1 and "no tensor, group or file 'nope'" in r.err
    # A sample's file, as `ls FILE` (it was "no tensor or group"), and a plain file:
    assert cli("ls", "-l", dataset_path / "train/images" / first.name).out.splitlines() == long[:1]
    assert cli("ls", dataset_path / "train/images/.swap").out == ".swap\n"
    r = cli("ls", dataset_path / "train/images" / (first.stem + ".png"))
    assert r.code == 1 and f"no tensor, group or file 'train/images/{first.stem}.png'" in r.err


def test_compact_reclaims_space_and_keeps_samples(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    photos = sorted(jpeg_dir.iterdir())
    with lakefs.load(dataset_path) as ds:
        for p in photos[:4]:
            ds["images"].pop(p.stem)
    before = json.loads(cli("info", dataset_path, "--json").out)["stored_bytes"]
    r = cli("compact", dataset_path)
    assert r.code == 0 and "reclaimed" in r.out
    after = json.loads(cli("info", dataset_path, "--json").out)["stored_bytes"]
    assert after < before * 0.7
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert [s.file_bytes() for s in ds["images"].iter_samples()] == [p.read_bytes() for p in photos[4:]]
    assert cli("fsck", dataset_path).code == 0


def test_compact_refused_while_another_writer_holds_it(cli, dataset_path: Path) -> None:
    with lakefs.empty(dataset_path):
        r = cli("compact", dataset_path)  # (in this process: the refusal says so)
    assert r.code == 1 and "already open for writing in this process" in r.err


def test_subprocess_error_edge_and_debug(tmp_path: Path) -> None:
    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakefs", *argv], capture_output=True, text=True, cwd=REPO,
                              timeout=60)

    p = run("info", str(tmp_path / "missing"))
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("lakefs: error: no lakefs dataset") and len(p.stderr.splitlines()) == 1
    p = run("--debug", "info", str(tmp_path / "missing"))
    assert p.returncode == 1 and "Traceback" in p.stderr and "DatasetNotFoundError" in p.stderr
    p = run("tensor", "create")
    assert p.returncode == 2 and p.stderr == ("lakefs tensor create: error: the following arguments are required: "
                                              "dataset, name (see lakefs tensor create --help)\n")
    ds = tmp_path / "ds"
    assert run("create", str(ds)).returncode == 0
    p = run("info", str(ds), "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["tensors"] == []


def test_every_command_takes_config(cli, dataset_path: Path, tmp_path: Path, photos) -> None:
    from PIL import Image

    src = tmp_path / "pngs"
    src.mkdir()
    Image.open(photos[0]).save(src / "a.png")
    strict = tmp_path / "strict.yaml"
    strict.write_text("allow_transcode: false\n")
    cli("create", dataset_path, "--config", strict)
    cli("tensor", "create", dataset_path, "images", "--htype", "image", "--sample-compression", "jpeg")
    r = cli("ingest", src, dataset_path, "--tensor", "images", "--config", strict, "-j", "0")
    assert r.code == 1 and "a.png" in r.err  # the transcode is refused by the config
    assert cli("ingest", src, dataset_path, "--tensor", "images", "-j", "0").code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("allow_transcode: maybe\n")
    for argv in (["info", dataset_path], ["ls", dataset_path], ["fsck", dataset_path],
                 ["tensor", "list", dataset_path], ["export", dataset_path, tmp_path / "out"]):
        r = cli(*argv, "--config", bad)
        assert r.code == 1 and r.err.count("\n") == 1 and "allow_transcode" in r.err, argv


def test_config_chunk_size_is_the_default_of_new_tensors(cli, jpeg_dir: Path, dataset_path: Path,
                                                         tmp_path: Path) -> None:
    """config.example.yaml: "target chunk size of new tensors", made by any command."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("chunk_size: 1MB\n")
    assert cli("create", dataset_path, "--config", cfg).code == 0
    assert cli("tensor", "create", dataset_path, "a", "--config", cfg).code == 0
    assert cli("tensor", "create", dataset_path, "b", "--chunk-size", "2MB", "--config", cfg).code == 0
    assert cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "--config", cfg, "-j", "0").code == 0
    paired = tmp_path / "paired"
    (paired / "texts").mkdir(parents=True)
    (paired / "texts" / "x.txt").write_text("x")
    assert cli("ingest", paired, dataset_path, "--layout", "paired", "--config", cfg).code == 0
    assert cli("tensor", "create", dataset_path, "c").code == 0
    with lakefs.load(dataset_path, read_only=True) as ds:
        sizes = {name: t.meta.chunk_size for name, t in ds.tensors.items()}
    assert sizes == {"a": 1 << 20, "b": 2 << 20, "images": 1 << 20, "texts": 1 << 20, "c": 8 << 20}


@pytest.mark.parametrize(("option", "message"), [
    (["-j", "-1"], "argument -j/--workers: an integer >= 0 expected, got '-1'"),
    (["-j", "x"], "argument -j/--workers: an integer >= 0 expected, got 'x'"),
    (["--commit-seconds", "-5"], "argument --commit-seconds: needs a number of seconds >= 0, got '-5'"),
    # inf was taken (never committed), while the config and -o refuse it (found by QA):
    (["--commit-seconds", "inf"], "argument --commit-seconds: needs a number of seconds >= 0, got 'inf' "
                                  "(inf and nan are not durations)"),
    (["--commit-seconds", "nan"], "argument --commit-seconds: needs a number of seconds >= 0, got 'nan' "
                                  "(inf and nan are not durations)"),
    (["--commit-seconds", "soon"], "argument --commit-seconds: needs a number of seconds >= 0, got 'soon'"),
])
def test_ingest_refuses_bad_numbers(cli, capsys, jpeg_dir: Path, dataset_path: Path, option, message) -> None:
    with pytest.raises(SystemExit) as e:
        cli("ingest", jpeg_dir, dataset_path, *option)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"lakefs ingest: error: {message} (see lakefs ingest --help)\n"
    assert not dataset_path.exists()


def test_a_closed_pipe_ends_the_output_quietly(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    """``lakefs ls -l ds/images | head -1``: the reader is gone, so lakefs stops with no message."""
    cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything was written: every write is EPIPE
    try:
        p = subprocess.run([sys.executable, "-m", "lakefs", "ls", "-l", str(dataset_path / "images")],
                           stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    finally:
        os.close(write_end)
    assert p.stderr == ""
    assert p.returncode == 1


def test_a_writer_lock_that_cannot_be_taken_names_the_dataset(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    """A read-only dataset folder (chmod, another user's) said "lock 'locks/writer':
    Permission denied", naming no dataset. (Root opens anything: a file where the lock's
    folder goes stands in for the refusal.)"""
    assert cli("ingest", jpeg_dir, dataset_path, "-q").code == 0
    shutil.rmtree(dataset_path / "locks")
    (dataset_path / "locks").write_text("")
    r = cli("compact", dataset_path)
    assert r.code == 1
    assert r.err == f"lakefs: error: cannot take the writer lock {dataset_path}/locks/writer: File exists\n"
    assert cli("info", dataset_path).code == 0  # reading needs no lock


def test_absolute_paths_work_from_a_deleted_working_directory(cli, dataset_path: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: every command that takes a dataset looks for a mountpoint given in
    its place, and resolving that path asked for the working directory even when the path
    was absolute: run from a folder deleted meanwhile, `lakefs info /abs/ds` said only
    "No such file or directory"."""
    from lakefs.fs.mount import table_path

    lakefs.empty(dataset_path).close()
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert table_path(str(dataset_path)) == str(dataset_path.resolve())
    r = cli("info", dataset_path)
    assert r.code == 0, r.err


def test_info_counts_plain_files_and_names_a_few(cli, dataset_path: Path) -> None:
    """Found by QA: a dataset of plain files only (a mounted project, 150 MB of them) said
    "0 rows, 0 tensors, 0 B stored", and its line of plain files named every one of them
    (thousands, for a .git)."""
    with lakefs.empty(dataset_path) as ds:
        for i in range(12):
            ds.write_file(f"f{i:02d}.bin", b"x" * 100_000)
    r = cli("info", dataset_path)
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == f"dataset {dataset_path}: 0 rows, 0 tensors, 1.2 MB stored (format v3)", lines[0]
    assert lines[-1] == "12 plain files, 1.2 MB: " + ", ".join(f"f{i:02d}.bin" for i in range(10)) + ", ..."
    info = json.loads(cli("info", dataset_path, "--json").out)
    assert info["file_bytes"] == 1_200_000 and len(info["files"]) == 12


@pytest.mark.parametrize("argv", [
    ["--debug", "info", "{missing}"],
    ["info", "--debug", "{missing}"],
    ["info", "{missing}", "--debug"],
    ["tensor", "list", "{missing}", "--debug"],
])
def test_debug_goes_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    """``lakefs ls --debug x`` was a usage error, and no command's --help named --debug
    (found by QA)."""
    argv = [a.format(missing=tmp_path / "missing") for a in argv]
    p = subprocess.run([sys.executable, "-m", "lakefs", *argv], capture_output=True, text=True, cwd=REPO,
                       timeout=60)
    assert p.returncode == 1 and "Traceback" in p.stderr and "DatasetNotFoundError" in p.stderr, p.stderr


@pytest.mark.parametrize("command", [["info"], ["ls"], ["mount"], ["umount"], ["ingest"], ["tensor", "delete"]])
def test_every_command_help_names_debug(command: list[str], capsys) -> None:
    from lakefs.cli.main import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "--debug" in capsys.readouterr().out


def test_storage_options_of_the_config_are_for_object_stores_only(cli, jpeg_dir: Path, dataset_path: Path,
                                                                 tmp_path: Path, caplog) -> None:
    """A config with storage.options (an s3 endpoint) could not be used with a local
    dataset: "local storage takes no options" (found by QA). They are left out for a local
    dataset, with one INFO line; the API still refuses them for a local path, as given."""
    import logging

    cfg = tmp_path / "s3.yaml"
    cfg.write_text("storage: {options: {endpoint_url: 'http://127.0.0.1:1', anon: true}}\n")
    with caplog.at_level(logging.INFO, logger="lakefs.config"):
        assert cli("create", dataset_path, "--config", cfg).code == 0
    assert [r.getMessage() for r in caplog.records if r.name == "lakefs.config"] == [
        f"storage.options are for object-store datasets: not used for {dataset_path}"]
    for argv in (["ingest", jpeg_dir, dataset_path, "--tensor", "images", "-j", "0"], ["info", dataset_path],
                 ["ls", f"{dataset_path}/images"], ["tensor", "list", dataset_path], ["fsck", dataset_path],
                 ["export", dataset_path, tmp_path / "out"], ["compact", dataset_path]):
        r = cli(*argv, "--config", cfg)
        assert r.code == 0, (argv, r.err)
    with pytest.raises(lakefs.errors.StorageError, match=r"^storage_options are for object-store datasets: "
                                                        r"a local dataset takes none, got \['anon'\]$"):
        lakefs.load(dataset_path, storage_options={"anon": True})


@pytest.mark.parametrize("argv, line", [
    (["ingest", "src"], "lakefs ingest: error: the following arguments are required: dataset "
                        "(see lakefs ingest --help)"),
    (["ingest", "src", "ds", "--bogus"], "lakefs ingest: error: unrecognized arguments: --bogus "
                                         "(see lakefs ingest --help)"),
    (["ingest", "src", "ds", "--layout", "tree"], "lakefs ingest: error: argument --layout: invalid choice: "
                                                  "'tree' (choose from 'auto', 'flat', 'paired', 'imagefolder') "
                                                  "(see lakefs ingest --help)"),
    (["tensor", "delete", "ds", "x", "y"], "lakefs tensor delete: error: unrecognized arguments: y "
                                           "(see lakefs tensor delete --help)"),
    (["tensor"], "lakefs tensor: error: the following arguments are required: ACTION (see lakefs tensor --help)"),
    ([], "lakefs: error: the following arguments are required: COMMAND (see lakefs --help)"),
    (["--bogus", "info", "ds"], "lakefs info: error: unrecognized arguments: --bogus (see lakefs info --help)"),
])
def test_argument_errors_are_one_line(capsys, argv: list[str], line: str) -> None:
    """argparse printed its usage block before the error (a dozen lines for ingest);
    README promises one line (found by QA). The exit status stays 2."""
    from lakefs.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and capsys.readouterr().err == line + "\n"


def test_info_names_what_compact_reclaims_in_a_small_dataset(cli, dataset_path: Path) -> None:
    """Only --json said it: the text said nothing below 1 MB, 143 kB of a 510 kB dataset
    included (found by QA). A few bytes of a big dataset are still not worth a line."""
    rng = np.random.default_rng(0)
    with lakefs.empty(dataset_path) as ds:
        t = ds.create_tensor("blobs", htype="bytes", chunk_size=1 << 20)
        for i in range(8):
            t.write_file(f"b{i}.bin", rng.bytes(20_000))
    with lakefs.load(dataset_path) as ds:
        for i in range(6):
            ds["blobs"].pop(f"b{i}")
    info = json.loads(cli("info", dataset_path, "--json").out)
    assert 120_000 <= info["reclaimable_bytes"] < 121_000
    out = cli("info", dataset_path).out
    assert "120.0 KB of the stored bytes hold no current sample: space left by updates and deletes, which " \
           "`lakefs compact` reclaims" in out.splitlines(), out
    assert cli("compact", dataset_path).code == 0
    assert "hold no current sample" not in cli("info", dataset_path).out


@pytest.mark.parametrize("name, shown", [
    ("new\nline.jpg", "new\\nline.jpg"),
    ("ctl\x01.jpg", "ctl\\x01.jpg"),
    ("lat\udce9.jpg", "lat\\xe9.jpg"),  # a Latin-1 byte, as os.listdir gives it (surrogateescape)
    ("tab\t\x7f.jpg", "tab\\t\\x7f.jpg"),
    ("café 猫.jpg", "café 猫.jpg"),
    ("back\\slash.jpg", "back\\slash.jpg"),
])
def test_printable_names(name: str, shown: str) -> None:
    from lakefs.dataset.names import printable

    assert printable(name) == shown


def test_odd_file_names_are_escaped_in_the_ingest_report(cli, tmp_path: Path, dataset_path: Path) -> None:
    """The report printed a newline in a name raw (splitting its line) and \\x01 invisible,
    while the key on the same line was escaped (found by QA)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in (b"new\nline.txt", b"ctl\x01.txt", b"lat\xe9.txt", b"ok.txt"):
        (src / os.fsdecode(name)).write_text("x")
    r = cli("ingest", src, dataset_path, "-j", "0")
    assert r.code == 1
    lines = r.err.splitlines()
    assert lines[0] == "lakefs: 3 file(s) not ingested:" and len(lines) == 4, r.err
    assert lines[1].startswith("  ctl\\x01.txt: row key 'ctl\\x01'"), lines
    assert lines[2].startswith("  lat\\xe9.txt: row key "), lines
    assert lines[3].startswith("  new\\nline.txt: row key 'new\\nline'"), lines


def test_ls_shows_a_name_that_is_not_utf8_as_ls_l_does(cli, dataset_path: Path) -> None:
    """``ls`` printed the raw byte, ``ls -l`` the same name differently, and with a strict
    stdout (a UTF-8 locale other than C.UTF-8) both failed with a traceback (found by QA)."""
    with lakefs.empty(dataset_path) as ds:
        ds.write_file("lat\udce9.txt", b"x")
    assert cli("ls", dataset_path).out == "lat\\xe9.txt\n"
    assert cli("ls", "-l", dataset_path).out.endswith(" lat\\xe9.txt\n")
    p = subprocess.run([sys.executable, "-m", "lakefs", "ls", str(dataset_path)], capture_output=True, cwd=REPO,
                       env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"}, timeout=60)
    assert (p.returncode, p.stdout) == (0, b"lat\\xe9.txt\n"), p.stderr
