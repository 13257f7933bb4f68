"""Every golden file: recognised, probed, decoded and passed through as recorded."""

from __future__ import annotations

import numpy as np
import pytest
from codec_fixtures import EXPECTED, fixture_array

from lakefs.compression import codec_for_extension, detect, get_codec, prepare_encoded
from lakefs.errors import CorruptSampleError, UnsupportedError


def test_every_media_codec_has_a_golden_file() -> None:
    media = {get_codec(n).name for n in ("jpeg", "png", "webp", "bmp", "gif", "tiff", "wav", "flac", "mp3", "mp4")}
    assert media <= {meta["codec"] for meta in EXPECTED.values()}


def test_detect_names_the_recorded_codec(golden) -> None:
    name, data, meta = golden
    codec = detect(data)
    assert codec is not None and codec.name == meta["codec"]
    assert codec_for_extension("." + name.rsplit(".", 1)[1]).name == meta["codec"]


def test_recognition_is_unambiguous(golden) -> None:
    from lakefs.compression import codec_names

    _, data, meta = golden
    claimants = [n for n in codec_names() if get_codec(n).recognize(data[:64])]
    assert claimants == [meta["codec"]]


def test_probe_matches_recorded_info(golden) -> None:
    _, data, meta = golden
    info = get_codec(meta["codec"]).probe(data)
    assert info.shape == tuple(meta["shape"])
    assert info.dtype == meta["dtype"]


def test_decode_matches_recorded_array(golden) -> None:
    name, data, meta = golden
    codec = get_codec(meta["codec"])
    if not meta["decodes"]:
        with pytest.raises(UnsupportedError):
            codec.decode(data)
        return
    array = codec.decode(data)
    info = codec.probe(data)
    assert array.shape == info.shape and array.dtype.name == info.dtype
    expected = fixture_array(name).reshape(info.shape)
    if meta.get("lossy"):
        assert np.abs(array.astype(np.int64) - expected).max() <= 3
    else:
        np.testing.assert_array_equal(array, expected)


def test_pass_through_is_byte_identical(golden) -> None:
    _, data, meta = golden
    for exact in (True, False):
        prepared = prepare_encoded(data, meta["codec"], exact=exact, allow_transcode=False)
        assert prepared.data == data
        assert prepared.transcoded is False and prepared.source == meta["codec"]
    # (exact tensors see a palette image as one channel of indices: test_compression_prepare)
    assert prepared.info == get_codec(meta["codec"]).probe(data)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_is_corrupt(golden, keep: float) -> None:
    _, data, meta = golden
    cut = data[: int(len(data) * keep)]
    with pytest.raises(CorruptSampleError, match=meta["codec"]):
        prepare_encoded(cut, meta["codec"], exact=False)


def test_one_byte_short_is_corrupt(golden) -> None:
    _, data, meta = golden
    # (stereo16.flac is one frame, so STREAMINFO's frame size pins its length exactly.)
    with pytest.raises(CorruptSampleError):
        get_codec(meta["codec"]).probe(data[:-1])
