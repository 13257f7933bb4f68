"""Helpers of the object-store tests: storage options and config files for the test server,
filling a dataset through the API, the ``lakefs mount`` command line."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml
from s3server import s3_options

import lakefs


def options(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Storage options for lakefs (``lease_seconds`` is lakefs's own; the rest go to s3fs)."""
    return {**s3_options(endpoint), **extra}


def write_config(path: Path, endpoint: str, cache_dir: Path | None = None, **extra: Any) -> Path:
    storage: dict[str, Any] = {"options": options(endpoint, **extra)}
    if cache_dir is not None:
        storage["cache_dir"] = str(cache_dir)
    path.write_text(yaml.safe_dump({"storage": storage, "commit_interval": 0.5}))
    return path


def lakefs_mount(url: str, mnt: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", url, str(mnt), *args]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fill(url: str, endpoint: str, photos: list[Path], *, chunk_size: int | None = None,
         **extra: Any) -> dict[str, str]:
    """Write ``photos`` into an ``images`` tensor of a new dataset; name → md5."""
    with lakefs.dataset(url, storage_options=options(endpoint, **extra)) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_size=chunk_size)
        for p in photos:
            ds.append({"images": lakefs.read(p)}, key=p.stem)
    return {p.name: md5(p.read_bytes()) for p in photos}
