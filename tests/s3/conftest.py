"""Fixtures for object-store datasets: a real moto S3 server on 127.0.0.1 (tests/s3server.py),
a fresh dataset URL per test, a config file pointing lakefs at the server. Helpers are in
s3util.py (a test module's ``from conftest import`` is ambiguous across test folders).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from s3server import BUCKET
from s3util import write_config


@pytest.fixture
def s3_url() -> str:
    """A fresh dataset location in the test bucket."""
    return f"s3://{BUCKET}/ds-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_config(tmp_path: Path, s3_endpoint: str) -> Path:
    """A config file for the session's server, with a cache directory under tmp_path."""
    return write_config(tmp_path / "lakefs.yaml", s3_endpoint, tmp_path / "cache")
