"""Helpers shared by the reliability suites: verification, content, commands.

Content written by the suites is *self-describing*: ``content(name, version, size)``
starts with ``name/version/size|`` and continues with bytes derived from that header, so
any sample read back can be checked on its own (whole, not mixed up with another file,
not stale) without the test remembering what it wrote.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import lakefs

REPO = Path(__file__).resolve().parents[2]
LAKEFS = [sys.executable, "-m", "lakefs"]


def lakefs_mount(ds: Path | str, mnt: Path | str, *opts: str) -> list[str]:
    """argv of ``lakefs mount DS MNT`` (the harness adds ``-f``)."""
    return [*LAKEFS, "mount", str(ds), str(mnt), *opts]


def env() -> dict[str, str]:
    """Environment for child processes: lakefs importable from the checkout."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


# --- self-describing content -----------------------------------------------------------


def content(name: str, version: int = 0, size: int = 1000) -> bytes:
    """Deterministic bytes for ``name`` at ``version``: a header, then a hash stream."""
    head = f"{name}/{version}/{size}|".encode()
    out = bytearray(head)
    block = hashlib.sha256(head).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:max(size, len(head))])


def parse_content(data: bytes) -> tuple[str, int, int]:
    """(name, version, size) from bytes made by :func:`content`; ValueError if not."""
    head, sep, _ = data.partition(b"|")
    if not sep:
        raise ValueError(f"no content header in {data[:60]!r}")
    name, version, size = head.decode().rsplit("/", 2)
    return name, int(version), int(size)


def check_content(data: bytes, name: str | None = None) -> tuple[str, int, int]:
    """Assert ``data`` is whole self-describing content (of ``name`` if given)."""
    got_name, version, size = parse_content(data)
    assert name is None or got_name == name, f"{name}: holds the content of {got_name}"
    assert data == content(got_name, version, size), f"{got_name} v{version}: wrong or partial bytes"
    return got_name, version, size


# --- verification ----------------------------------------------------------------------


def read_everything(path: Path | str) -> dict[str, bytes]:
    """Every sample (``tensor/filename``) and staged file of a dataset, read via the API.

    Reading verifies each sample's crc32; a damaged sample raises CorruptionError.
    """
    out: dict[str, bytes] = {}
    with lakefs.load(path, read_only=True) as ds:
        for name, tensor in ds.tensors.items():
            for sample in tensor.iter_samples():
                out[f"{name}/{sample.filename}"] = sample.file_bytes()
        for fpath in ds.files:
            out[fpath] = ds.read_file(fpath)
    return out


def fsck(path: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKEFS, "fsck", str(path)], capture_output=True, text=True, timeout=120, env=env())


def assert_fsck_clean(path: Path | str) -> None:
    done = fsck(path)
    assert done.returncode == 0, f"fsck is not clean:\n{done.stdout}{done.stderr}"


def tree_digest(root: Path | str) -> dict[str, str]:
    """relative path → sha256 of every regular file under ``root`` (locks excluded)."""
    out = {}
    root = Path(root)
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if rel.startswith("locks/"):
                continue
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def md5(path: Path | str) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()
