"""Fixtures for the storage tests: a real moto S3 server, back doors, helpers.

The moto server (tests/s3server.py) runs as a subprocess on 127.0.0.1 with a free port
(as s3fs's own test suite does), once per session; it is killed at teardown.
"""

from __future__ import annotations

import uuid

import pytest

# The server itself lives in tests/s3server.py, shared with tests/s3/.


@pytest.fixture
def s3_prefix() -> str:
    """A fresh prefix in the test bucket, so tests never see each other's objects."""
    return f"t-{uuid.uuid4().hex[:12]}"
