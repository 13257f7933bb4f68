"""``lakefs export``: byte-identical pass-through files with their names, mtimes and modes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lakefs


def test_export_round_trips_an_ingest(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    os.chmod(sorted(jpeg_dir.iterdir())[1], 0o600)
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    dest = tmp_path / "out"
    r = cli("export", dataset_path, dest)
    assert r.code == 0, r.err
    assert "exported 8 files" in r.out
    for src in jpeg_dir.iterdir():
        out = dest / "photos" / src.name
        assert out.read_bytes() == src.read_bytes()
        assert out.stat().st_mtime_ns == src.stat().st_mtime_ns
        assert out.stat().st_mode & 0o777 == src.stat().st_mode & 0o777
    assert not [p for p in (dest / "photos").iterdir() if p.name.startswith(".")]  # no temp files left


def test_export_shows_arrays_labels_groups_and_plain_files(cli, dataset_path: Path, tmp_path: Path) -> None:
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("train/labels", htype="class_label", class_names=["cat", "dog"])
        ds.create_tensor("meta", htype="json")
        ds.create_tensor("arr")
        ds.append({"train/labels": "dog", "meta": {"a": 1}, "arr": [1, 2, 3]}, key="r0")
        ds.write_file("README.md", b"# cats\n", mtime_ns=123_000_000_000)
    dest = tmp_path / "out"
    assert cli("export", dataset_path, dest).code == 0
    assert (dest / "train" / "labels" / "r0.txt").read_bytes() == b"dog\n"
    assert json.loads((dest / "meta" / "r0.json").read_text()) == {"a": 1}
    import numpy as np

    assert np.load(dest / "arr" / "r0.npy").tolist() == [1, 2, 3]
    assert (dest / "README.md").read_bytes() == b"# cats\n"
    assert (dest / "README.md").stat().st_mtime_ns == 123_000_000_000


def test_non_empty_destination_policy(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    dest = tmp_path / "out"
    (dest / "photos").mkdir(parents=True)
    keep = dest / "mine.txt"
    keep.write_text("not yours")
    stale = dest / "photos" / sorted(jpeg_dir.iterdir())[0].name
    stale.write_text("old")
    r = cli("export", dataset_path, dest)
    assert r.code == 1 and "not empty" in r.err and "--overwrite" in r.err
    assert stale.read_text() == "old"
    r = cli("export", dataset_path, dest, "--overwrite")
    assert r.code == 0
    assert stale.read_bytes() == sorted(jpeg_dir.iterdir())[0].read_bytes()
    assert keep.read_text() == "not yours"


def test_export_into_the_datasets_own_folder_is_refused(cli, jpeg_dir: Path, tmp_path: Path) -> None:
    """``export ds ds/sub`` wrote the samples among the dataset's own files; so did an
    export to the folder above the dataset of a tensor named as the dataset's folder."""
    ds_path = tmp_path / "images"  # the name of its tensor too
    assert cli("ingest", jpeg_dir, ds_path, "--tensor", "images").code == 0
    before = sorted(ds_path.rglob("*"))
    root = os.path.realpath(ds_path)
    for dest, is_what in ((ds_path / "sub", "is inside"), (ds_path, "is"),
                          (ds_path / "tensors" / ".." / "x", "is inside")):
        r = cli("export", ds_path, dest, "--overwrite")
        assert (r.code, r.err) == (1, f"lakefs: error: export destination {dest} {is_what} the dataset's own folder "
                                      f"{root}; export to a folder outside it\n")
    r = cli("export", ds_path, tmp_path, "--overwrite")
    assert (r.code, r.err) == (1, f"lakefs: error: exporting to {tmp_path} would write images/ of the dataset into "
                                  f"the dataset's own folder {root}; export to another folder\n")
    assert sorted(ds_path.rglob("*")) == before
    assert cli("fsck", ds_path).code == 0
    assert cli("export", ds_path, tmp_path / "out").code == 0  # elsewhere, as before


def test_export_one_tensor_and_errors(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path, "--tensor", "a").code == 0
    assert cli("ingest", jpeg_dir, dataset_path, "--tensor", "b").code == 0
    r = cli("export", dataset_path, tmp_path / "only", "--tensor", "b")
    assert r.code == 0 and sorted(os.listdir(tmp_path / "only")) == ["b"]
    r = cli("export", dataset_path, tmp_path / "x", "--tensor", "nope")
    assert r.code == 1 and "no tensor 'nope'" in r.err
    r = cli("export", tmp_path / "missing", tmp_path / "y")
    assert r.code == 1 and "no lakefs dataset" in r.err
    target = tmp_path / "file"
    target.write_text("")
    r = cli("export", dataset_path, target)
    assert r.code == 1 and "not a folder" in r.err


def test_export_while_a_writer_holds_the_dataset(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    with lakefs.load(dataset_path):  # a mount, say: readers need no lock
        r = cli("export", dataset_path, tmp_path / "out")
    assert r.code == 0 and len(os.listdir(tmp_path / "out" / "photos")) == 8


def test_export_refuses_names_that_leave_the_destination(tmp_path):
    import json

    from lakefs.tools.export import export

    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("notes", htype="text")
    ds.append({"notes": "hi"}, key="a")
    ds.write_file("README.md", b"# x\n")
    ds.close()
    # Craft the manifest as an attacker would: a plain file whose path climbs out.
    root = tmp_path / "ds"
    head = json.loads((root / "HEAD").read_text())
    mpath = root / head["manifest"]
    m = json.loads(mpath.read_text())
    m["files"]["../../escaped.txt"] = m["files"].pop("README.md")
    m.pop("crc32", None)
    mpath.write_text(json.dumps(m))
    dest = tmp_path / "out" / "deep"
    with lakefs.load(root, read_only=True) as ro:
        report = export(ro, str(dest))
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()
    assert any("escaped" in where for where, _ in report.failed)
    assert (dest / "notes" / "a.txt").read_text() == "hi"


def test_export_writes_names_of_255_bytes(cli, dataset_path: Path, tmp_path: Path) -> None:
    """Found by review: the temp file a file is written under (".<name>.lakefs-tmp") was
    too long for names over 243 bytes, so valid files of a dataset were not exported."""
    long_key = "k" * 251  # + ".txt": 255 bytes, the most a file name may have
    long_file = "é" * 126 + ".md"  # 255 bytes of UTF-8
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("notes", htype="text")
        ds.append({"notes": "long"}, key=long_key)
        ds.append({"notes": "short"}, key="s")
        ds.write_file(long_file, b"plain\n")
    dest = tmp_path / "out"
    r = cli("export", dataset_path, dest)
    assert r.code == 0, r.err
    assert (dest / "notes" / f"{long_key}.txt").read_text() == "long"
    assert (dest / "notes" / "s.txt").read_text() == "short"
    assert (dest / long_file).read_bytes() == b"plain\n"
    assert sorted(p.name for p in dest.iterdir()) == sorted(["notes", long_file])  # no temp files left
    assert sorted(p.name for p in (dest / "notes").iterdir()) == sorted([f"{long_key}.txt", "s.txt"])


def test_an_empty_destination_is_refused_not_the_current_folder(cli, jpeg_dir: Path, dataset_path: Path,
                                                                  tmp_path: Path, monkeypatch) -> None:
    """``lakefs export ds "$OUT"`` with OUT unset wrote into the current folder, replacing
    files of the same names there: "" skipped the check that a destination is empty."""
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    here = tmp_path / "here"
    (here / "photos").mkdir(parents=True)
    mine = here / "photos" / sorted(jpeg_dir.iterdir())[0].name
    mine.write_text("mine")
    monkeypatch.chdir(here)
    r = cli("export", dataset_path, "")
    assert r.code == 1 and r.err.strip() == (
        "lakefs: error: the export destination is an empty path; name a folder (. for the current one)")
    assert mine.read_text() == "mine" and os.listdir(here / "photos") == [mine.name]


def test_a_file_that_fails_leaves_no_temp_file_and_names_its_destination(cli, jpeg_dir: Path,
                                                                           dataset_path: Path, tmp_path: Path) -> None:
    """A file whose write failed (a folder in the way, a full disk) left its hidden temp
    copy behind, and its reason named that temp file after Python's "[Errno N]"."""
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    dest = tmp_path / "out"
    first = sorted(jpeg_dir.iterdir())[0].name
    (dest / "photos" / first).mkdir(parents=True)
    r = cli("export", dataset_path, dest, "--overwrite")
    assert r.code == 1 and "exported 7 files" in r.out
    assert r.err.splitlines()[1:] == [f"  photos/{first}: {dest / 'photos' / first}: Is a directory"]
    assert sorted(os.listdir(dest / "photos")) == sorted(p.name for p in jpeg_dir.iterdir())  # no temp file


def test_a_tensor_named_twice_is_exported_once(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    r = cli("export", dataset_path, tmp_path / "out", "--tensor", "photos", "--tensor", "photos/")
    assert r.code == 0 and "exported 8 files" in r.out, r.out


def test_an_os_error_is_one_line_naming_the_path(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    """Not Python's "[Errno 17] File exists: '...'"."""
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "photos").write_text("a file where the tensor's folder goes")
    r = cli("export", dataset_path, dest, "--overwrite")
    assert r.code == 1 and r.err == f"lakefs: error: {dest / 'photos'}: File exists\n"


def test_ctrl_c_during_a_file_leaves_no_temp_file(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    real_utime = os.utime

    def interrupted(path, *args, **kwargs):
        if str(path).endswith(".lakefs-tmp") and len(os.listdir(os.path.dirname(path))) > 3:
            raise KeyboardInterrupt
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(os, "utime", interrupted)
    r = cli("export", dataset_path, tmp_path / "out")
    assert r.code == 130 and r.err == "lakefs: interrupted\n"
    assert sorted(os.listdir(tmp_path / "out" / "photos")) == sorted(p.name for p in jpeg_dir.iterdir())[:3]


def test_export_gives_folders_their_stored_modes_and_times(cli, dataset_path: Path, tmp_path: Path) -> None:
    """Folders got the time of the export, so `rsync -a` of an export back into a mount
    changed every folder's time (found by QA)."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("train/images", htype="image", sample_compression="png")
        ds.create_tensor("notes", htype="text")
        ds.append({"notes": "hello"}, key="r0")
        ds.write_file("README.md", b"# cats\n")
        for i, (d, mode) in enumerate([("", 0o755), ("train", 0o750), ("train/images", 0o700), ("notes", 0o711)]):
            ds.set_dir_meta(d, 0o040000 | mode, (1_600_000_000 + i) * 10**9)  # (type bits: dropped)
        want = {d: ds.dir_meta(d) for d in ("", "train", "train/images", "notes")}
    dest = tmp_path / "out"
    r = cli("export", dataset_path, dest)
    assert r.code == 0, r.err
    for d, (mode, mtime_ns) in want.items():
        st = (dest / d).stat()
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (mode & 0o7777, mtime_ns), d
    assert (dest / "notes" / "r0.txt").read_text() == "hello"
    # One tensor: its folder only (the destination's own folders are the user's).
    one = tmp_path / "one"
    assert cli("export", dataset_path, one, "--tensor", "notes").code == 0
    assert (one / "notes").stat().st_mtime_ns == want["notes"][1]
    assert one.stat().st_mtime_ns != want[""][1]


def test_a_missing_chunk_is_reported_as_damage_with_the_fsck_to_run(cli, dataset_path: Path, tmp_path: Path) -> None:
    """Found by QA: export said the dataset changed since it was loaded and to call
    refresh() (an API word) for a chunk deleted on disk, with nobody writing."""
    from lakefs.format import keys

    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("b", htype="bytes", chunk_size=4096)
        ds.b.extend([bytes(3000)] * 3)
        key = keys.chunk(ds.b.meta.tid, int(ds.b._engine.index.entry(1)["chunk"]))
    (dataset_path / key).unlink()
    r = cli("export", dataset_path, tmp_path / "out")
    assert r.code == 1
    assert f"chunk {key} is missing: the dataset is damaged; run `lakefs fsck {os.path.realpath(dataset_path)}`" \
        in r.err, r.err
    assert "refresh" not in r.err and "changed since" not in r.err
