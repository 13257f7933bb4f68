"""A damaged local read cache (found by QA): an object-store dataset's chunk cached on
the local disk and damaged there (a flipped bit, a file cut short) was served for good,
every sample in it failing with "stored data is damaged", remount after remount.

Now a copy that fails verification is dropped from the cache and the object is fetched
again from the store, once, on every read path that verifies: ranged reads of a sample,
whole chunks (chunk compression), tiles (whole and in pieces), index and row segments,
chunk headers (``lakefs info``). Only a store copy that is damaged too is a
CorruptionError. The "store" here is a local directory (LocalStorage), the cache a real
CachingStorage in front of it, as an object-store dataset has (tests/s3 mounts one).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from reliability_helpers import content

import lakefs
from lakefs.dataset import Dataset
from lakefs.dataset.maintenance import stats
from lakefs.errors import CorruptionError
from lakefs.format import keys
from lakefs.storage import LocalStorage
from lakefs.storage.cache import CachingStorage
from lakefs.storage.remote import immutable_key

pytestmark = pytest.mark.timeout(120)

LOGGER = "lakefs.storage.cache"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A dataset with ranged-read chunks, chunk-compressed chunks and tiled samples."""
    path = tmp_path_factory.mktemp("cachedamage") / "ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("blobs", htype="bytes", chunk_size=8192)  # one sample: a ranged read
        ds.create_tensor("packed", htype="bytes", chunk_compression="lz4", chunk_size=8192)  # whole chunks
        for i in range(24):
            ds["blobs"][f"b{i:02d}"] = content(f"b{i}", 0, 700 + 97 * i)
            ds["packed"][f"p{i:02d}"] = content(f"p{i}", 0, 500 + 41 * i)
        ds["blobs"]["big"] = content("big", 0, 40_000)  # tiled: 5 tiles read into buffers
        ds["packed"]["big"] = content("pbig", 0, 30_000)  # compressed tiles
    return path


@pytest.fixture
def store(pristine, tmp_path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(pristine, dst)
    return dst


def open_cached(path: Path, cache: Path) -> Dataset:
    remote = LocalStorage(path, read_only=True)
    return Dataset(CachingStorage(remote, cache, 1 << 30, cacheable=immutable_key), read_only=True)


def read_all(ds: Dataset, pieces_first: bool = False) -> dict[str, bytes]:
    """Every sample whole, and every large one in pieces too (tile by tile, as the mount
    reads it); ``pieces_first``: a large one in pieces before it is read whole."""
    out = {}
    for name, t in ds.tensors.items():
        for s in t.iter_samples():
            if s.is_large and pieces_first:
                out[f"{name}/{s.key}/pieces"] = in_pieces(s)
            out[f"{name}/{s.key}"] = s.tobytes()
            if s.is_large and not pieces_first:
                out[f"{name}/{s.key}/pieces"] = in_pieces(s)
    return out


def in_pieces(sample) -> bytes:
    read = sample.file_reader()
    return b"".join(bytes(read(o, 3000)) for o in range(0, sample.size, 3000))


def expected(path: Path) -> dict[str, bytes]:
    with lakefs.load(path, read_only=True) as ds:
        return read_all(ds)


def cache_files(cache: Path) -> dict[Path, str]:
    """Cache file → the store key it is a copy of."""
    by_name = {hashlib.sha256(k.encode()).hexdigest(): k for k in LocalStorage(cache.parent / "ds").list()}
    return {p: by_name[p.name] for p in cache.rglob("*") if p.is_file()}


def flip_every(p: Path, step: int, start: int = 0) -> None:
    data = bytearray(p.read_bytes())
    for i in range(start, len(data), step):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))


def fill(store: Path, cache: Path) -> dict[Path, str]:
    with open_cached(store, cache) as ds:
        assert read_all(ds) == expected(store)
    files = cache_files(cache)
    assert any("/chunks/" in k for k in files.values()) and any("/index/" in k for k in files.values())
    assert any(k.startswith("rows/") for k in files.values())
    return files


def objects(store: Path) -> dict[str, set[str]]:
    """The store keys of each read path: chunks read by sample (ranged), chunks read whole
    (chunk compression), tiles read into buffers, compressed tiles, segments."""
    out: dict[str, set[str]] = {"ranged": set(), "whole": set(), "tiles": set(), "packed tiles": set(),
                                "segments": set()}
    with lakefs.load(store, read_only=True) as ds:
        for name, t in ds.tensors.items():
            eng = t._engine
            for e in eng.index.live():
                first, tiles = int(e["chunk"]), int(e["tiles"])
                group = ("tiles" if tiles > 1 else "ranged") if name == "blobs" else (
                    "packed tiles" if tiles > 1 else "whole")
                out[group].update(keys.chunk(eng.tid, c) for c in range(first, first + tiles))
        out["segments"] = {k for k in LocalStorage(store).list() if k.startswith("rows/") or "/index/" in k}
    assert all(out.values())
    return out


@pytest.mark.parametrize("path", ["ranged", "whole", "tiles", "tiles in pieces", "packed tiles",
                                  "packed tiles in pieces", "segments"])
@pytest.mark.parametrize("damage", ["flips", "truncated", "empty"])
def test_a_damaged_cache_file_is_fetched_again_from_the_store(store, tmp_path, damage, path, caplog):
    cache = tmp_path / "cache"
    files = fill(store, cache)
    files = {p: k for p, k in files.items() if k in objects(store)[path.removesuffix(" in pieces")]}
    pieces_first = path.endswith(" in pieces")  # tile by tile (the mount's read), not whole first
    for p in files:
        if damage == "flips":
            flip_every(p, 500, start=37)  # in every sample, and in every segment's body
        else:
            p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2 if damage == "truncated" else 0])
    with caplog.at_level("WARNING", logger=LOGGER), open_cached(store, cache) as ds:
        assert read_all(ds, pieces_first) == expected(store)
    for p, key in cache_files(cache).items():  # every damaged file was replaced with the store's bytes
        assert p.read_bytes() == (store / key).read_bytes(), key
    warned = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]
    assert len(warned) == len(files)  # one per damaged file, naming it
    assert {next(str(p) for p in files if str(p) in w) for w in warned} == {str(p) for p in files}
    with caplog.at_level("WARNING", logger=LOGGER), open_cached(store, cache) as ds:  # a later epoch: local
        assert read_all(ds) == expected(store)
    assert len([r for r in caplog.records if r.name == LOGGER]) == len(files)


def test_a_damaged_chunk_header_in_the_cache(store, tmp_path):
    """The header is what `lakefs info` reads of a chunk-compressed chunk, and what a
    whole-chunk or tile read verifies first."""
    cache = tmp_path / "cache"
    files = fill(store, cache)
    with lakefs.load(store, read_only=True) as ds:
        want_stats = stats(ds)
    for p, key in files.items():
        if "/chunks/" in key:
            flip_every(p, 1 << 30)  # the magic's first byte
    with open_cached(store, cache) as ds:
        assert stats(ds) == want_stats
        assert read_all(ds) == expected(store)


def test_a_chunk_damaged_in_the_store_too_is_corruption(store, tmp_path, caplog):
    cache = tmp_path / "cache"
    files = fill(store, cache)
    with lakefs.load(store, read_only=True) as ds:
        first = ds.blobs[0]
        chunk = store / f"tensors/{ds.blobs.meta.tid}/chunks/{int(first._e()['chunk']):016x}"
    assert chunk.exists()
    [cached] = [p for p, k in files.items() if store / k == chunk]
    flip_every(chunk, 400, start=50)  # the store's copy
    flip_every(cached, 300, start=60)  # and the cached one, differently
    with caplog.at_level("WARNING", logger=LOGGER), open_cached(store, cache) as ds:
        with pytest.raises(CorruptionError, match=r"row 0: sample checksum mismatch .*stored data is damaged"):
            ds.blobs[0].tobytes()
        assert ds.blobs[len(ds.blobs) - 1].tobytes() == content("big", 0, 40_000)  # other chunks read
    assert cached.read_bytes() == chunk.read_bytes()  # the cache now holds the store's copy
    [warned] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert str(cached) in warned  # the cached file did differ from the store's
    caplog.clear()
    with caplog.at_level("WARNING", logger=LOGGER), open_cached(store, cache) as ds:
        with pytest.raises(CorruptionError, match="stored data is damaged"):
            ds.blobs[0].tobytes()
    assert not [r for r in caplog.records if r.name == LOGGER]  # the cached copy is the store's: not blamed
