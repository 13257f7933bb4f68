"""The registry table: rows, lookups, adding a codec."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lakefs.compression import (
    Codec,
    SampleInfo,
    codec_for_extension,
    codec_names,
    detect,
    get_codec,
    register,
    registry,
)
from lakefs.errors import ConfigError, UnsupportedError

FIRST_ROUND = {"jpeg", "png", "webp", "bmp", "gif", "tiff", "wav", "flac", "mp3", "mp4", "lz4", "none"}


def test_first_round_codecs_registered() -> None:
    assert set(codec_names()) == FIRST_ROUND
    assert codec_names() == sorted(codec_names())


@pytest.mark.parametrize("name", sorted(FIRST_ROUND))
def test_row_is_consistent(name: str) -> None:
    codec = get_codec(name)
    assert codec.name == name
    assert codec.chunk_capable == (codec.kind == "bytes")
    for ext in codec.extensions:
        assert codec_for_extension(ext) is codec
        assert codec_for_extension(ext.upper()) is codec


@pytest.mark.parametrize(("ext", "name"), [(".JPG", "jpeg"), ("jpeg", "jpeg"), (".tif", "tiff"),
                                           (".TIFF", "tiff"), (".Png", "png"), (".txt", None)])
def test_codec_for_extension(ext: str, name: str | None) -> None:
    codec = codec_for_extension(ext)
    assert (codec.name if codec else None) == name


def test_canonical_extensions() -> None:
    assert get_codec("jpeg").extension == ".jpg"
    assert get_codec("tiff").extension == ".tif"


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown compression 'jpg'; known: bmp, flac, gif"):
        get_codec("jpg")


def test_detect_unknown_is_none() -> None:
    assert detect(b"") is None
    assert detect(b"{\"label\": 3}") is None


def test_adding_a_codec_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_codecs", dict(registry._codecs))
    monkeypatch.setattr(registry, "_by_extension", dict(registry._by_extension))
    row = Codec(name="qoi", kind="image", lossy=False, extensions=(".qoi",),
                recognize=lambda head: head[:4] == b"qoif",
                probe=lambda data: SampleInfo((int.from_bytes(data[8:12], "big"),
                                               int.from_bytes(data[4:8], "big"), 3), "uint8"))
    register(row)
    data = b"qoif" + (5).to_bytes(4, "big") + (7).to_bytes(4, "big") + b"\x03\x00" + bytes(8)
    assert detect(data) is row and codec_for_extension(".QOI") is row
    assert row.probe(data) == SampleInfo((7, 5, 3), "uint8")
    with pytest.raises(UnsupportedError, match="qoi: decode"):
        row.decode(data)


def test_row_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        Codec(name="x", kind="text", lossy=False, extensions=(".x",))
    with pytest.raises(ValueError, match="lowercase"):
        Codec(name="x", kind="image", lossy=False, extensions=(".X",))


def test_import_is_cheap() -> None:
    code = "import sys, lakefs.compression; print(any(m in sys.modules for m in ('PIL.Image', 'lz4.frame')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
