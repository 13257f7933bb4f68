"""Fixtures for the compression tests; the golden files are in codec_fixtures.py."""

from __future__ import annotations

import pytest
from codec_fixtures import EXPECTED, fixture_bytes


@pytest.fixture(params=sorted(EXPECTED), ids=str)
def golden(request: pytest.FixtureRequest) -> tuple[str, bytes, dict]:
    """(file name, bytes, expected metadata) for each golden file."""
    return request.param, fixture_bytes(request.param), EXPECTED[request.param]
