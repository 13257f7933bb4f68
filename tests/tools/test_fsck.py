"""``lakefs fsck``: damage a real dataset on disk, check the report, repair, re-check."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import lakefs
from lakefs.chunks.chunk import HEADER
from lakefs.dataset import Dataset
from lakefs.errors import CorruptionError, StorageError
from lakefs.format import keys, segments
from lakefs.format.index import ENTRY
from lakefs.storage import LocalStorage, MemoryStorage
from lakefs.storage.faults import FaultyStorage
from lakefs.tools.fsck import fsck as fsck_storage


@pytest.fixture
def photo_ds(cli, jpeg_dir: Path, dataset_path: Path) -> Path:
    """Eight photos in small chunks (about two per chunk) plus a json tensor."""
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_size=100_000)
        ds.create_tensor("meta", htype="json")
    assert cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "-q").code == 0
    with lakefs.load(dataset_path) as ds:
        for key in ds.keys():
            ds["meta"][key] = {"key": key}
    return dataset_path


def where(ds_path: Path, tensor: str, key: str) -> tuple[Path, int, int]:
    """(chunk file, byte offset of the sample in it, sample length)."""
    with lakefs.load(ds_path, read_only=True) as ds:
        t = ds[tensor]
        e = t._engine.index.entry(ds.row_of(key))
        return ds_path / keys.chunk(t.meta.tid, int(e["chunk"])), HEADER.size + int(e["offset"]), int(e["length"])


def snapshot(ds_path: Path) -> dict[str, bytes]:
    with lakefs.load(ds_path, read_only=True) as ds:
        return {f"{n}/{s.filename}": s.file_bytes() for n, t in ds.tensors.items() for s in t.iter_samples()}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_repaired(cli, ds_path: Path, before: dict[str, bytes], lost: set[str]) -> None:
    r = cli("fsck", "--repair", ds_path)
    assert r.code == 0, r.out
    for name in lost:
        assert f"fsck: dropped {name}" in r.out
    r = cli("fsck", ds_path)
    assert r.code == 0 and "clean" in r.out, r.out
    after = snapshot(ds_path)
    assert set(after) == set(before) - lost
    assert all(after[k] == before[k] for k in after)


def test_clean_dataset(cli, photo_ds: Path) -> None:
    r = cli("fsck", photo_ds)
    assert r.code == 0
    assert re.search(r"clean \(16 samples in \d+ chunks verified\)$", r.out.strip())


def test_flipped_byte_in_a_sample(cli, photo_ds: Path, jpeg_dir: Path) -> None:
    before = snapshot(photo_ds)
    victim = sorted(jpeg_dir.iterdir())[3].name
    chunk, off, n = where(photo_ds, "images", victim.rsplit(".", 1)[0])
    flip(chunk, off + n // 2)
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert f"fsck: images/{victim} (row 3): sample checksum mismatch" in r.out
    assert "chunk checksum mismatch" in r.out
    assert "--repair" in r.out.splitlines()[-1]
    assert_repaired(cli, photo_ds, before, {f"images/{victim}"})
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert ds[3]["images"].is_empty and ds[3]["meta"].numpy() == {"key": ds[3].key}


def test_damage_outside_any_sample_loses_nothing(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    chunk, _, _ = where(photo_ds, "images", "photo_00000")
    chunk.write_bytes(chunk.read_bytes() + b"\0")  # a stray byte: the chunk check fails, no sample's
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert f"images: {keys.chunk(chunk.parent.parent.name, int(chunk.name, 16))}: chunk truncated" in r.out
    assert "(row " not in r.out
    assert_repaired(cli, photo_ds, before, set())


def test_deleted_chunk(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    chunk, _, _ = where(photo_ds, "images", "photo_00004")
    with lakefs.load(photo_ds, read_only=True) as ds:
        t = ds["images"]
        lost = {f"images/{s.filename}" for s in t.iter_samples()
                if int(t._engine.index.entry(s.row)["chunk"]) == int(chunk.name, 16)}
    assert 1 <= len(lost) < 8
    chunk.unlink()
    r = cli("fsck", photo_ds)
    assert r.code == 1
    for name in lost:
        assert f"fsck: {name} (row " in r.out and "is missing" in r.out
    assert_repaired(cli, photo_ds, before, lost)


def test_truncated_index_segment(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    with lakefs.load(photo_ds, read_only=True) as ds:
        meta = ds["meta"].meta
        seg = photo_ds / keys.index_segment(meta.tid, int(meta.segments[-1]["id"]))
        count = int(meta.segments[-1]["count"])
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - (len(data) - 40) // 2])
    with pytest.raises(CorruptionError):
        lakefs.load(photo_ds, read_only=True)
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert "meta: " in r.out and "truncated" in r.out and f"of {count} index entries lost" in r.out
    r = cli("fsck", "--repair", photo_ds)
    assert r.code == 0, r.out
    assert cli("fsck", photo_ds).code == 0
    after = snapshot(photo_ds)
    assert {k: v for k, v in after.items() if k.startswith("images/")} == \
        {k: v for k, v in before.items() if k.startswith("images/")}
    kept = {k for k in after if k.startswith("meta/")}
    assert 0 < len(kept) < 8 and all(after[k] == before[k] for k in kept)
    with lakefs.load(photo_ds) as ds:  # writable again, and appends still work
        ds["meta"][ds.keys()[7]] = {"again": True}


def test_lz4_chunk_damage_drops_that_chunk(cli, dataset_path: Path) -> None:
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("x", chunk_compression="lz4", dtype="int64")
        ds.create_tensor("y", dtype="int64")
        for i in range(10):
            ds.append({"x": [i] * 100, "y": [i]})
        tid = ds["x"].meta.tid
    before = snapshot(dataset_path)
    chunk = next((dataset_path / "tensors" / tid / "chunks").iterdir())
    flip(chunk, HEADER.size + 3)
    r = cli("fsck", dataset_path)
    assert r.code == 1 and "x/00000000.npy (row 0)" in r.out
    assert_repaired(cli, dataset_path, before, {f"x/{i:08d}.npy" for i in range(10)})


def test_lz4_chunk_with_a_damaged_header_keeps_its_samples(cli, dataset_path: Path) -> None:
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("x", chunk_compression="lz4", dtype="int64")
        for i in range(10):
            ds.append({"x": [i] * 100})
        tid = ds["x"].meta.tid
    before = snapshot(dataset_path)
    chunk = next((dataset_path / "tensors" / tid / "chunks").iterdir())
    flip(chunk, 0)  # the magic; the lz4 frame after the header is intact
    r = cli("fsck", dataset_path)
    assert r.code == 1 and "bad magic" in r.out and "(row " not in r.out
    assert_repaired(cli, dataset_path, before, set())


def test_repair_needs_the_writer_lock(cli, photo_ds: Path) -> None:
    with lakefs.load(photo_ds):
        r = cli("fsck", "--repair", photo_ds)
        assert r.code == 1 and "locked" in r.err
        assert cli("fsck", photo_ds).code == 0  # checking needs no lock


def test_missing_dataset(cli, tmp_path: Path) -> None:
    r = cli("fsck", tmp_path / "nothing")
    assert r.code == 1 and r.err.startswith("lakefs: error: no lakefs dataset")


def test_broken_head_falls_back_to_the_last_manifest(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    (photo_ds / keys.HEAD).write_bytes(b"{garbage")
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "HEAD" in r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    assert cli("fsck", photo_ds).code == 0
    assert snapshot(photo_ds) == before


def test_damaged_chunk_header_keeps_every_verified_sample(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    chunk, _, _ = where(photo_ds, "images", "photo_00005")
    flip(chunk, 0)  # the magic: the chunk is unreadable as a whole, its samples are not
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "bad magic" in r.out and "(row " not in r.out
    assert_repaired(cli, photo_ds, before, set())
    assert not chunk.exists()  # the damaged object is gone once nothing points at it


def test_truncated_chunk_keeps_the_samples_before_the_cut(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    chunk, off, n = where(photo_ds, "meta", "photo_00001")
    with lakefs.load(photo_ds, read_only=True) as ds:
        t = ds["meta"]
        same = [s for s in t.iter_samples() if int(t._engine.index.entry(s.row)["chunk"]) == int(chunk.name, 16)]
    assert len(same) >= 2
    cut = HEADER.size + int(same[-1]._entry["offset"]) + 10  # inside the chunk's last sample
    chunk.write_bytes(chunk.read_bytes()[:cut])
    r = cli("fsck", photo_ds)
    assert r.code == 1 and f"meta/{same[-1].filename} (row {same[-1].row}): sample is cut short" in r.out
    assert all(f"meta/{s.filename} (row" not in r.out for s in same[:-1])
    assert_repaired(cli, photo_ds, before, {f"meta/{same[-1].filename}"})


def test_lost_marker_is_named_and_restored(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    head = (photo_ds / keys.HEAD).read_bytes()
    (photo_ds / keys.MARKER).unlink()
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert r.out.startswith("fsck: lakefs.json (the dataset marker) is missing, but a dataset is there "
                            "(HEAD names commit ")
    r = cli("fsck", "--repair", photo_ds)
    assert r.code == 0 and "repaired (0 dropped" in r.out, r.out
    assert (photo_ds / keys.HEAD).read_bytes() == head  # nothing else to repair: no commit
    assert cli("fsck", photo_ds).code == 0
    assert snapshot(photo_ds) == before


def test_damaged_marker_gets_advice_and_is_rewritten(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    (photo_ds / keys.MARKER).write_bytes(b'{"format": "lakefs", "vers')
    with pytest.raises(CorruptionError):
        lakefs.load(photo_ds, read_only=True)
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "fsck: lakefs.json: not a valid dataset marker (damaged); repair writes a new one" in r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    assert cli("fsck", photo_ds).code == 0
    assert snapshot(photo_ds) == before


@pytest.mark.parametrize("what", ["missing", "a folder of files", "an interrupted creation"])
def test_repair_where_there_is_no_dataset_changes_nothing(cli, tmp_path: Path, what: str) -> None:
    place = tmp_path / "place"
    if what == "a folder of files":
        place.mkdir()
        (place / "notes.txt").write_text("mine")
    elif what == "an interrupted creation":
        lakefs.empty(place).close()
        (place / keys.MARKER).unlink()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = cli("fsck", "--repair", place)
    assert r.code == 1 and r.err == f"lakefs: error: no lakefs dataset at {place}\n"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no locks/ made


class _CommitsWhileRead(MemoryStorage):
    """A store on which a writer commits just as fsck is about to read the first object
    matching ``prefix``, until that object is gone (a merge or the manifest of two
    commits back deleted it): the race of a check beside a live writer, every time."""

    def __init__(self, prefix: str, times: int = 1) -> None:
        super().__init__()
        self.prefix, self.times = prefix, times
        self.writer: Dataset | None = None
        self.n = 0

    def get(self, key: str) -> bytes:
        writer, self.writer = self.writer, None  # (not again from inside the commit)
        if writer is not None and key.startswith(self.prefix):
            while self.exists(key):
                self.n += 1
                writer.append({"blobs": b"later %d" % self.n})
                writer.flush()
            self.times -= 1
        self.writer = writer if self.times > 0 else None
        return super().get(key)


@pytest.mark.parametrize("prefix", ["manifests/", "rows/", "tensors/"])
def test_a_check_beside_a_committing_writer_reports_no_false_damage(prefix: str) -> None:
    storage = _CommitsWhileRead(prefix)
    with Dataset(storage, create=True) as writer:
        writer.create_tensor("blobs", htype="bytes")
        for i in range(6):
            writer.append({"blobs": b"early %d" % i})
            writer.flush()
        storage.writer = writer
        report = fsck_storage(storage)
        assert storage.n > 0, "the writer did not commit during the check"
        assert report.problems == [] and report.samples == 6 + storage.n


def test_a_check_beside_a_writer_that_never_stops_says_so() -> None:
    storage = _CommitsWhileRead("tensors/", times=100)
    with Dataset(storage, create=True) as writer:
        writer.create_tensor("blobs", htype="bytes")
        writer.append({"blobs": b"early"})
        writer.flush()
        storage.writer = writer
        report = fsck_storage(storage)
    assert report.problems[-1].startswith("the dataset changed 5 times while it was checked")


# --- damaged index segments: what is kept must be right, what is lost is named ---------------


def segment_path(ds_path: Path, tensor: str, i: int = -1) -> Path:
    with lakefs.load(ds_path, read_only=True) as ds:
        meta = ds[tensor].meta
        return ds_path / keys.index_segment(meta.tid, int(meta.segments[i]["id"]))


def edit_entries(seg: Path, edit, *, reseal: bool = False) -> None:
    """Apply ``edit`` to the segment's entries; the header (and its crc32) stays as it was
    unless ``reseal``, which writes a sound segment (a writer's mistake, not damage)."""
    blob = seg.read_bytes()
    entries = np.frombuffer(blob[segments.HEADER.size:], dtype=ENTRY).copy()
    edit(entries)
    body = entries.tobytes()
    seg.write_bytes(segments.pack(segments.KIND_INDEX, len(entries), body) if reseal
                    else blob[:segments.HEADER.size] + body)


def test_a_flipped_bit_in_an_entry_is_set_right(cli, photo_ds: Path) -> None:
    """The row of an entry took a flipped bit: the sample's own crc32 still verified, so
    repair used to hand its bytes to another row and call the result clean."""
    before = snapshot(photo_ds)
    seg = segment_path(photo_ds, "images")
    data = bytearray(seg.read_bytes())
    data[segments.HEADER.size + 5 * ENTRY.itemsize] ^= 0b1000  # entry 5's row: 5 → 13
    seg.write_bytes(bytes(data))
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "one flipped bit (entry 5, field row) explains the damage and was set right" in r.out
    assert_repaired(cli, photo_ds, before, set())


@pytest.mark.parametrize("field, value", [("row", 1), ("row", 7), ("file_size", 12345), ("length", 10**9),
                                          ("tiles", 2)])
def test_an_entry_that_contradicts_itself_is_dropped_and_named(cli, photo_ds: Path, field: str,
                                                                value: int) -> None:
    before = snapshot(photo_ds)
    seg = segment_path(photo_ds, "images")

    def damage(e: np.ndarray) -> None:
        e[4][field] = value  # rows 1 or 7 break the ascending order; the others their sizes
        e[6]["mtime_ns"] ^= 0b101  # and damage nothing checks: no single flipped bit explains it

    edit_entries(seg, damage)
    victim = sorted(k for k in before if k.startswith("images/"))[4]
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert f"1 of 8 index entries lost, 7 kept; 1 sample(s) lost with them: {victim} (row 4)" in r.out, r.out
    assert_repaired(cli, photo_ds, before, {victim})  # every other sample where it was


def test_a_damaged_file_size_in_a_sound_entry_is_corrected(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    edit_entries(segment_path(photo_ds, "meta"), lambda e: e[2].__setitem__("file_size", 3), reseal=True)
    name = sorted(k for k in before if k.startswith("meta/"))[2]
    r = cli("fsck", photo_ds)
    assert r.code == 1 and f"fsck: {name} (row 2): its index entry is wrong: it says the file is 3 bytes, " \
                           f"the sample makes {len(before[name])}; repair corrects the entry" in r.out, r.out
    assert_repaired(cli, photo_ds, before, set())
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert ds["meta"][2].size == len(before[name])


def test_a_truncated_segment_names_every_sample_it_lost(cli, photo_ds: Path) -> None:
    before = snapshot(photo_ds)
    seg = segment_path(photo_ds, "meta")
    seg.write_bytes(seg.read_bytes()[: segments.HEADER.size + 3 * ENTRY.itemsize + 40])
    lost = {k for k in before if k.startswith("meta/")} - {f"meta/{k}.json" for k in sorted(
        k[len("meta/"):-len(".json")] for k in before if k.startswith("meta/"))[:3]}
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "5 of 8 index entries lost, 3 kept; 5 sample(s) lost with them: " in r.out
    r = cli("fsck", "--repair", photo_ds)
    assert "repaired (5 dropped" in r.out
    assert {line[len("fsck: dropped "):] for line in r.out.splitlines() if line.startswith("fsck: dropped ")} == lost
    assert set(snapshot(photo_ds)) == set(before) - lost


def test_a_lost_entry_of_a_tensor_of_several_extensions_is_not_given_a_guessed_one(cli, jpeg_dir: Path,
                                                                                    dataset_path: Path) -> None:
    """A lost entry took its sample's extension with it: photo_00007.JPEG was named
    photo_00007.jpg (the canonical one). With one extension in the tensor the name is
    certain (every entry indexes that table); with several, it ends in .* and says why."""
    photos = sorted(jpeg_dir.iterdir())
    for p in photos[4:]:
        p.rename(p.with_suffix(".JPEG"))
    assert cli("ingest", jpeg_dir, dataset_path, "--tensor", "images", "-q").code == 0
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds["images"].meta.exts == [".jpg", ".JPEG"] and len(ds["images"].meta.segments) == 1
    segment_path(dataset_path, "images").unlink()
    r = cli("fsck", dataset_path)
    assert r.code == 1
    note = "the extension was in the lost index entry: one of .jpg, .JPEG"
    names = ", ".join(f"images/photo_{i:05d}.* (row {i})" for i in range(5))
    assert f"8 of 8 index entries lost; 8 sample(s) lost with them: {names} and 3 more (.*: {note})" in r.out, r.out
    assert ".jpg (row" not in r.out and ".JPEG (row" not in r.out
    r = cli("fsck", "--repair", dataset_path)
    assert r.code == 0, r.out
    dropped = [line for line in r.out.splitlines() if line.startswith("fsck: dropped ")]
    assert dropped == [f"fsck: dropped images/photo_{i:05d}.* ({note})" for i in range(8)]


def test_a_lost_segment_of_updates_says_what_may_be_stale(cli, photo_ds: Path) -> None:
    with lakefs.load(photo_ds) as ds:
        ds["meta"][2] = {"updated": 2}
        ds["meta"][5] = {"updated": 5}
    seg = segment_path(photo_ds, "meta")  # the two updates (too small to merge with the 8)
    assert seg.stat().st_size == segments.HEADER.size + 2 * ENTRY.itemsize
    seg.unlink()
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert "2 of 2 index entries lost; the index does not say which rows 2 lost entries were for: " \
           "8 row(s) show an older segment's entry, which may be an older version (meta/" in r.out, r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert ds["meta"][2].numpy() == {"key": ds[2].key}  # what the older segment held


def test_a_deleted_sample_stays_deleted_when_its_segment_is_salvaged(cli, photo_ds: Path) -> None:
    with lakefs.load(photo_ds) as ds:
        ds["meta"].pop(3)
    before = snapshot(photo_ds)
    seg = segment_path(photo_ds, "meta")
    edit_entries(seg, lambda e: e[0].__setitem__("mtime_ns", e[0]["mtime_ns"] ^ 0b11))  # two bits: not located
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "0 of 1 index entries lost, 1 kept" in r.out, r.out
    assert_repaired(cli, photo_ds, before, set())
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert ds[3]["meta"].is_empty


def test_going_back_a_commit_names_what_that_commit_wrote(cli, dataset_path: Path) -> None:
    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("blobs", htype="bytes")
        for commit in range(6):
            for i in range(4):
                ds.append({"blobs": b"%d.%d" % (commit, i)})
            if commit == 5:
                ds["blobs"][2] = b"changed"
            ds.flush()
        names = ds.keys()
    head = (dataset_path / keys.HEAD).read_bytes()
    newest = dataset_path / json.loads(head)["manifest"]
    flip(newest, 30)
    r = cli("fsck", dataset_path)
    assert r.code == 1
    assert f"going back to commit 6 gives up what commit(s) 7 made: 4 row(s) added ({', '.join(names[20:])}); " \
           f"5 sample(s) written (blobs/{names[2]}.bin, " in r.out, r.out
    r = cli("fsck", "--repair", dataset_path)
    assert r.code == 0 and "repaired (5 dropped" in r.out, r.out
    dropped = [line[len("fsck: dropped "):] for line in r.out.splitlines() if line.startswith("fsck: dropped ")]
    assert dropped == [f"blobs/{names[2]}.bin (the version a lost commit wrote)",
                       *(f"blobs/{k}.bin" for k in names[20:])]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert len(ds) == 20 and ds["blobs"][2].tobytes() == b"0.2"


def test_going_back_past_several_commits_names_them_all(cli, photo_ds: Path) -> None:
    """Found by QA: HEAD naming a missing commit 9 with 4 the newest readable one said
    "gives up what commit(s) 9 made": commits are numbered one by one, so 5..9 were made."""
    seq = json.loads((photo_ds / keys.HEAD).read_bytes())["seq"]
    (photo_ds / keys.HEAD).write_text(json.dumps({"format_version": 3, "seq": seq + 5,
                                                  "manifest": keys.manifest(seq + 5)}))
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert f"fsck: going back to commit {seq} gives up what commit(s) {seq + 1}..{seq + 5} made: " in r.out, r.out


@pytest.mark.parametrize("damaged", ["HEAD", "a newer manifest"])
def test_repair_keeps_the_manifests_a_commit_keeps(cli, photo_ds: Path, damaged: str) -> None:
    """Found by QA: after fsck --repair the manifests beyond the two a commit keeps were
    left behind (and a damaged newer one, which a later fsck took for a lost commit)."""
    seq = json.loads((photo_ds / keys.HEAD).read_bytes())["seq"]
    if damaged == "HEAD":
        (photo_ds / keys.HEAD).write_bytes(b"{}")
    else:
        (photo_ds / keys.manifest(seq + 2)).write_bytes(b"{damaged")
        (photo_ds / keys.HEAD).write_text(json.dumps({"format_version": 3, "seq": seq + 2,
                                                      "manifest": keys.manifest(seq + 2)}))
    assert cli("fsck", "--repair", photo_ds).code == 0
    assert sorted(p.name for p in (photo_ds / "manifests").iterdir()) == [
        Path(keys.manifest(seq)).name, Path(keys.manifest(seq + 1)).name]
    assert json.loads((photo_ds / keys.HEAD).read_bytes())["seq"] == seq + 1
    r = cli("fsck", photo_ds)
    assert r.code == 0, r.out


def test_a_damaged_row_segment_is_named_once(cli, photo_ds: Path) -> None:
    seg = next((photo_ds / "rows").iterdir())
    flip(seg, segments.HEADER.size + 3)
    r = cli("fsck", photo_ds)
    key = f"rows/{seg.name}"
    assert r.code == 1 and f"fsck: {key}: segment checksum mismatch; the key of 1 of 8 rows is lost (row 0;" in r.out
    assert f"{key}: {key}" not in r.out


# --- damaged row segments: each key has its own hash, so only the keys hit are lost -------


def row_segment(ds_path: Path) -> tuple[Path, list[int]]:
    """The dataset's one row segment, and its key offsets (relative to the key blob)."""
    (seg,) = (ds_path / "rows").iterdir()
    n = segments.HEADER.unpack_from(seg.read_bytes())[3]
    rel = np.frombuffer(seg.read_bytes(), dtype="<i8", count=n + 1, offset=segments.HEADER.size + 8 * n)
    return seg, rel.tolist()


def row_part_offset(ds_path: Path, part: str, row: int) -> int:
    """Where in the row segment object ``part`` of ``row`` starts."""
    _, rel = row_segment(ds_path)
    n = len(rel) - 1
    at = {"key hash": 8 * row, "key offset": 8 * n + 8 * row, "key": 16 * n + 8 + rel[row]}[part]
    return segments.HEADER.size + at


def lost_rows_in(ds_path: Path) -> dict[str, list[str]]:
    with lakefs.load(ds_path, read_only=True) as ds:
        return {name: sorted(s.filename for s in t.iter_samples() if s.filename.startswith("lost-row-"))
                for name, t in ds.tensors.items()}


@pytest.mark.parametrize("part, row", [("key hash", 3), ("key offset", 4), ("key", 5), ("key", 0)])
def test_a_flipped_bit_in_a_row_segment_is_set_right(cli, photo_ds: Path, part: str, row: int) -> None:
    """Found by QA: one flipped bit anywhere in a row segment lost every key of it, and
    repair renamed every sample of those rows lost-row-N (reporting "0 dropped"). The
    segment's crc32 locates one flipped bit, as in an index segment: nothing is lost."""
    before = snapshot(photo_ds)
    seg, _ = row_segment(photo_ds)
    data = bytearray(seg.read_bytes())
    data[row_part_offset(photo_ds, part, row) + 1] ^= 0b100  # (offset's second byte: it stays a bit flip)
    seg.write_bytes(bytes(data))
    r = cli("fsck", photo_ds)
    assert r.code == 1 and f"one flipped bit (in the {part} of row {row}) explains the damage and was set right" \
        in r.out, r.out
    assert "lost" not in r.out
    assert_repaired(cli, photo_ds, before, set())
    assert not seg.exists()  # (replaced by the repaired one)


@pytest.mark.parametrize("part, row, lost", [("key hash", 3, [3]), ("key", 5, [5]), ("key offset", 4, []),
                                             ("key offset", 8, [])])
def test_damage_in_a_row_segment_costs_only_the_keys_it_hits(cli, photo_ds: Path, part: str, row: int,
                                                             lost: list[int]) -> None:
    """More than one flipped bit (no single bit explains it): every key that verifies
    against its own BLAKE2b hash is kept; a damaged offset is found again from the key's
    hash; only a row whose key or hash is damaged becomes lost-row-N, and repair says so."""
    before = snapshot(photo_ds)
    with lakefs.load(photo_ds, read_only=True) as ds:
        names = ds.keys()
    seg, _ = row_segment(photo_ds)
    flip(seg, row_part_offset(photo_ds, part, row))  # (all 8 bits of one byte)
    r = cli("fsck", photo_ds)
    assert r.code == 1, r.out
    if lost:
        assert f"the key of {len(lost)} of 8 rows is lost (row {lost[0]}; repair renames" in r.out, r.out
    else:
        assert "every key verifies against its hash and is kept" in r.out, r.out
    r = cli("fsck", "--repair", photo_ds)
    assert r.code == 0, r.out
    summary = r.out.splitlines()[-1]
    assert (f"{len(lost)} row(s) renamed" in summary) == bool(lost), summary
    for row in lost:
        assert f"fsck: renamed row {row} to lost-row-{row:08d} (its key was lost)" in r.out
    assert cli("fsck", photo_ds).code == 0
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert ds.keys() == [f"lost-row-{i:08d}" if i in lost else k for i, k in enumerate(names)]
    assert lost_rows_in(photo_ds) == {"images": [f"lost-row-{i:08d}.jpg" for i in lost],
                                      "meta": [f"lost-row-{i:08d}.json" for i in lost]}
    after = snapshot(photo_ds)
    assert len(after) == len(before)
    renamed = {f"{t}/{names[i]}.{e}" for i in lost for t, e in (("images", "jpg"), ("meta", "json"))}
    assert all(after[k] == v for k, v in before.items() if k not in renamed)


# --- a store that fails a read: no finding at all, never damage ----------------------------


def _objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).as_posix().startswith("locks/")}


@pytest.mark.parametrize("head", ["sound", "newest manifest damaged"])
def test_a_read_the_store_fails_is_never_taken_for_damage(tmp_path: Path, head: str) -> None:
    """Found by review: fsck took a row segment (or, going back a commit, a manifest) that
    the store failed to read (an object store gone away, EIO) for damage: `fsck --repair`
    then renamed every row to lost-row-NNNNNNNN. Each read failed in turn must stop the
    check with the store's error, and a repair must leave the dataset as it was."""
    original = tmp_path / "original"
    with lakefs.empty(original) as ds:
        ds.create_tensor("blobs", htype="bytes")
        ds.create_tensor("meta", htype="json")
        for commit in range(3):
            ds.append({"blobs": b"blob %d" % commit, "meta": {"n": commit}})
            ds.flush()
    if head != "sound":
        flip(original / json.loads((original / keys.HEAD).read_bytes())["manifest"], 30)
    baseline = fsck_storage(LocalStorage(original)).problems
    before = _objects(original)
    reads = 0
    while True:
        reads += 1
        copy = tmp_path / f"copy{reads}"
        shutil.copytree(original, copy)
        store = FaultyStorage(LocalStorage(copy), fail_at=reads, mode="eio", ops={"get", "get_range"})
        try:
            report = fsck_storage(store, repair=True)
        except StorageError as e:
            assert "injected fault" in str(e)
            assert _objects(copy) == before, f"read {reads} ({store.failed}) changed the dataset"
            continue
        assert not store.failed, f"read {reads} ({store.failed}) was taken for: {report.problems}"
        assert report.problems == baseline
        break
    assert reads > 8  # (every object the check reads was failed once)


@pytest.mark.parametrize("edit", [
    ("tensors", "images", "class_names", [1, 2]),
    ("tensors", "images", "chunk_size", "8MB"),
    ("tensors", "images", "dtype", "nonsense"),
    ("tensors", "images", "exts", None),
    ("tensors", "images", "tid", "../../elsewhere"),
    ("groups", [7]),
    ("tensors", []),
], ids=lambda e: "/".join(map(str, e[:-1])))
def test_a_manifest_of_wrong_types_is_named_never_a_traceback(cli, photo_ds: Path, tmp_path: Path, edit) -> None:
    """A manifest with no crc32 (written before it had one) is taken as it reads: values
    of the wrong JSON type ended ``info``, ``ls`` and ``export`` in a traceback (a class
    name that is a number, a chunk size that is a string), and ``fsck`` called it clean."""
    before = snapshot(photo_ds)
    newest = photo_ds / json.loads((photo_ds / keys.HEAD).read_bytes())["manifest"]
    m = json.loads(newest.read_bytes())
    del m["crc32"]
    *path, value = edit
    target = m
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    newest.write_text(json.dumps(m))
    for argv in (["info", photo_ds], ["tensor", "list", photo_ds], ["ls", f"{photo_ds}/images"],
                 ["export", photo_ds, tmp_path / "out"], ["compact", photo_ds]):
        r = cli(*argv)
        assert r.code == 1 and re.fullmatch(r"lakefs: error: manifests/\S+: manifest is malformed: .+\n", r.err), r.err
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "manifest is malformed" in r.out and "(repair makes it current)" in r.out, r.out
    r = cli("fsck", "--repair", photo_ds)
    assert r.code == 0, r.out
    assert cli("fsck", photo_ds).code == 0
    after = snapshot(photo_ds)  # back one commit: the photos, without the meta of the commit given up
    assert {k: v for k, v in before.items() if k.startswith("images/")} == after


@pytest.mark.parametrize("marker", [b"{}", b"[2]", b'{"format": "lakefs"}'])
def test_a_marker_that_reads_as_json_but_is_none_is_repaired(cli, photo_ds: Path, marker: bytes) -> None:
    """``{}`` in lakefs.json made fsck say "format version None is not supported ...;
    upgrade lakefs" and stop, so --repair could not write the new marker it needs."""
    before = snapshot(photo_ds)
    (photo_ds / keys.MARKER).write_bytes(marker)
    r = cli("info", photo_ds)
    assert r.err == "lakefs: error: lakefs.json is not a lakefs dataset marker\n"
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "fsck: lakefs.json: not a valid dataset marker (damaged); repair writes a new one" in r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    assert cli("fsck", photo_ds).code == 0
    assert snapshot(photo_ds) == before


@pytest.mark.parametrize("damaged", ["HEAD", "manifest"])
def test_a_flipped_bit_in_the_format_version_name_is_damage_not_a_newer_format(cli, photo_ds: Path,
                                                                                 damaged: str) -> None:
    """"format_version" with one bit flipped left no version: every command, fsck
    --repair too, said "format version None is not supported ...; upgrade lakefs"."""
    head = json.loads((photo_ds / keys.HEAD).read_bytes())
    target = photo_ds / (keys.HEAD if damaged == "HEAD" else head["manifest"])
    data = target.read_bytes()
    assert data.count(b"format_version") == 1
    target.write_bytes(data.replace(b"format_version", b"format_versioo"))  # "n" ^ 0x01
    r = cli("info", photo_ds)
    assert r.code == 1 and r.err.endswith(f": no format version (damaged?); run `lakefs fsck {photo_ds}`\n"), r.err
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "no format version (damaged?)" in r.out and "(repair makes it current)" in r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    assert cli("fsck", photo_ds).code == 0 and cli("info", photo_ds).code == 0


def test_a_head_that_is_not_text_is_named_without_its_bytes(cli, photo_ds: Path) -> None:
    (photo_ds / keys.HEAD).write_bytes(b"\xcc\xfc\x1f" * 20)
    r = cli("info", photo_ds)
    assert r.err == f"lakefs: error: HEAD: HEAD is malformed: not UTF-8 text; run `lakefs fsck {photo_ds}`\n"


@pytest.mark.parametrize("head, why", [
    (b"", "it is empty"), (b"  \n", "it is empty"), (b'{"format_version": 3, "se', "it is not JSON"),
    (b'["x"]', "it is a JSON array, not an object"), (b'"HEAD"', "it is a JSON string, not an object"),
    (b"null", "it is a JSON null, not an object"),
    (b'{"format_version": 3, "manifest": "manifests/0000000000000002.json"}', "it names no commit (seq)"),
    (b'{"format_version": 3, "seq": "2", "manifest": "manifests/0000000000000002.json"}',
     "its seq is not a whole number"),
    (b'{"format_version": 3, "seq": 2}', "it names no manifest"),
    (b'{"format_version": 3, "seq": 2, "manifest": 2}', "its manifest is not a string"),
])
def test_a_malformed_head_is_said_in_words(cli, photo_ds: Path, head: bytes, why: str) -> None:
    """Found by QA: HEAD holding ``["x"]`` said ``AttributeError("'list' object has no
    attribute 'get'")``, an empty one a JSONDecodeError's repr."""
    (photo_ds / keys.HEAD).write_bytes(head)
    r = cli("info", photo_ds)
    assert r.err.startswith(f"lakefs: error: HEAD: HEAD is malformed: {why}"), r.err
    assert "Error(" not in r.err
    r = cli("fsck", photo_ds)
    assert f"fsck: HEAD: HEAD is malformed: {why}\n" in r.out, r.out


@pytest.mark.parametrize("damaged", ["index segment", "row segment", "manifest", "HEAD"])
def test_damage_that_stops_an_open_says_to_run_fsck(cli, photo_ds: Path, damaged: str) -> None:
    """Found by QA: info, ls and mount stopped with "rows/...: segment checksum mismatch"
    and no word of what to do."""
    head = json.loads((photo_ds / keys.HEAD).read_bytes())
    target = {"index segment": lambda: segment_path(photo_ds, "images"),
              "row segment": lambda: next((photo_ds / "rows").iterdir()),
              "manifest": lambda: photo_ds / head["manifest"], "HEAD": lambda: photo_ds / keys.HEAD}[damaged]()
    flip(target, len(target.read_bytes()) - 3)
    hint = f"; run `lakefs fsck {os.path.realpath(photo_ds)}`"
    for argv in (("info", photo_ds), ("ls", photo_ds), ("ls", "-l", f"{photo_ds}/images")):
        r = cli(*argv)
        assert r.code == 1 and r.err.endswith(f"{hint}\n") and r.err.count("lakefs fsck") == 1, r.err
    with pytest.raises(CorruptionError, match=re.escape(hint)):
        lakefs.load(photo_ds, read_only=True)


def test_a_damaged_plain_file_is_reported_and_dropped_by_repair(cli, photo_ds: Path) -> None:
    """Found by QA: plain files had no checksum, so a flipped byte in files/<id> passed
    fsck. Each is checked (in pieces) against its crc32 now; repair drops a damaged
    one, naming it, as it drops an unrecoverable sample."""
    big = bytes(range(256)) * 40_000  # 10 MB: more than one piece of the check
    with lakefs.load(photo_ds) as ds:
        ds.write_file("README.md", b"# photos\n")
        ds.write_file("big.bin", big)
        ds.make_plain_dir(".git")
        ds.write_file(".git/HEAD", b"ref: refs/heads/main\n")
        obj = {p: photo_ds / keys.staged_file(f.file_id) for p, f in ds.files.items()}
    before = snapshot(photo_ds)
    assert cli("fsck", photo_ds).code == 0
    flip(obj[".git/HEAD"], 3)
    flip(obj["big.bin"], len(big) - 1)
    r = cli("fsck", photo_ds)
    assert r.code == 1
    assert f"fsck: file .git/HEAD: checksum mismatch in {keys.staged_file(int(obj['.git/HEAD'].name, 16))}" in r.out
    assert "fsck: file big.bin: checksum mismatch" in r.out and "README.md" not in r.out
    assert "--repair" in r.out.splitlines()[-1]
    r = cli("fsck", "--repair", photo_ds)
    assert r.code == 0, r.out
    assert "fsck: dropped .git/HEAD" in r.out and "fsck: dropped big.bin" in r.out and "(2 dropped" in r.out
    r = cli("fsck", photo_ds)
    assert r.code == 0 and "clean" in r.out, r.out
    assert snapshot(photo_ds) == before  # every sample kept
    with lakefs.load(photo_ds, read_only=True) as ds:
        assert sorted(ds.files) == ["README.md"] and ds.read_file("README.md") == b"# photos\n"
        assert ".git" in ds.pending_dirs  # (its directory stays, empty)
    assert not obj[".git/HEAD"].exists() and not obj["big.bin"].exists()  # deleted after the repair commit


def test_leftover_temp_files_are_a_note_and_compact_deletes_the_old_ones(cli, dataset_path: Path) -> None:
    """Found by review: a put killed mid-write (or one that failed other than by an
    OSError) left its ``.name.tmp~xxxx`` for good: list() hides it, and neither fsck
    nor compact looked. fsck notes them (no damage: a running writer's are fresh);
    compact deletes those untouched for an hour."""
    import os
    import time

    with lakefs.empty(dataset_path) as ds:
        ds.create_tensor("b", htype="bytes")
        ds.b.append(b"x" * 1000)
    chunk = next(dataset_path.rglob("chunks/*"))
    old = chunk.parent / f".{chunk.name}.tmp~0badf00d"
    old.write_bytes(b"half a chunk")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = dataset_path / ".HEAD.tmp~12345678"
    fresh.write_bytes(b"a commit being written")
    r = cli("fsck", dataset_path)
    assert r.code == 0 and "clean" in r.out, r.out
    notes = [line for line in r.out.splitlines() if line.startswith("fsck: note:")]
    assert len(notes) == 2 and any(old.name in n and "2 h old" in n for n in notes), r.out
    assert fsck_storage(LocalStorage(dataset_path)).ok
    r = cli("compact", dataset_path)
    assert r.code == 0 and "1 temp file" in r.out, r.out
    assert not old.exists() and fresh.exists()


# --- a newer lakefs's commit: refused, never written over ----------------------------------


def write_newer_commit(ds_path: Path, version: int = 4) -> Path:
    """A commit as a lakefs of format ``version`` would make it: its manifest (a sound
    crc32) at the next seq, and HEAD naming it."""
    from lakefs.format.checksum import crc32
    from lakefs.format.manifest import CRC_FIELD, _canonical

    head = json.loads((ds_path / keys.HEAD).read_bytes())
    d = json.loads((ds_path / head["manifest"]).read_bytes())
    d.pop(CRC_FIELD)
    d["format_version"], d["seq"] = version, head["seq"] + 1
    d[CRC_FIELD] = crc32(_canonical(d))
    mkey = keys.manifest(d["seq"])
    (ds_path / mkey).write_bytes(_canonical(d))
    (ds_path / keys.HEAD).write_text(json.dumps({"format_version": version, "seq": d["seq"], "manifest": mkey}))
    return ds_path / mkey


@pytest.mark.parametrize("head", ["damaged", "missing", "sound"])
def test_a_newer_lakefs_commit_is_refused_and_never_written_over(cli, photo_ds: Path, head: str) -> None:
    """Found by QA: with a newer format's manifest at seq 5 and HEAD damaged, fsck took
    seq 4 for the newest readable one and --repair wrote its own seq 5 over the newer
    commit. docs/FORMAT.md §10: a newer version is refused before anything is written."""
    newer = write_newer_commit(photo_ds)
    if head == "damaged":
        (photo_ds / keys.HEAD).write_bytes(b"{\"format_version\": 3, \"se")
    elif head == "missing":
        (photo_ds / keys.HEAD).unlink()
    before = _objects(photo_ds)
    for argv in (("fsck", photo_ds), ("fsck", "--repair", photo_ds)):
        r = cli(*argv)
        assert r.code == 1 and "format version 4 is not supported" in r.err and "upgrade lakefs" in r.err, r
        assert "repaired" not in r.out
    assert _objects(photo_ds) == before and newer.exists()


def test_a_flipped_bit_that_makes_a_manifest_look_newer_is_damage(cli, photo_ds: Path) -> None:
    """A manifest whose version digit took a flipped bit ("3" → "7") is damage, not a
    newer lakefs's commit: its crc32 verifies with the version it was written with."""
    before = snapshot(photo_ds)
    head = json.loads((photo_ds / keys.HEAD).read_bytes())
    path = photo_ds / head["manifest"]
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"format_version":3', b'"format_version":7'))
    r = cli("info", photo_ds)
    assert r.code == 1 and "upgrade lakefs" not in r.err and "damaged" in r.err, r.err
    r = cli("fsck", photo_ds)
    assert r.code == 1 and "(repair makes it current)" in r.out, r.out
    assert cli("fsck", "--repair", photo_ds).code == 0
    after = snapshot(photo_ds)  # (the commit that wrote meta/ is given up with its manifest)
    assert cli("fsck", photo_ds).code == 0 and after == {k: v for k, v in before.items() if k.startswith("images/")}
