"""Helpers for the tools tests: run the CLI in-process and capture what it prints."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakefs.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli("info", path)`` → Result(code, stdout, stderr) of ``lakefs info path``."""

    def run(*argv: object) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


@pytest.fixture
def jpeg_dir(tmp_path: Path, photos: list[Path]) -> Path:
    """A private copy of the eight session photos (mtimes kept), safe to modify."""
    out = tmp_path / "photos"
    out.mkdir()
    for p in photos:
        shutil.copy2(p, out / p.name)
    return out


@pytest.fixture
def png_dir(tmp_path: Path, photo_factory) -> Path:
    """Six PNG photos (the transcode path)."""
    out = tmp_path / "pngs"
    out.mkdir()
    for p in photo_factory(6, png=True):
        shutil.copy2(p.with_suffix(".png"), out / p.with_suffix(".png").name)
    return out
