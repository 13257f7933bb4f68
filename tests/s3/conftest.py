"""Fixtures for object-store datasets: a real moto S3 server on 127.0.0.1 (tests/s3server.py),
a fresh dataset URL per test, a config file pointing lakefs at the server, and helpers to
fill a dataset through the API and mount it with the real CLI.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import lakefs
from s3server import BUCKET, boto_client, moto_server, s3_options


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        boto_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture
def s3_url() -> str:
    """A fresh dataset location in the test bucket."""
    return f"s3://{BUCKET}/ds-{uuid.uuid4().hex[:12]}"


def options(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Storage options for lakefs (``lease_seconds`` is lakefs's own; the rest go to s3fs)."""
    return {**s3_options(endpoint), **extra}


def write_config(path: Path, endpoint: str, cache_dir: Path | None = None, **extra: Any) -> Path:
    storage: dict[str, Any] = {"options": options(endpoint, **extra)}
    if cache_dir is not None:
        storage["cache_dir"] = str(cache_dir)
    path.write_text(yaml.safe_dump({"storage": storage, "commit_interval": 0.5}))
    return path


@pytest.fixture
def s3_config(tmp_path: Path, s3_endpoint: str) -> Path:
    """A config file for the session's server, with a cache directory under tmp_path."""
    return write_config(tmp_path / "lakefs.yaml", s3_endpoint, tmp_path / "cache")


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
