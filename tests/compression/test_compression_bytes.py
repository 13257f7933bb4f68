"""Bytes codecs (lz4, none): round trips, large chunks, damage."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakefs.compression import detect, get_codec
from lakefs.errors import CorruptionError


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000) | st.binary(max_size=20).map(lambda b: b * 300))
def test_lz4_round_trip(data: bytes) -> None:
    lz4 = get_codec("lz4")
    assert lz4.decompress(lz4.compress(data)) == data


def test_lz4_16_mb_chunk() -> None:
    data = os.urandom(4096) * 4096  # 16 MiB, repeats within lz4's 64 KiB window
    lz4 = get_codec("lz4")
    compressed = lz4.compress(data)
    assert len(compressed) < len(data) // 4
    assert lz4.decompress(compressed) == data


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[:-1], lambda b: b[: len(b) // 2], lambda b: b + b"x", lambda b: b"nope" + b[4:],
     lambda b: b[:30] + bytes([b[30] ^ 0x55]) + b[31:]],
    ids=["short-1", "half", "trailing", "magic", "flipped"],
)
def test_lz4_damage_is_corruption(damage) -> None:
    lz4 = get_codec("lz4")
    compressed = lz4.compress(b"0123456789abcdef" * 1000 + os.urandom(64))
    with pytest.raises(CorruptionError, match="lz4"):
        lz4.decompress(damage(compressed))


def test_none_is_identity_and_lz4_is_not_detected_as_media() -> None:
    assert get_codec("none").decompress(get_codec("none").compress(b"abc")) == b"abc"
    assert get_codec("lz4").chunk_capable and get_codec("none").chunk_capable
    assert detect(get_codec("lz4").compress(b"abc" * 10)) is None
