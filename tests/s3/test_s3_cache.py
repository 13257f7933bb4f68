"""The local read cache of an object-store dataset never serves another dataset's objects."""

from __future__ import annotations

import pytest
from s3util import fill, md5, options, write_config

import lakefs
from lakefs.storage.fsspec_store import FsspecStorage

pytestmark = pytest.mark.timeout(120)


def make(url: str, opts: dict, payload: str) -> None:
    with lakefs.empty(url, overwrite=True, storage_options=opts) as ds:
        ds.create_tensor("labels", htype="text")
        for k in ("a", "b", "c"):
            ds.append({"labels": payload + k}, key=k)


def test_a_dataset_recreated_within_the_same_second_is_not_served_from_the_old_cache(
        s3_endpoint, s3_url, tmp_path, monkeypatch):
    """The cache directory was keyed on the marker's modification time, which S3 gives
    to the second (found by review): the stand-in below makes every marker the same age."""
    monkeypatch.setattr(FsspecStorage, "modified", lambda self, key: "2026-11-24T04:00:00Z")
    opts, cache = options(s3_endpoint), tmp_path / "cache"
    make(s3_url, opts, "OLD-")
    with lakefs.load(s3_url, read_only=True, storage_options=opts, cache_dir=cache) as ro:
        assert [s.numpy() for s in ro.labels] == ["OLD-a", "OLD-b", "OLD-c"]
    make(s3_url, opts, "NEW-")
    with lakefs.load(s3_url, read_only=True, storage_options=opts, cache_dir=cache) as ro:
        assert [s.numpy() for s in ro.labels] == ["NEW-a", "NEW-b", "NEW-c"]


def test_cli_export_reads_whole_chunks_through_the_cache(photos, s3_endpoint, s3_url, tmp_path):
    """Found by review: `lakefs export` of an object-store dataset made one GET per
    sample, one after another (12 s where a mount's cp -r took 0.8 s). It now reads
    through the mounts' chunk cache: one fill per chunk."""
    import subprocess
    import sys

    want = fill(s3_url, s3_endpoint, photos, chunk_size=64 << 10)
    cache = tmp_path / "cache"
    config = write_config(tmp_path / "c.yaml", s3_endpoint, cache)
    done = subprocess.run([sys.executable, "-m", "lakefs", "export", s3_url, str(tmp_path / "out"),
                           "--config", str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = {p.name: md5(p.read_bytes()) for p in (tmp_path / "out" / "images").iterdir()}
    assert got == want
    import hashlib

    from lakefs.format import keys

    engine = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint)).images._engine
    chunk_names = {hashlib.sha256(keys.chunk(engine.tid, c).encode()).hexdigest() for c in engine.live_chunks()}
    cached = {p.name for p in cache.rglob("*") if p.is_file()}
    assert len(chunk_names) > 1 and chunk_names <= cached  # every chunk fetched whole


def test_cli_export_goes_on_without_a_cache_when_the_cache_directory_is_unusable(photos, s3_endpoint, s3_url,
                                                                                 tmp_path):
    """Found by review: with the default cache directory unusable (XDG_CACHE_HOME a file,
    as a read-only HOME in a container), export failed; the cache is optional there."""
    import os
    import subprocess
    import sys

    want = fill(s3_url, s3_endpoint, photos)
    not_a_dir = tmp_path / "notadir"
    not_a_dir.write_text("a file")
    config = write_config(tmp_path / "c.yaml", s3_endpoint)  # no cache_dir: the default one
    done = subprocess.run([sys.executable, "-m", "lakefs", "export", s3_url, str(tmp_path / "out"),
                           "--config", str(config)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CACHE_HOME": str(not_a_dir)})
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()  # one warning line
    assert line.startswith(f"lakefs: warning: cannot use the cache directory {not_a_dir}/lakefs/")
    assert line.endswith(" (Not a directory); exporting without a cache")
    assert done.stdout.startswith(f"exported {len(want)} files")
    got = {p.name: md5(p.read_bytes()) for p in (tmp_path / "out" / "images").iterdir()}
    assert got == want


def test_cli_export_and_load_fetch_a_damaged_cache_file_again(photos, s3_endpoint, s3_url, tmp_path):
    """Found by QA: with a chunk damaged in the local cache, `lakefs export` exited 1 and
    lakefs.load(..., cache_dir=...) raised CorruptionError for every sample in it, for
    good. The damaged copy is now dropped and the chunk fetched again from the store."""
    import subprocess
    import sys

    want = fill(s3_url, s3_endpoint, photos)
    cache = tmp_path / "cache"
    config = write_config(tmp_path / "c.yaml", s3_endpoint, cache)

    def export(dest: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakefs", "export", s3_url, str(tmp_path / dest),
                               "--config", str(config)], capture_output=True, text=True, timeout=120)

    def damage() -> list:
        chunks = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size >= 64 << 10]
        for p in chunks:
            data = bytearray(p.read_bytes())
            for i in range(0, len(data), 50_000):
                data[i] ^= 0xFF
            p.write_bytes(bytes(data))
        assert chunks
        return chunks

    assert export("first").returncode == 0
    damaged = damage()
    done = export("out")
    assert done.returncode == 0, done.stderr
    got = {p.name: md5(p.read_bytes()) for p in (tmp_path / "out" / "images").iterdir()}
    assert got == want
    lines = done.stderr.splitlines()
    assert len(lines) == len(damaged) and all(any(str(p) in line for line in lines) for p in damaged)
    assert all(line.startswith("lakefs: WARNING: read cache: cache file ") for line in lines)

    damage()
    with lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint),
                     cache_dir=cache) as ds:
        assert {s.filename: md5(s.tobytes()) for s in ds.images} == want
    assert len(list(cache.iterdir())) == 1  # (the files the export cached, damaged again)


def test_close_closes_the_cache_the_api_opened(s3_endpoint, s3_url, tmp_path, monkeypatch):
    """Found by review: close() left the cache lakefs.load opened (its thread pool, the
    store's descriptors) to the garbage collector; an open that fails closes it too."""
    from lakefs.errors import DatasetNotFoundError
    from lakefs.storage.cache import CachingStorage

    closed: list[CachingStorage] = []
    close = CachingStorage.close
    monkeypatch.setattr(CachingStorage, "close", lambda self: (closed.append(self), close(self))[1])
    opts, cache = options(s3_endpoint), tmp_path / "cache"
    make(s3_url, opts, "X-")
    with lakefs.load(s3_url, read_only=True, storage_options=opts, cache_dir=cache) as ro:
        assert ro.labels[0].numpy() == "X-a"
        assert not closed
    assert closed == [ro.storage]
    with pytest.raises(DatasetNotFoundError):
        lakefs.load(s3_url + "-none", read_only=True, storage_options=opts, cache_dir=cache)
    assert len(closed) == 2
