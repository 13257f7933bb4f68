"""Real camera JPEGs (shipped in scikit-learn's wheel): pass-through, probe, transcode."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest

from lakefs.compression import detect, get_codec, prepare_encoded
from lakefs.errors import CorruptSampleError

sklearn = pytest.importorskip("sklearn")
IMAGES = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")


@pytest.fixture(params=["china.jpg", "flower.jpg"])
def photo(request: pytest.FixtureRequest) -> bytes:
    with open(os.path.join(IMAGES, request.param), "rb") as f:
        return f.read()


def test_camera_jpeg_passes_through_unchanged(photo: bytes) -> None:
    prepared = prepare_encoded(photo, "jpeg", exact=False, allow_transcode=False)
    assert prepared.data == photo and not prepared.transcoded
    assert prepared.info.shape == (427, 640, 3) and prepared.info.dtype == "uint8"
    assert get_codec("jpeg").decode(photo).shape == prepared.info.shape


def test_camera_jpeg_truncated_anywhere_is_corrupt(photo: bytes) -> None:
    for cut in (100, len(photo) // 3, len(photo) - 1):
        with pytest.raises(CorruptSampleError):
            prepare_encoded(photo[:cut], "jpeg", exact=False)


def test_camera_jpeg_into_png_tensor_is_exact(photo: bytes) -> None:
    prepared = prepare_encoded(photo, "png", exact=True)
    assert prepared.transcoded and prepared.source == "jpeg"
    np.testing.assert_array_equal(get_codec("png").decode(prepared.data), get_codec("jpeg").decode(photo))


def crop_70kb(photo: bytes) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(photo))
    for size in range(200, 640, 10):
        out = io.BytesIO()
        image.crop((0, 0, size, min(size, 427))).save(out, "JPEG", quality=95)
        if out.tell() >= 70_000:
            return out.getvalue()
    return photo


def test_probe_speed_on_a_70kb_crop(photo: bytes) -> None:
    """Reports the pass-through cost (no assertion on time: machines differ)."""
    crop = crop_70kb(photo)
    codec = detect(crop)
    assert codec is not None and codec.name == "jpeg"
    runs = 2000
    start = time.perf_counter()
    for _ in range(runs):
        prepare_encoded(crop, "jpeg", exact=False)
    per_call = (time.perf_counter() - start) / runs
    start = time.perf_counter()
    for _ in range(20):
        codec.decode(crop)
    per_decode = (time.perf_counter() - start) / 20
    print(f"\n{len(crop)} byte JPEG: pass-through {per_call * 1e6:.1f} us, decode {per_decode * 1e6:.0f} us")
    assert prepare_encoded(crop, "jpeg", exact=False).data == crop
