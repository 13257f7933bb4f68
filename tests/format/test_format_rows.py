"""The row table: key → row lookup by hash, persistence in row segments, the manifest."""

from __future__ import annotations

import json

import pytest

from lakefs.dataset import Dataset
from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format import keys, segments
from lakefs.format.checksum import crc32
from lakefs.format.manifest import Manifest, StagedFile, parse_head
from lakefs.format.rows import RowTable
from lakefs.format.version import FORMAT_VERSION
from lakefs.storage import MemoryStorage


def test_find_before_and_after_rebuild():
    t = RowTable()
    names = [f"img{i:05d}" for i in range(5000)]  # past the 1024-key rebuild threshold
    for i, k in enumerate(names):
        assert t.append(k) == i
    assert all(t.find(k) == i for i, k in enumerate(names))
    assert t.find("nope") is None and t.find("") is None
    assert t.key(4321) == "img04321"
    with pytest.raises(IndexError):
        t.key(5000)


def test_unicode_keys_round_trip_through_segments():
    t = RowTable()
    ks = ["chat", "猫", "é" * 100, "a b"]
    for k in ks:
        t.append(k)
    blob = t.encode_range(0, len(ks))
    count, body = segments.unpack(blob, segments.KIND_ROWS, "x")
    t2 = RowTable()
    t2.load_segment(body, count, 0, "x")
    t2.finish_load()
    assert t2.keys() == ks
    assert [t2.find(k) for k in ks] == [0, 1, 2, 3]


def test_row_segment_must_be_contiguous():
    t = RowTable()
    t.append("a")
    count, body = segments.unpack(t.encode_range(0, 1), segments.KIND_ROWS, "x")
    with pytest.raises(CorruptionError, match="starts at 5"):
        RowTable().load_segment(body, count, 5, "x")


def test_keys_persist_across_many_commits():
    storage = MemoryStorage()
    ds = Dataset(storage, create=True)
    ds.create_tensor("x")
    for c in range(60):
        for i in range(5):
            ds.append({"x": [c, i]}, key=f"k{c}-{i}")
        ds.flush()
    manifest = Manifest.from_bytes(storage.get(parse_head(storage.get(keys.HEAD), "HEAD")[1]), "m")
    assert manifest.row_count == 300
    assert len(manifest.rows) <= 10  # row segments merge like index segments
    ds.close()
    ds = Dataset(storage, read_only=True)
    assert ds.row_of("k59-4") == 299 and ds.row_of("k0-0") == 0
    assert ds["k31-2"]["x"].numpy().tolist() == [31, 2]
    assert ds.keys()[:2] == ["k0-0", "k0-1"]


def test_manifest_round_trip_and_version():
    m = Manifest(seq=3, next_id=17)
    again = Manifest.from_bytes(m.to_bytes(), "m")
    assert (again.seq, again.next_id, again.tensors) == (3, 17, {})
    d = json.loads(m.to_bytes())
    d["format_version"] = 999
    with pytest.raises(CorruptionError, match="written as version 3: its format_version is damaged"):
        Manifest.from_bytes(json.dumps(d).encode(), "m")  # (its crc32 is of version 3)
    del d["crc32"]
    d["crc32"] = crc32(json.dumps(d, separators=(",", ":"), sort_keys=True).encode())  # a newer lakefs's
    with pytest.raises(FormatVersionError, match="999"):
        Manifest.from_bytes(json.dumps(d).encode(), "m")
    with pytest.raises(CorruptionError):
        Manifest.from_bytes(b"{not json", "m")
    with pytest.raises(CorruptionError):
        parse_head(b'{"format_version": 1}', "HEAD")


def _canonical_with_crc(d: dict) -> bytes:
    from lakefs.format.checksum import crc32

    d.pop("crc32", None)
    d["crc32"] = crc32(json.dumps(d, separators=(",", ":"), sort_keys=True).encode())
    return json.dumps(d).encode()


def test_manifest_dirs_round_trip_and_the_field_set_of_each_version():
    """Format v2 adds the manifest's ``dirs`` (directory path → [mode, mtime_ns]); a v1
    manifest has none (its closed field set: ``dirs`` there is damage), and reads with
    no entries."""
    m = Manifest(seq=2, dirs={"": (0o755, 5), "train/images": (0o700, -1)})
    blob = m.to_bytes()
    d = json.loads(blob)
    assert d["format_version"] == FORMAT_VERSION and d["dirs"] == {"": [0o755, 5], "train/images": [0o700, -1]}
    assert Manifest.from_bytes(blob, "m").dirs == m.dirs
    v1 = dict(d, format_version=1)
    del v1["dirs"]
    assert Manifest.from_bytes(_canonical_with_crc(v1), "m").dirs == {}
    with pytest.raises(CorruptionError, match="unknown fields"):
        Manifest.from_bytes(_canonical_with_crc(dict(v1, dirs={})), "m")
    for bad in ([0o755], [0o755, "5"], [0o755, 5.0], [0o70000, 5], [True, 5], {"mode": 1}):
        with pytest.raises(CorruptionError, match="malformed"):
            Manifest.from_bytes(_canonical_with_crc(dict(d, dirs={"a": bad})), "m")


def test_a_plain_files_crc32_round_trip_and_the_versions_that_have_it():
    """Format v3 adds ``crc32`` to a plain file's record (the checksum of its bytes); a
    record without one (a file stored before v3) reads as None, and one in a manifest
    of an older version, or of a wrong type, is damage."""
    m = Manifest(seq=2, files={"README": StagedFile(7, 5, 1, 0o644, 0xFFFFFFFF), "old": StagedFile(8, 3, 1, 0o600)})
    d = json.loads(m.to_bytes())
    assert d["files"]["README"]["crc32"] == 0xFFFFFFFF and "crc32" not in d["files"]["old"]
    assert Manifest.from_bytes(m.to_bytes(), "m").files == m.files
    v2 = dict(d, format_version=2, files={"old": d["files"]["old"]})
    assert Manifest.from_bytes(_canonical_with_crc(v2), "m").files["old"].crc32 is None
    with pytest.raises(CorruptionError, match="malformed"):
        Manifest.from_bytes(_canonical_with_crc(dict(d, format_version=2)), "m")
    for bad in (-1, 1 << 32, "5", 5.0, True):
        files = {"README": dict(d["files"]["README"], crc32=bad)}
        with pytest.raises(CorruptionError, match="malformed"):
            Manifest.from_bytes(_canonical_with_crc(dict(d, files=files)), "m")
