"""Golden fixtures for the compression tests (tests/fixtures/compression, never regenerated)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compression"
EXPECTED: dict[str, dict] = json.loads((FIXTURES / "expected.json").read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_array(name: str) -> np.ndarray:
    return np.load(FIXTURES / f"{name}.npy")


@pytest.fixture(params=sorted(EXPECTED), ids=str)
def golden(request: pytest.FixtureRequest) -> tuple[str, bytes, dict]:
    """(file name, bytes, expected metadata) for each golden file."""
    return request.param, fixture_bytes(request.param), EXPECTED[request.param]
