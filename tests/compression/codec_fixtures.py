"""Golden fixture files of the compression tests (tests/fixtures/compression, never regenerated).

A module of its own, not conftest: ``from conftest import`` is ambiguous across test folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compression"
EXPECTED: dict[str, dict] = json.loads((FIXTURES / "expected.json").read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_array(name: str) -> np.ndarray:
    return np.load(FIXTURES / f"{name}.npy")
