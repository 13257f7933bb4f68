"""``lakefs ingest`` end to end: layouts, pass-through, transcoding, resume, bad files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from image_samples import animation, with_alpha
from mounting import small_tmpfs_at
from PIL import Image

import lakefs
from lakefs.storage import open_storage
from lakefs.tools import ingest as ingest_mod
from lakefs.tools.fsck import fsck

REPO = Path(__file__).resolve().parents[2]


def test_flat_jpegs_pass_through_byte_identical(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    r = cli("ingest", jpeg_dir, dataset_path)
    assert r.code == 0, r.err
    assert "ingested 8 of 8 files (flat layout, 0 transcoded" in r.out
    assert r.err == ""  # no progress bar when stderr is not a terminal
    ds = lakefs.load(dataset_path, read_only=True)
    t = ds["photos"]
    assert (t.htype, t.sample_compression) == ("image", "jpeg")
    for src in sorted(jpeg_dir.iterdir()):
        s = t.find_file(src.name)
        assert s is not None and s.file_bytes() == src.read_bytes()
        assert s.mtime_ns == src.stat().st_mtime_ns
        assert s.numpy().shape[2] == 3


def test_rerun_skips_everything_and_picks_up_changes(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    r = cli("ingest", jpeg_dir, dataset_path)
    assert r.code == 0 and "ingested 0 of 8 files" in r.out and "8 already stored" in r.out
    changed = sorted(jpeg_dir.iterdir())[2]
    os.utime(changed, ns=(10**18, 10**18))
    shutil.copy2(changed, jpeg_dir / "extra.jpg")
    r = cli("ingest", jpeg_dir, dataset_path)
    assert "ingested 2 of 9 files" in r.out and "7 already stored" in r.out
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds["photos"].find_file(changed.name).mtime_ns == 10**18
    assert len(ds) == 9


@pytest.mark.parametrize("workers", ["0", "2"])
def test_png_transcoded_into_jpeg_tensor(cli, png_dir: Path, dataset_path: Path, workers: str) -> None:
    r = cli("ingest", png_dir, dataset_path, "--tensor", "images", "--htype", "image",
            "--sample-compression", "jpeg", "-j", workers)
    assert r.code == 0, r.err
    assert "6 transcoded" in r.out
    ds = lakefs.load(dataset_path, read_only=True)
    names = [s.filename for s in ds["images"].iter_samples()]
    assert names == [p.with_suffix(".jpg").name for p in sorted(png_dir.iterdir())]
    first = ds["images"][0]
    assert first.file_bytes()[:2] == b"\xff\xd8"
    assert first.transcoded and not ds["images"].find_file(names[1]).file_bytes().startswith(b"\x89PNG")
    assert first.numpy().ndim == 3
    ds.close()
    r = cli("ingest", png_dir, dataset_path, "--tensor", "images", "-j", workers)
    assert "ingested 0 of 6 files" in r.out and "6 already stored" in r.out  # resumable too


def test_bad_files_are_reported_at_the_end(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    good = sorted(jpeg_dir.iterdir())
    (jpeg_dir / "notes.jpg").write_text("this is text, not a photo\n")
    (jpeg_dir / "cut.jpg").write_bytes(good[0].read_bytes()[:300])
    (jpeg_dir / "gone.jpg").symlink_to(jpeg_dir / "nowhere.jpg")  # unreadable: dangling
    (jpeg_dir / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 1
    assert "ingested 8 of 12 files" in r.out and "4 failed" in r.out
    lines = r.err.splitlines()
    assert lines[0] == "lakefs: 4 file(s) not ingested:"
    reasons = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert set(reasons) == {"notes.jpg", "cut.jpg", "gone.jpg", "zz.png"}
    assert "text" in reasons["notes.jpg"]
    assert "No such file" in reasons["gone.jpg"]
    assert "truncated" in reasons["cut.jpg"] or "corrupt" in reasons["cut.jpg"]
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds["images"].num_samples == 8
    assert all(ds["images"].find_file(p.name).file_bytes() == p.read_bytes() for p in good)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_transparency_and_animations_are_reported_not_cut(cli, png_dir: Path, dataset_path: Path,
                                                          workers: str) -> None:
    """Into a jpeg tensor an RGBA PNG with transparent pixels was stored as its colours and
    an animated GIF as its first frame, both counted as transcoded (QA)."""
    (png_dir / "b_rgba.png").write_bytes(with_alpha("RGBA"))
    (png_dir / "d_anim.gif").write_bytes(animation("GIF", 4))
    r = cli("ingest", png_dir, dataset_path, "--tensor", "images", "--htype", "image",
            "--sample-compression", "jpeg", "-j", workers)
    assert r.code == 1
    assert "ingested 6 of 8 files" in r.out and "2 failed" in r.out
    lines = r.err.splitlines()
    assert lines[0] == "lakefs: 2 file(s) not ingested:"
    reasons = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert "jpeg would drop the alpha channel, and 600 of 1200 pixels are not fully opaque" in reasons["b_rgba.png"]
    assert "this gif holds 4 images" in reasons["d_anim.gif"]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["images"].num_samples == 6 and ds["images"].find_file("b_rgba.jpg") is None


def test_paired_folders_align_rows_by_stem(cli, tmp_path: Path, photos: list[Path], dataset_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    for i, p in enumerate(photos[:4]):
        shutil.copy2(p, src / "images" / f"img{i}.jpg")
    for i in (3, 1, 0):  # labels for some rows only, created in another order
        (src / "labels" / f"img{i}.json").write_text(json.dumps({"id": i}))
    r = cli("ingest", src, dataset_path)
    assert r.code == 0, r.err
    assert "paired layout" in r.out and "created tensors images, labels" in r.out
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds.keys() == ["img0", "img1", "img2", "img3"]
    assert ds["labels"].htype == "json"
    for i in (0, 1, 3):
        assert ds[f"img{i}"]["labels"].numpy() == {"id": i}
    assert ds["img2"]["labels"].is_empty
    assert ds["img2"]["images"].file_bytes() == photos[2].read_bytes()


def test_imagefolder_makes_class_labels(cli, tmp_path: Path, photos: list[Path], dataset_path: Path) -> None:
    src = tmp_path / "src"
    for cls, idx in (("cat", (0, 1, 2)), ("dog", (3, 4))):
        (src / cls).mkdir(parents=True)
        for i in idx:
            shutil.copy2(photos[i], src / cls / f"p{i}.jpg")
    r = cli("ingest", src, dataset_path)
    assert r.code == 0, r.err
    assert "imagefolder layout" in r.out
    ds = lakefs.load(dataset_path, read_only=True)
    assert ds["labels"].htype == "class_label"
    assert ds["labels"].class_names == ["cat", "dog"]
    assert [int(ds[f"p{i}"]["labels"].numpy()[0]) for i in range(5)] == [0, 0, 0, 1, 1]
    assert ds["p3"]["labels"].file_bytes() == b"dog\n"
    ds.close()
    assert "5 already stored" in cli("ingest", src, dataset_path).out


def test_second_writer_is_refused(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    with lakefs.empty(dataset_path):
        r = cli("ingest", jpeg_dir, dataset_path)  # (in this process: the refusal says so)
    assert r.code == 1
    assert r.err.startswith("lakefs: error: ") and "already open for writing in this process" in r.err
    assert len(r.err.splitlines()) == 1


def test_interrupted_ingest_resumes(cli, jpeg_dir: Path, dataset_path: Path, monkeypatch) -> None:
    real = ingest_mod.Ingester._write
    calls = []

    def flaky(self, item):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(item)
        real(self, item)

    monkeypatch.setattr(ingest_mod.Ingester, "_write", flaky)
    r = cli("ingest", jpeg_dir, dataset_path, "--commit-seconds", "0")
    assert r.code == 130 and "interrupted" in r.err
    monkeypatch.setattr(ingest_mod.Ingester, "_write", real)
    r = cli("ingest", jpeg_dir, dataset_path)
    assert r.code == 0 and "ingested 3 of 8 files" in r.out and "5 already stored" in r.out


def test_progress_bar_only_when_asked_or_on_a_tty(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    r = cli("ingest", jpeg_dir, dataset_path, "--progress", "-q")
    assert r.out == "" and "8/8" in r.err


def test_bad_tensor_options_and_missing_source(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    r = cli("ingest", jpeg_dir, dataset_path, "--htype", "nonsense")
    assert r.code == 1 and "unknown htype 'nonsense'" in r.err
    r = cli("ingest", jpeg_dir / "missing", dataset_path)
    assert r.code == 1 and "does not exist" in r.err
    r = cli("ingest", jpeg_dir, dataset_path, "--sample-compression", "jpeg", "--chunk-compression", "lz4")
    assert r.code == 1 and "not both" in r.err


def test_python_m_lakefs_ingest_with_a_process_pool(png_dir: Path, dataset_path: Path) -> None:
    """The real entry point: spawned workers must not re-run the CLI."""
    proc = subprocess.run(
        [sys.executable, "-m", "lakefs", "ingest", str(png_dir), str(dataset_path), "--tensor", "images",
         "--htype", "image", "--sample-compression", "jpeg", "-j", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ingested 6 of 6 files (flat layout, 6 transcoded" in proc.stdout
    assert proc.stderr == ""


def test_a_dead_worker_is_retried_once_then_reported(png_dir: Path, dataset_path: Path) -> None:
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from lakefs.tools.scan import scan

    plan = scan(str(png_dir), tensor="images", settings={"htype": "image", "sample_compression": "jpeg"})
    with lakefs.dataset(dataset_path) as ds:
        ing = ingest_mod.Ingester(ds, plan, workers=0, progress=False)
        png = sorted(png_dir.iterdir())[0]
        broken: Future = Future()
        broken.set_exception(BrokenProcessPool("killed"))
        item = ingest_mod._Item(plan.files[0], png.stat(), broken, True, (str(png), "jpeg", False, True))
        data, reason = ing._result(item)
        assert reason is None and data[:2] == b"\xff\xd8"  # retried (here in-process) and done
        item = ingest_mod._Item(plan.files[0], png.stat(), broken, True, ())
        assert ing._result(item) == (None, "the transcoding process died")
        ing._readers.shutdown()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["flat", "imagefolder", "paired"])
def test_special_files_are_reported_never_opened(jpeg_dir: Path, tmp_path: Path, layout: str) -> None:
    """A FIFO (or socket, device) in the source is one reported problem; opening it would
    block the ingest forever."""
    src = jpeg_dir if layout == "flat" else tmp_path / "src"
    where = src
    if layout != "flat":
        where = src / "cat"
        where.mkdir(parents=True)
        for p in sorted(jpeg_dir.iterdir())[:3]:
            shutil.copy2(p, where / p.name)
    os.mkfifo(where / "fifo.jpg")
    proc = subprocess.run([sys.executable, "-m", "lakefs", "ingest", str(src), str(tmp_path / "ds"),
                           "--layout", layout], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 1
    rel = "fifo.jpg" if layout == "flat" else "cat/fifo.jpg"
    assert f"  {rel}: not a regular file (a FIFO)" in proc.stderr.splitlines()
    assert "1 failed" in proc.stdout


@pytest.mark.timeout(60)
def test_a_file_turned_into_a_fifo_after_the_scan_is_not_opened(jpeg_dir: Path, dataset_path: Path) -> None:
    from lakefs.tools.scan import scan

    plan = scan(str(jpeg_dir), tensor="images")
    victim = sorted(jpeg_dir.iterdir())[0]
    victim.unlink()
    os.mkfifo(victim)
    with lakefs.dataset(dataset_path) as ds:
        report = ingest_mod.ingest(ds, plan, workers=0, progress=False)
    assert report.written == 7
    assert report.failed == [(victim.name, "not a regular file (a FIFO)")]
    # and the readers refuse it too, should it appear between that stat and the open
    assert ingest_mod.read_file(str(victim)) == (None, "not a regular file (a FIFO)")
    assert ingest_mod.transcode_file(str(victim), "jpeg", False, True) == (None, "not a regular file (a FIFO)")


@pytest.mark.parametrize("layout", ["flat", "imagefolder"])
def test_files_sharing_a_stem_store_one_and_report_the_other(cli, jpeg_dir: Path, tmp_path: Path, layout: str,
                                                              photo_factory) -> None:
    """photo.jpg and photo.png would name the same row: the first by name is stored, the
    other reported (as the paired layout does), so reruns are stable."""
    src, where = (jpeg_dir, jpeg_dir) if layout == "flat" else (tmp_path / "src", tmp_path / "src" / "cat")
    if layout != "flat":
        shutil.copytree(jpeg_dir, where)
    first = sorted(where.iterdir())[0]
    png = photo_factory(1, png=True)[0].with_suffix(".png")
    shutil.copy2(png, where / (first.stem + ".png"))
    ds_path = tmp_path / "ds"
    rel = (first.stem + ".png") if layout == "flat" else f"cat/{first.stem}.png"
    for _ in range(2):
        r = cli("ingest", src, ds_path, "--layout", layout, "--tensor", "images", "-j", "0")
        assert r.code == 1 and "1 failed" in r.out
        assert r.err.splitlines()[1] == f"  {rel}: same stem as {rel[:-4]}.jpg: one row holds one file per tensor"
        with lakefs.load(ds_path, read_only=True) as ds:
            assert len(ds) == 8
            assert ds["images"][first.stem].file_bytes() == first.read_bytes()
    assert "ingested 0 of" in r.out and "8 already stored" in r.out


def _stem_clash(root: Path, layout: str, photo_factory) -> tuple[Path, Path]:
    """A folder (in ``layout``) holding a.png, x.jpg and x.png, the JPEG and PNG twins of one
    photo: a PNG tensor by majority. Returns the source and the folder of those files."""
    photos = photo_factory(2, png=True)
    src = root / "src"
    where = {"flat": src, "paired": src / "images", "imagefolder": src / "cat"}[layout]
    where.mkdir(parents=True)
    shutil.copy2(photos[0].with_suffix(".png"), where / "a.png")
    shutil.copy2(photos[1], where / "x.jpg")
    shutil.copy2(photos[1].with_suffix(".png"), where / "x.png")
    if layout == "paired":
        (src / "labels").mkdir()
        for stem in ("a", "x"):
            (src / "labels" / f"{stem}.json").write_text("{}")
    if layout == "imagefolder":
        (src / "dog").mkdir()
        shutil.copy2(photos[0].with_suffix(".png"), src / "dog" / "b.png")
    return src, where


@pytest.mark.parametrize("layout", ["flat", "paired", "imagefolder"])
def test_of_a_stem_the_file_stored_as_it_is_wins(cli, tmp_path: Path, layout: str, photo_factory) -> None:
    """Of x.jpg and x.png, the file whose format is the tensor's (png, by majority) is
    stored byte for byte; x.jpg was stored instead, transcoded and named x.png, and the
    report said x.png was left out."""
    src, where = _stem_clash(tmp_path, layout, photo_factory)
    rel = {"flat": "", "paired": "images/", "imagefolder": "cat/"}[layout]
    for _ in range(2):
        r = cli("ingest", src, tmp_path / "ds", "--layout", layout, "-j", "0",
                *(("--tensor", "images") if layout != "paired" else ()))
        assert r.code == 1 and "1 failed" in r.out and "0 transcoded" in r.out
        assert r.err.splitlines()[1] == f"  {rel}x.jpg: same stem as {rel}x.png: one row holds one file per tensor"
        with lakefs.load(tmp_path / "ds", read_only=True) as ds:
            assert ds["images"].sample_compression == "png"
            sample = ds["images"]["x"]
            assert sample.filename == "x.png" and not sample.transcoded
            assert sample.file_bytes() == (where / "x.png").read_bytes()
    assert "already stored" in r.out and "ingested 0 of" in r.out


def test_of_a_stem_the_existing_tensors_format_wins(cli, tmp_path: Path, photo_factory) -> None:
    """Into an existing png tensor the folder's majority (jpeg) does not decide: x.png is
    the file stored as it is. Given --sample-compression png for a new tensor, too."""
    photos = photo_factory(3, png=True)
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate("abx"):
        shutil.copy2(photos[i], src / f"{name}.jpg")
    shutil.copy2(photos[2].with_suffix(".png"), src / "x.png")
    existing = tmp_path / "ds"
    assert cli("create", existing).code == 0
    assert cli("tensor", "create", existing, "images", "--htype", "image", "--sample-compression", "png").code == 0
    for ds_path, options in ((existing, ()), (tmp_path / "ds2", ("--sample-compression", "png"))):
        r = cli("ingest", src, ds_path, "--tensor", "images", "-j", "0", *options)
        assert r.code == 1 and "2 transcoded" in r.out  # a.jpg and b.jpg
        assert r.err.splitlines()[1] == "  x.jpg: same stem as x.png: one row holds one file per tensor"
        with lakefs.load(ds_path, read_only=True) as ds:
            sample = ds["images"]["x"]
            assert sample.filename == "x.png" and not sample.transcoded
            assert sample.file_bytes() == (src / "x.png").read_bytes()


def test_imagefolder_keys_are_stable_when_a_name_starts_clashing(cli, tmp_path: Path, photo_factory,
                                                                   dataset_path: Path) -> None:
    """A name that appears in a second class later gets the class prefix; every row already
    stored keeps its key, so a rerun stores the new file only and duplicates nothing."""
    photos = photo_factory(6, seed=3)
    src = tmp_path / "pets"
    for cls, idx in (("cat", (0, 1, 2)), ("dog", (3, 4))):
        (src / cls).mkdir(parents=True)
        for i in idx:
            shutil.copy2(photos[i], src / cls / f"photo_{i:05d}.jpg")
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder", "-j", "0")
    assert r.code == 0 and "ingested 5 of 5 files" in r.out
    shutil.copy2(photos[5], src / "dog" / "photo_00000.jpg")  # also in cat/
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder", "-j", "0")
    assert r.code == 0 and "ingested 1 of 6 files" in r.out and "5 already stored" in r.out
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds.keys() == [f"photo_{i:05d}" for i in range(5)] + ["dog_photo_00000"]
        assert ds["photo_00000"]["labels"].file_bytes() == b"cat\n"
        assert ds["dog_photo_00000"]["labels"].file_bytes() == b"dog\n"
        assert ds["dog_photo_00000"]["images"].file_bytes() == photos[5].read_bytes()
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder", "-j", "0")
    assert "ingested 0 of 6 files" in r.out and "6 already stored" in r.out
    # the clash goes away again: the prefixed row keeps its key too
    (src / "cat" / "photo_00000.jpg").unlink()
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder", "-j", "0")
    assert "ingested 0 of 5 files" in r.out and "5 already stored" in r.out
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert len(ds) == 6


def test_imagefolder_prefixes_only_the_clashing_names(tmp_path: Path) -> None:
    from lakefs.tools.scan import scan

    for rel in ("cat/1.jpg", "cat/2.jpg", "dog/1.jpg", "dog/3.jpg", "dog/cat_1.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    plan = scan(str(tmp_path), "imagefolder")
    assert [(f.rel, f.key) for f in plan.files] == [
        ("cat/1.jpg", "cat_1"), ("cat/2.jpg", "2"), ("dog/1.jpg", "dog_1"), ("dog/3.jpg", "3"),
        ("dog/cat_1.jpg", "dog_cat_1")]  # its own stem is taken by cat/1.jpg
    assert plan.problems == []


def test_summary_accounts_for_every_file_once(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    """ingested + already stored + failed = the total; folders not read and hidden files
    are named apart from the files."""
    for p in sorted(jpeg_dir.iterdir())[4:]:
        p.unlink()
    (jpeg_dir / "README").write_text("no extension\n")
    (jpeg_dir / "gone.jpg").symlink_to(jpeg_dir / "nowhere.jpg")
    (jpeg_dir / "notes.jpg").write_text("text, not a photo\n")
    (jpeg_dir / ".DS_Store").write_bytes(b"x")
    (jpeg_dir / "sub").mkdir()
    (jpeg_dir / "sub" / "x.jpg").write_bytes(b"x")
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "--layout", "flat", "-j", "0")
    assert r.code == 1
    assert r.out.startswith("ingested 4 of 7 files (flat layout, 0 transcoded, 0 already stored, 3 failed) in ")
    assert r.out.rstrip().endswith("created tensors images; 1 folder not read; 1 hidden file skipped")
    lines = r.err.splitlines()
    assert lines[0] == "lakefs: 3 file(s) not ingested:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:4]) == ["README", "gone.jpg", "notes.jpg"]
    assert lines[4:] == ["lakefs: 1 folder(s) not read:",
                         "  sub/: a folder inside a flat ingest is not read (use --layout paired)"]
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "--layout", "flat", "-j", "0")
    assert r.out.startswith("ingested 0 of 7 files (flat layout, 0 transcoded, 4 already stored, 3 failed)")


def test_a_storage_failure_stops_the_ingest_and_a_rerun_resumes(cli, jpeg_dir: Path, dataset_path: Path,
                                                               monkeypatch) -> None:
    """Found by review: with the store gone, ingest tried every file (a deadline each),
    counted each as a bad file, and the final commit's error hid the report."""
    from lakefs.dataset import Tensor
    from lakefs.errors import StorageError

    real = Tensor.write_file
    calls = []

    def store_goes_away(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise StorageError("write 'tensors/x/chunks/1' on s3://b/ds: no answer in time")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Tensor, "write_file", store_goes_away)
    r = cli("ingest", jpeg_dir, dataset_path, "--commit-seconds", "0")
    assert r.code == 1 and len(calls) == 4  # stopped at the first storage failure
    assert "ingested 3 of 8 files" in r.out and "0 failed" in r.out
    assert "ingest stopped, the storage failed: write 'tensors/x/chunks/1'" in r.err
    assert "5 files were not stored; run the same command again to resume" in r.err
    monkeypatch.setattr(Tensor, "write_file", real)
    r = cli("ingest", jpeg_dir, dataset_path)
    assert r.code == 0 and "ingested 5 of 8 files" in r.out and "3 already stored" in r.out


def _commits_fail(monkeypatch, *, rows: int, times: int | None = None) -> None:
    """Commits of a dataset holding ``rows`` rows or more raise StorageError (``times``
    times, default for ever), as a store that went away does."""
    from lakefs.dataset import Dataset
    from lakefs.errors import StorageError

    real = Dataset._commit
    failed: list[int] = []

    def commit(self):
        if self._dirty and len(self) >= rows and (times is None or len(failed) < times):
            failed.append(1)
            raise StorageError("write 'HEAD' on s3://b/ds: no answer in time")
        return real(self)

    monkeypatch.setattr(Dataset, "_commit", commit)


def _forget_the_open_dataset() -> None:
    """A dataset whose close failed stays open, with its writer lock (docs of
    Dataset.close): the CLI's process then ends, which releases it; here, in the same
    process, it is released when the dropped dataset is collected."""
    import gc

    gc.collect()


def test_a_failed_final_commit_is_reported_as_not_kept(cli, jpeg_dir: Path, dataset_path: Path,
                                                       monkeypatch) -> None:
    """Found by review: with the final commit failing, ingest printed "ingested 8 of 8
    files" although nothing was kept."""
    _commits_fail(monkeypatch, rows=1)
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 1
    assert r.out.startswith("ingested 0 of 8 files")
    assert "lakefs: the final commit failed: write 'HEAD' on s3://b/ds: no answer in time" in r.err
    assert "8 files written but not committed are not kept" in r.err
    assert "8 files were not stored; run the same command again to resume" in r.err
    monkeypatch.undo()
    _forget_the_open_dataset()
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 0 and r.out.startswith("ingested 8 of 8 files") and "0 already stored" in r.out, r.err


def test_a_storage_failure_then_a_failed_commit_keeps_the_last_commit(cli, jpeg_dir: Path, dataset_path: Path,
                                                                      monkeypatch) -> None:
    # The commit of the 4th file fails: the ingest stops; its final commit and the retry
    # at close fail too. The 3 files committed before are kept.
    import itertools
    import types

    ticks = itertools.count()  # a clock that moves 1 s per look: --commit-seconds 0 commits after every file
    monkeypatch.setattr(ingest_mod, "time", types.SimpleNamespace(monotonic=lambda: float(next(ticks)),
                                                                  perf_counter=ingest_mod.time.perf_counter))
    _commits_fail(monkeypatch, rows=4)
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "--commit-seconds", "0", "-j", "0")
    assert r.code == 1
    assert r.out.startswith("ingested 3 of 8 files"), r.out
    assert "ingest stopped, the storage failed: write 'HEAD'" in r.err
    assert "the final commit failed: write 'HEAD'" in r.err
    assert "1 file written but not committed is not kept" in r.err
    assert "5 files were not stored; run the same command again to resume" in r.err
    monkeypatch.undo()
    _forget_the_open_dataset()
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert len(ds) == 3
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 0 and r.out.startswith("ingested 5 of 8 files") and "3 already stored" in r.out, r.err


def test_a_final_commit_that_succeeds_on_retry_keeps_everything(cli, jpeg_dir: Path, dataset_path: Path,
                                                                monkeypatch) -> None:
    # The final commit fails once; the close commits: all is kept, and said so.
    _commits_fail(monkeypatch, rows=1, times=1)
    r = cli("ingest", jpeg_dir, dataset_path, "--tensor", "images")
    assert r.code == 0 and r.out.startswith("ingested 8 of 8 files") and r.err == "", r.err
    monkeypatch.undo()
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert len(ds) == 8


def test_imagefolder_of_numbered_classes_past_9(cli, tmp_path: Path, photos: list[Path], dataset_path: Path) -> None:
    """Class folders 0..11 (MNIST-style, CIFAR-100's 0..99) stopped the whole ingest: in
    name order "10" came third, and a class name of digits must be its own index. A
    folder that cannot be a class (a gap: "15" as the 13th; trailing whitespace) is
    reported, and the other classes go in."""
    src = tmp_path / "src"
    for cls in [*map(str, range(12)), "15", "cat "]:
        (src / cls).mkdir(parents=True)
        shutil.copy2(photos[len(cls) % len(photos)], src / cls / f"img{cls.strip()}.jpg")
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder")
    assert r.code == 1 and "ingested 12 of 12 files" in r.out, r.out + r.err
    assert r.err.splitlines()[0] == "lakefs: 2 folder(s) not read:"
    assert r.err.splitlines()[1].startswith("  15/: cannot be a class: class name '15' is all digits")
    assert r.err.splitlines()[2].startswith("  cat /: cannot be a class: class name 'cat ' has leading")
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["labels"].class_names == [str(i) for i in range(12)]
        assert {ds[f"img{i}"]["labels"].file_bytes() for i in range(12)} == {f"{i}\n".encode() for i in range(12)}
        assert [int(ds[f"img{i}"]["labels"].numpy()[0]) for i in range(12)] == list(range(12))
    (src / "12").mkdir()  # a rerun: the class that now fits goes in after the others
    shutil.copy2(photos[0], src / "12" / "img12.jpg")
    r = cli("ingest", src, dataset_path, "--layout", "imagefolder")
    assert "ingested 1 of 13 files" in r.out and "12 already stored" in r.out, r.out
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["labels"].class_names == [str(i) for i in range(13)]


def test_paired_folder_inside_a_tensor_folder_is_reported(cli, tmp_path: Path, photos: list[Path],
                                                          dataset_path: Path) -> None:
    """``images/extra/`` beside the files of ``images/`` made both tensors: the ingest
    stopped with "'images' is a tensor or file, not a group", after creating ``images``."""
    src = tmp_path / "src"
    (src / "images" / "extra" / "more").mkdir(parents=True)
    (src / "labels").mkdir()
    shutil.copy2(photos[0], src / "images" / "a.jpg")
    shutil.copy2(photos[1], src / "images" / "extra" / "b.jpg")
    shutil.copy2(photos[2], src / "images" / "extra" / "more" / "c.jpg")
    (src / "labels" / "a.json").write_text("{}")
    r = cli("ingest", src, dataset_path)
    assert r.code == 1 and "ingested 2 of 2 files (paired layout" in r.out, r.out + r.err
    assert r.err.splitlines() == ["lakefs: 2 folder(s) not read:",
                                  "  images/extra/: a folder inside the tensor folder images/ is not read",
                                  "  images/extra/more/: a folder inside the tensor folder images/ is not read"]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert sorted(ds.tensors) == ["images", "labels"] and ds.keys() == ["a"]


def test_an_ingest_that_cannot_start_creates_nothing(cli, jpeg_dir: Path, tmp_path: Path, photos: list[Path],
                                                     dataset_path: Path) -> None:
    """Bad options made a new dataset, left empty; a tensor name the dataset holds as
    something else stopped the ingest at that tensor, keeping the ones created before."""
    r = cli("ingest", jpeg_dir, dataset_path, "--htype", "nonsense")
    assert r.code == 1 and "unknown htype 'nonsense'" in r.err
    assert not dataset_path.exists()
    src = tmp_path / "src"
    for folder in ("a", "train/images"):
        (src / folder).mkdir(parents=True)
        shutil.copy2(photos[0], src / folder / "p.jpg")
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("train", htype="bytes")
    r = cli("ingest", src, dataset_path, "--layout", "paired")
    assert r.code == 1
    assert r.err == ("lakefs: error: cannot create tensor 'train/images': 'train' is a tensor in the dataset, "
                     "not a group\n")
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert sorted(ds.tensors) == ["train"]


def test_a_file_the_tensor_does_not_take_is_reported_with_the_reason(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    (jpeg_dir / "notes.txt").write_text("a text file among the photos\n")
    r = cli("ingest", jpeg_dir, dataset_path)
    assert r.code == 1 and "ingested 8 of 9 files" in r.out
    assert r.err.splitlines()[1:] == [
        "  notes.txt: 'notes.txt' is not a sample name for tensor 'photos': an image tensor does not take .txt files"]


@pytest.mark.parametrize("layout", ["flat", "paired", "imagefolder"])
def test_a_dataset_inside_its_source_folder_is_not_ingested_into_itself(cli, tmp_path: Path, photos: list[Path],
                                                                        layout: str) -> None:
    """``lakefs ingest ./data ./data/ds`` run again took the dataset's own files as source:
    its folders became tensors (``lakefs.json`` stored in a tensor ``ds``), and an
    ImageFolder turned into a paired ingest."""
    src = tmp_path / "data"
    files = {"flat": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
             "paired": ["images/a.jpg", "images/b.jpg", "masks/a.jpg", "masks/b.jpg"],
             "imagefolder": ["cat/a.jpg", "cat/b.jpg", "dog/c.jpg", "dog/d.jpg"]}[layout]
    for i, name in enumerate(files):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photos[i], src / name)
    ds = src / "ds"
    for run in ("first", "again"):
        r = cli("ingest", src, ds, "--layout", layout)
        stored = 4 if run == "again" else 0
        assert r.code == 0 and f"({layout} layout, 0 transcoded, {stored} already stored, 0 failed)" in r.out, \
            r.out + r.err
    r = cli("ingest", ds, ds)
    assert r.code == 1 and r.err == f"lakefs: error: source folder {ds} is the dataset itself\n"


def test_a_lakefs_dataset_is_not_a_source_folder(cli, jpeg_dir: Path, dataset_path: Path, tmp_path: Path) -> None:
    """``lakefs ingest ds other`` stored the dataset's internal files (its manifests a json
    tensor); a dataset below the source (paired, imagefolder) is a folder not read."""
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    other = tmp_path / "other"
    for layout in ("auto", "flat", "paired"):
        r = cli("ingest", dataset_path, other, "--layout", layout)
        assert (r.code, r.err) == (1, f"lakefs: error: source folder {dataset_path} is a lakefs dataset, whose "
                                      "files are its chunks and index, not samples: ingest from a mount of it, or "
                                      "`lakefs export` it to a folder first\n")
    assert not other.exists()
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    shutil.copy2(sorted(jpeg_dir.iterdir())[0], src / "images" / "a.jpg")
    shutil.copytree(dataset_path, src / "old")
    r = cli("ingest", src, other, "--layout", "paired")
    assert r.code == 1 and "ingested 1 of 1 files" in r.out and "1 folder not read" in r.out
    assert r.err.splitlines()[1:] == [
        "  old/: a lakefs dataset is not read (mount it, or export it, to ingest its samples)"]
    (src / "cat").mkdir()
    (src / "images").rename(src / "dog")
    r = cli("ingest", src, tmp_path / "pets", "--layout", "imagefolder")
    assert r.code == 1 and "ingested 1 of 1 files" in r.out
    assert r.err.splitlines()[1:] == [
        "  old/: a lakefs dataset is not read (mount it, or export it, to ingest its samples)"]
    with lakefs.load(other, read_only=True) as ds:
        assert sorted(ds.tensors) == ["images"]
    with lakefs.load(tmp_path / "pets", read_only=True) as ds:
        assert ds["labels"].class_names == ["cat", "dog"]


def test_ctrl_c_while_a_file_is_opened_stops_the_ingest(cli, jpeg_dir: Path, dataset_path: Path,
                                                         monkeypatch) -> None:
    """Ctrl-C landing in ``os.fdopen`` once the file object owned the descriptor: the file
    object closed it, then open_regular closed it again. That second close failed ("Bad
    file descriptor"), which replaced the KeyboardInterrupt: the file was reported as
    failed and the ingest ran on to the end (or, the number being reused meanwhile,
    closed a pipe of the transcoding pool, and the ingest hung)."""
    import builtins
    import threading

    calls = []

    def interrupted(real):
        """``real`` (os.fdopen, or open with an opener) hit by Ctrl-C as it returns."""
        def call(*args, **kwargs):
            f = real(*args, **kwargs)
            if threading.current_thread() is threading.main_thread():
                calls.append(f)
                if len(calls) == 3:
                    calls.pop()
                    del f  # (the file object goes with the frame, closing its descriptor)
                    raise KeyboardInterrupt
            return f
        return call

    monkeypatch.setattr(os, "fdopen", interrupted(os.fdopen))
    monkeypatch.setattr(ingest_mod, "open", interrupted(builtins.open), raising=False)
    r = cli("ingest", jpeg_dir, dataset_path, "-j", "0", "--commit-seconds", "0")
    assert r.code == 130 and r.err == "lakefs: interrupted\n", r.out + r.err


def test_ctrl_c_while_a_worker_starts_is_raised_once_it_has_started() -> None:
    """Ctrl-C raised in the middle of starting a transcoding process left it reading a pipe
    closed under it ("EOFError: Ran out of input" printed by the worker). Another thread
    takes the signal when this one blocks it: Python raises it here all the same, so it
    is held, not only blocked, until the pool call is done."""
    import signal
    import threading
    import time

    done = threading.Event()
    other = threading.Thread(target=done.wait)  # a thread the signal can be delivered to
    other.start()
    reached = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with ingest_mod.starting_workers():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # (the other thread takes it; Python acts on it after the sleep)
                reached.append(True)
        assert reached == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        done.set()
        other.join()


# --- an image tensor's dtype from the first file stored -----------------------------------


def _depth_maps(folder: Path, names: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """16-bit grey images (depth maps) saved as ``names`` (.png or .tif), by stem."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        values = rng.integers(0, 65536, (24, 30), dtype=np.uint16)
        Image.fromarray(values).save(folder / name)
        out[name.rsplit(".", 1)[0]] = values
    return out


def _gray8(path: Path, seed: int = 1) -> np.ndarray:
    values = np.random.default_rng(seed).integers(0, 256, (24, 30), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)
    return values


def test_a_folder_of_16_bit_pngs_ingests_as_uint16(cli, tmp_path: Path, dataset_path: Path) -> None:
    """Every 16-bit PNG depth map failed ("decodes to uint16, which the tensor's dtype
    uint8 cannot hold exactly") unless --dtype uint16 was given: the image tensor the
    ingest made had Deep Lake's uint8. Now the first file's dtype, as in the mount; an
    8-bit PNG after them fits uint16 exactly."""
    src = tmp_path / "depth"
    maps = _depth_maps(src, ["d0.png", "d1.png", "d2.png"])
    maps["e8"] = _gray8(src / "e8.png")
    r = cli("ingest", src, dataset_path)
    assert r.code == 0, r.err
    assert "ingested 4 of 4 files (flat layout, 0 transcoded" in r.out
    with lakefs.load(dataset_path, read_only=True) as ds:
        t = ds["depth"]
        assert (t.htype, t.dtype, t.sample_compression, t.num_samples) == ("image", "uint16", "png", 4)
        for key, values in maps.items():
            got = ds[key]["depth"].numpy()
            assert got.dtype == np.uint16 and got.shape == (24, 30, 1)
            assert np.array_equal(got[..., 0], values)
    dest = tmp_path / "out"
    assert cli("export", dataset_path, dest).code == 0
    for f in src.iterdir():
        assert (dest / "depth" / f.name).read_bytes() == f.read_bytes()
    assert "4 already stored" in cli("ingest", src, dataset_path).out


def test_a_folder_of_8_bit_jpegs_still_makes_a_uint8_tensor(cli, jpeg_dir: Path, dataset_path: Path) -> None:
    assert cli("ingest", jpeg_dir, dataset_path).code == 0
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["photos"].dtype == "uint8" and ds["photos"][0].numpy().dtype == np.uint8


@pytest.mark.parametrize("layout", ["imagefolder", "paired"])
def test_16_bit_pngs_in_class_or_paired_folders_make_uint16_tensors(cli, tmp_path: Path, dataset_path: Path,
                                                                   layout: str) -> None:
    src = tmp_path / "src"
    if layout == "imagefolder":
        maps = {**_depth_maps(src / "near", ["a.png", "b.png"]), **_depth_maps(src / "far", ["c.png"], seed=1)}
        tensor = "images"
    else:
        maps = _depth_maps(src / "depth", ["a.png", "b.png", "c.png"])
        for key in maps:
            (src / "meta").mkdir(exist_ok=True)
            (src / "meta" / f"{key}.json").write_text("{}")
        tensor = "depth"
    r = cli("ingest", src, dataset_path, "--layout", layout)
    assert r.code == 0, r.err
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds[tensor].dtype == "uint16"
        for key, values in maps.items():
            assert np.array_equal(ds[key][tensor].numpy()[..., 0], values)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_first_file_in_ingest_order_decides_the_dtype(cli, tmp_path: Path, dataset_path: Path,
                                                          workers: str) -> None:
    """With transcoding workers, a later file may be ready first: the dtype is still the
    first file's in the ingest's order. A 16-bit TIFF (transcoded to PNG) first: uint16,
    and the 8-bit PNG after it fits; an 8-bit PNG first: uint8, and the 16-bit files after
    it are reported, one by one, with the reason."""
    first16 = tmp_path / "first16"
    maps = _depth_maps(first16, ["a.tif", "c.png"])
    maps["b"] = _gray8(first16 / "b.png")
    r = cli("ingest", first16, dataset_path, "--tensor", "x", "-j", workers)
    assert r.code == 0, r.err
    assert "ingested 3 of 3 files (flat layout, 1 transcoded" in r.out
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert (ds["x"].dtype, ds["x"].sample_compression) == ("uint16", "png")
        for key, values in maps.items():
            got = ds[key]["x"].numpy()
            assert got.dtype == np.uint16 and np.array_equal(got[..., 0], values)

    first8 = tmp_path / "first8"
    gray = _gray8(first8 / "a.png")
    _depth_maps(first8, ["b.tif", "c.png"])
    r = cli("ingest", first8, dataset_path, "--tensor", "y", "-j", workers)
    assert r.code == 1
    assert "ingested 1 of 3 files" in r.out and "2 failed" in r.out
    why = "this png sample decodes to uint16, which the tensor's dtype uint8 cannot hold exactly"
    assert r.err.splitlines() == ["lakefs: 2 file(s) not ingested:", f"  b.tif: {why}; create the tensor with "
                                  "dtype='uint16'", f"  c.png: {why}; create the tensor with dtype='uint16'"]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["y"].dtype == "uint8" and ds["y"].num_samples == 1
        assert np.array_equal(ds["a"]["y"].numpy()[..., 0], gray)


def test_an_explicit_dtype_or_an_existing_tensor_keeps_its_dtype(cli, tmp_path: Path, dataset_path: Path) -> None:
    src = tmp_path / "depth"
    maps = _depth_maps(src, ["a.png", "b.png"])
    r = cli("ingest", src, dataset_path, "--dtype", "uint8")
    assert r.code == 1 and "ingested 0 of 2 files" in r.out
    assert "  a.png: this png sample decodes to uint16, which the tensor's dtype uint8 cannot hold exactly" in r.err
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["depth"].dtype == "uint8" and ds["depth"].num_samples == 0
    r = cli("ingest", src, dataset_path)  # into the uint8 tensor made above
    assert r.code == 1 and "ingested 0 of 2 files" in r.out and "2 failed" in r.out
    r = cli("ingest", src, dataset_path, "--tensor", "wide", "--dtype", "int32")
    assert r.code == 0, r.err
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["depth"].dtype == "uint8" and ds["wide"].dtype == "int32"
        assert np.array_equal(ds["a"]["wide"].numpy()[..., 0], maps["a"])


# --- a full disk (found by QA: an ingest onto a small tmpfs kept nothing, and the rerun
# it recommended failed sooner, the space taken by the chunks of the failed run) ----------


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    with small_tmpfs_at(tmp_path / "tmpfs", "8m") as d:
        yield d


def _photo_folder(tmp_path: Path, photos: list[Path], n: int) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(n):
        shutil.copy2(photos[i % len(photos)], src / f"img{i:03d}.jpg")
    return src


def _unreferenced(path: Path) -> set[str]:
    """Objects `lakefs compact` would delete: what no commit references."""
    from lakefs.dataset import maintenance

    with lakefs.load(path) as ds:
        before = set(ds.storage.list())
        maintenance.delete_unreferenced(ds)
        return before - set(ds.storage.list())


def _check_kept(ds_path: Path, src: Path) -> int:
    with lakefs.load(ds_path, read_only=True) as ds:
        samples = list(ds.images.iter_samples()) if "images" in ds.tensors else []
        for s in samples:
            assert s.file_bytes() == (src / f"{s.key}.jpg").read_bytes(), s.key
        assert len(ds) == len(samples)
    assert fsck(open_storage(str(ds_path), read_only=True)).ok
    return len(samples)


@pytest.mark.timeout(180)
def test_an_ingest_onto_a_disk_too_small_keeps_what_fits_and_leaves_nothing_behind(
        cli, small_tmpfs: Path, tmp_path: Path, photos: list[Path]) -> None:
    src = _photo_folder(tmp_path, photos, 200)  # ~14 MB of photos, 8 MB of disk
    ds_path = small_tmpfs / "ds"
    r = cli("ingest", src, ds_path, "--tensor", "images", "-j", "0")
    assert r.code == 1
    kept = int(r.out.split()[1])
    assert kept >= 50, r.out  # the disk is filled with photos (it kept none)
    assert "created tensors images" in r.out
    assert "storage full" in r.err and "run the same command again to resume" in r.err
    assert _check_kept(ds_path, src) == kept
    assert not _unreferenced(ds_path)
    # The rerun it suggests finds what it left: nothing more fits, nothing is lost.
    r = cli("ingest", src, ds_path, "--tensor", "images", "-j", "0")
    assert r.code == 1 and r.out.startswith("ingested 0 of 200") and f"{kept} already stored" in r.out, r.out
    assert _check_kept(ds_path, src) == kept and not _unreferenced(ds_path)
    # With room, the rerun finishes.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    r = cli("ingest", src, ds_path, "--tensor", "images", "-j", "0")
    assert r.code == 0 and r.out.startswith(f"ingested {200 - kept} of 200"), (r.out, r.err)
    assert _check_kept(ds_path, src) == 200


@pytest.mark.timeout(180)
def test_an_ingest_that_stores_nothing_says_no_tensor_was_created(
        cli, small_tmpfs: Path, tmp_path: Path, photos: list[Path]) -> None:
    src = _photo_folder(tmp_path, photos, 20)
    ds_path = small_tmpfs / "ds"
    with lakefs.empty(ds_path):
        pass
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    (small_tmpfs / "filler").write_bytes(b"\0" * (free - (48 << 10)))  # no photo fits
    r = cli("ingest", src, ds_path, "--tensor", "images", "-j", "0")
    assert r.code == 1
    assert r.out.startswith("ingested 0 of 20 files") and "created tensors" not in r.out, r.out
    assert "20 files were not stored" in r.err
    assert _check_kept(ds_path, src) == 0 and not _unreferenced(ds_path)
    with lakefs.load(ds_path, read_only=True) as ds:
        assert not ds.tensors


def test_the_report_counts_rate_and_transcodes_of_the_files_kept() -> None:
    """Found by QA: after an outage the summary said "ingested 0 of 300 files ... 11
    files/s", and "383 of 1200 files (637 transcoded ...)": both counted files written
    whose commit failed. Both count the files kept now."""
    r = ingest_mod.IngestReport(layout="flat", total=5, written=5, transcoded=4, seconds=2.0, committed=2)
    r.uncommitted = [(None, 2, None, True), (None, 3, None, True), (None, 4, None, False)]
    assert (r.kept, r.transcoded_kept, r.rate) == (5, 4, 2.5)  # (the final commit kept them all)
    r.commit_error = "no space left"
    assert (r.kept, r.transcoded_kept, r.rate) == (2, 2, 1.0)
    r.committed, r.uncommitted = 0, [(None, i, None, i < 4) for i in range(5)]
    assert (r.kept, r.transcoded_kept, r.rate) == (0, 0, 0.0)
