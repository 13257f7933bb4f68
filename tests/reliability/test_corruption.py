"""Corruption suite (issue 5): damaged objects are detected, never returned as wrong bytes.

Flipped bits and truncations in chunks, index segments, row segments, the manifest and
HEAD. Through the API a read either returns the exact original bytes or raises
``CorruptionError`` naming the sample (row) or the object; ``lakefs fsck`` reports the
damage; through the mount the damaged file gives EIO and every other file still reads.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import pytest
from mounting import mounted
from reliability_helpers import content, fsck, lakefs_mount

import lakefs
from lakefs.chunks import chunk as chunkfmt
from lakefs.errors import CorruptionError, LakeFSError
from lakefs.storage import LocalStorage
from lakefs.tools.export import export
from lakefs.tools.fsck import fsck as fsck_storage

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, photos) -> tuple[Path, dict[str, bytes]]:
    """A dataset with three chunk kinds and many small chunks, and its contents."""
    path = tmp_path_factory.mktemp("corruption") / "ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_size=96 << 10)
        ds.create_tensor("blobs", htype="bytes", chunk_size=8192)
        ds.create_tensor("packed", htype="bytes", chunk_compression="lz4", chunk_size=8192)
        for i, p in enumerate(photos[:4]):
            ds["images"].write_file(f"img{i}.jpg", p.read_bytes())
        for i in range(24):
            ds["blobs"][f"b{i:02d}"] = content(f"b{i}", 0, 700 + 97 * i)
            ds["packed"][f"p{i:02d}"] = content(f"p{i}", 0, 500 + 41 * i)
        ds["blobs"]["big"] = content("big", 0, 40_000)  # tiled: 5 chunks
        ds.write_file("README", b"a dataset card\n")
    return path, _read_all(path)


def _read_all(path: Path) -> dict[str, bytes]:
    with lakefs.load(path, read_only=True) as ds:
        return {f"{n}/{s.filename}": s.file_bytes() for n, t in ds.tensors.items() for s in t.iter_samples()}


@pytest.fixture
def damaged(pristine, tmp_path) -> tuple[Path, dict[str, bytes]]:
    src, original = pristine
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    return dst, original


def _fsck_problems(path: Path) -> str:
    """fsck in-process (the CLI is checked once below): its problem lines, "" if clean."""
    return "\n".join(fsck_storage(LocalStorage(path, read_only=True)).problems)


# Chunk header bytes that carry nothing (lakefs/chunks/chunk.py HEADER "<4sHBBQQII"):
# a flip there changes no data, so nothing needs to detect it.
CHUNK_PAD_BYTES = {7, *range(chunkfmt.HEADER.size - 4, chunkfmt.HEADER.size)}


def _chunks(path: Path) -> list[Path]:
    return sorted(p for p in (path / "tensors").rglob("*") if p.is_file() and p.parent.name == "chunks")


def _flip(p: Path, bit: int) -> None:
    data = bytearray(p.read_bytes())
    data[bit // 8] ^= 1 << (bit % 8)
    p.write_bytes(bytes(data))


def _samples_exact_or_error(path: Path, original: dict[str, bytes]) -> list[str]:
    """Read every sample one by one: exact bytes or a CorruptionError naming its row."""
    failed = []
    with lakefs.load(path, read_only=True) as ds:
        for name, t in ds.tensors.items():
            for s in t.iter_samples():
                key = f"{name}/{s.filename}"
                try:
                    data = s.file_bytes()
                except CorruptionError as e:
                    assert f"row {s.row}" in str(e), f"{key}: error does not name the sample: {e}"
                    failed.append(key)
                    continue
                assert data == original[key], f"{key}: wrong bytes returned from a damaged chunk"
    return failed


def test_chunk_bitflips_are_detected(damaged, soak):
    path, original = damaged
    rng = random.Random(5)
    detected = 0
    for chunk in _chunks(path):
        good = chunk.read_bytes()
        for _ in range(12 if soak else 3):
            bit = rng.randrange(len(good) * 8)
            if bit // 8 in CHUNK_PAD_BYTES:
                continue
            _flip(chunk, bit)
            failed = _samples_exact_or_error(path, original)
            detected += bool(failed)
            assert _fsck_problems(path), f"fsck missed flipped bit {bit} in {chunk}"
            chunk.write_bytes(good)
    assert detected > len(_chunks(path))  # most flips land in sample bytes and are caught


@pytest.mark.parametrize("keep", [0, 10, 36, 0.5, -1])
def test_truncated_chunks_are_detected(damaged, keep):
    path, original = damaged
    for chunk in _chunks(path):
        good = chunk.read_bytes()
        n = int(len(good) * keep) if isinstance(keep, float) else (len(good) + keep if keep < 0 else keep)
        chunk.write_bytes(good[:n])
        failed = _samples_exact_or_error(path, original)
        assert failed, f"{chunk} truncated to {n} bytes: no sample read failed"
        assert chunk.name in _fsck_problems(path)
        chunk.write_bytes(good)
    done = fsck(path)  # the CLI: exit 0 once everything is restored
    assert done.returncode == 0, done.stdout


def _segment_objects(path: Path) -> list[Path]:
    return [*sorted((path / "tensors").rglob("index/*")), *sorted((path / "rows").iterdir())]


def _open_or_error(path: Path, original: dict[str, bytes], obj: Path) -> None:
    """Opening either fails naming ``obj``, or every sample read is exact or an error."""
    try:
        _samples_exact_or_error(path, original)
    except LakeFSError as e:
        assert isinstance(e, CorruptionError) or "version" in str(e), repr(e)
        assert obj.name in str(e) or "manifest" in str(e) or "HEAD" in str(e), f"error does not name {obj}: {e}"


def test_index_and_row_segment_damage_is_detected(damaged, soak):
    path, original = damaged
    rng = random.Random(7)
    for seg in _segment_objects(path):
        good = seg.read_bytes()
        damage = [("flip", rng.randrange(len(good) * 8)) for _ in range(8 if soak else 2)]
        damage += [("cut", len(good) // 2), ("cut", 10), ("cut", len(good) - 1)]
        for how, at in damage:
            if how == "flip":
                _flip(seg, at)
            else:
                seg.write_bytes(good[:at])
            with pytest.raises(CorruptionError, match=seg.name):
                lakefs.load(path, read_only=True)
            assert seg.name in _fsck_problems(path)
            seg.write_bytes(good)


def _head_manifest(path: Path) -> Path:
    import json

    return path / json.loads((path / "HEAD").read_bytes())["manifest"]


def test_manifest_and_head_damage_is_detected(damaged, soak):
    """Every byte of the manifest and HEAD: flipped, the dataset reads right or not at all."""
    path, original = damaged
    for obj in (_head_manifest(path), path / "HEAD"):
        good = obj.read_bytes()
        positions = range(len(good)) if soak else range(0, len(good), max(1, len(good) // 150))
        for pos in positions:
            _flip(obj, pos * 8 + pos % 7)
            try:
                got = _read_all(path)
            except LakeFSError as e:
                assert obj.name in str(e) or "manifest" in str(e) or "HEAD" in str(e), e
            else:
                assert got == original, f"flip at byte {pos} of {obj.name} changed what the dataset returns"
            obj.write_bytes(good)
        for cut in (0, 1, len(good) // 2, len(good) - 1):
            obj.write_bytes(good[:cut])
            with pytest.raises(LakeFSError):
                lakefs.load(path, read_only=True)
            done = fsck(path)  # the CLI says what is wrong, in one line per problem
            assert done.returncode == 1 and "HEAD" in done.stdout, done.stdout
            obj.write_bytes(good)


@pytest.mark.timeout(120)
def test_mount_gives_eio_for_a_damaged_sample_and_serves_the_rest(damaged, mountpoint):
    path, original = damaged
    with lakefs.load(path, read_only=True) as ds:
        victim = ds["blobs"]["b05"]
        chunk = path / "tensors" / ds["blobs"].meta.tid / "chunks" / f"{int(victim._e()['chunk']):016x}"
        offset = chunkfmt.HEADER.size + int(victim._e()["offset"]) + 40  # inside b05's bytes, past the chunk header
    data = bytearray(chunk.read_bytes())
    data[offset] ^= 0xFF
    chunk.write_bytes(bytes(data))
    bad = {k for k in original if k.startswith("blobs/")} & set(_samples_exact_or_error(path, original))
    assert "blobs/b05.bin" in bad or any("b05" in k for k in bad)
    with mounted(lakefs_mount(path, mountpoint, "-o", "ro"), mountpoint,
                 expected_errors=[r"checksum mismatch|damaged|row \d+"]):
        for key, want in original.items():
            f = mountpoint / key
            if key in bad:
                with pytest.raises(OSError) as info:
                    f.read_bytes()
                assert info.value.errno == errno.EIO
                assert f.stat().st_size == len(want)  # metadata still answers
            else:
                assert f.read_bytes() == want, key
        assert sorted(os.listdir(mountpoint / "blobs")) == sorted(k.split("/", 1)[1] for k in original
                                                                    if k.startswith("blobs/"))


# --- plain files (format v3: each has a crc32) -----------------------------------------

PLAIN_SPILL = 256 << 10  # the mount's spill_size below: a plain file past it is read in pieces


@pytest.fixture
def plain_files(tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A dataset of plain files: small ones (read whole) and big ones (past the mount's
    spill_size: read in pieces), at the root and in a group."""
    path = tmp_path / "plain"
    files = {"README": b"a dataset card\n" * 3, "ok.txt": b"fine\n",
             "docs/big.bin": content("big", 0, 4 * PLAIN_SPILL + 4321),
             "fine.bin": content("fine", 0, 3 * PLAIN_SPILL + 17)}
    with lakefs.empty(path) as ds:
        ds.create_group("docs")
        for name, data in files.items():
            ds.write_file(name, data)
    return path, files


def _damage_file(path: Path, name: str, at: int) -> None:
    with lakefs.load(path, read_only=True) as ds:
        obj = path / "files" / f"{ds.files[name].file_id:016x}"
    data = bytearray(obj.read_bytes())
    data[at] ^= 0x01
    obj.write_bytes(bytes(data))


def test_a_damaged_plain_file_is_a_corruption_error_never_wrong_bytes(plain_files, tmp_path):
    """Found by QA: a flipped byte in files/<id> was returned as wrong bytes by the API,
    the mount and export, and fsck called the dataset clean."""
    path, files = plain_files
    _damage_file(path, "README", 5)
    _damage_file(path, "docs/big.bin", 3 * PLAIN_SPILL)
    with lakefs.load(path, read_only=True) as ds:
        for name in ("README", "docs/big.bin"):
            with pytest.raises(CorruptionError, match=f"{name}: .*checksum mismatch"):
                ds.read_file(name)
        assert ds.read_file("ok.txt") == files["ok.txt"] and ds.read_file("fine.bin") == files["fine.bin"]
        reader = ds.staged_reader(ds.files["docs/big.bin"])  # in pieces, as the mount reads a big file
        piece = 100_000
        for offset in range(0, 3 * PLAIN_SPILL, piece):  # the pieces before the end still read
            reader(offset, piece)
        with pytest.raises(CorruptionError, match="checksum mismatch"):
            for offset in range(3 * PLAIN_SPILL, len(files["docs/big.bin"]), piece):
                reader(offset, piece)
        with pytest.raises(CorruptionError):
            reader(0, 10)  # and every read after
        report = export(ds, str(tmp_path / "out"))
    assert sorted(p for p, _ in report.failed) == ["README", "docs/big.bin"]
    assert (tmp_path / "out" / "fine.bin").read_bytes() == files["fine.bin"]
    problems = _fsck_problems(path)
    assert "file README: checksum mismatch" in problems and "file docs/big.bin: checksum mismatch" in problems
    assert "ok.txt" not in problems and "fine.bin" not in problems


@pytest.mark.timeout(120)
def test_mount_gives_eio_for_a_damaged_plain_file_and_serves_the_rest(plain_files, mountpoint, tmp_path):
    path, files = plain_files
    _damage_file(path, "README", 5)
    _damage_file(path, "docs/big.bin", len(files["docs/big.bin"]) // 2)
    config = tmp_path / "lakefs.yaml"
    config.write_text(f"spill_size: {PLAIN_SPILL}\n")
    with mounted(lakefs_mount(path, mountpoint, "-o", "ro", "--config", str(config)), mountpoint,
                 expected_errors=[r"checksum mismatch|damaged"]):
        for name, want in files.items():
            f = mountpoint / name
            if name in ("README", "docs/big.bin"):
                with pytest.raises(OSError) as info:
                    f.read_bytes()
                assert info.value.errno == errno.EIO, name
                assert f.stat().st_size == len(want)  # metadata still answers
            else:
                assert f.read_bytes() == want, name
