"""Audio/video codecs: WAV round trips, container probes and their damage checks."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from codec_fixtures import fixture_bytes

from lakefs.compression import detect, get_codec
from lakefs.errors import CorruptSampleError, InvalidSampleError, UnsupportedError


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_round_trip(dtype: str, channels: int) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=(301, channels), endpoint=True, dtype=dtype)
    else:
        array = rng.standard_normal((301, channels)).astype(dtype)
    codec = get_codec("wav")
    data = codec.encode(array)
    assert detect(data) is codec
    assert codec.probe(data).shape == (301, channels) and codec.probe(data).dtype == dtype
    np.testing.assert_array_equal(codec.decode(data), array)


def test_wav_mono_vector_becomes_one_channel() -> None:
    data = get_codec("wav").encode(np.arange(10, dtype=np.int16))
    assert get_codec("wav").decode(data).shape == (10, 1)


def test_wav_odd_sized_data_is_padded_and_still_valid() -> None:
    codec = get_codec("wav")
    data = codec.encode(np.arange(5, dtype=np.uint8))
    assert len(data) % 2 == 0
    np.testing.assert_array_equal(codec.decode(data)[:, 0], np.arange(5))


def test_wav_rejects_int64() -> None:
    with pytest.raises(InvalidSampleError, match="wav"):
        get_codec("wav").encode(np.zeros(4, np.int64))


def test_wav_data_chunk_past_end_is_corrupt() -> None:
    data = bytearray(fixture_bytes("stereo16.wav"))
    riff = len(data) - 8
    data[4:8] = struct.pack("<I", riff)  # consistent RIFF size...
    data[40:44] = struct.pack("<I", 999_999)  # ...but a data chunk claiming too much
    with pytest.raises(CorruptSampleError, match="wav.*data chunk"):
        get_codec("wav").probe(bytes(data))


def test_flac_streaminfo_shape_and_no_decoder() -> None:
    codec = get_codec("flac")
    data = fixture_bytes("stereo16.flac")
    assert codec.probe(data).shape == (4000, 2)
    with pytest.raises(UnsupportedError, match="flac: decode"):
        codec.decode(data)


def test_flac_without_audio_frames_is_corrupt() -> None:
    data = fixture_bytes("stereo16.flac")
    # Keep only the metadata blocks (everything before the first frame sync).
    sync = data.index(b"\xff\xf8", 42)
    with pytest.raises(CorruptSampleError, match="flac"):
        get_codec("flac").probe(data[:sync])


def test_mp3_frame_walk_and_id3() -> None:
    codec = get_codec("mp3")
    data = fixture_bytes("stereo.mp3")
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # ID3v2 with a 10-byte body
    assert detect(tag + data) is codec
    assert codec.probe(tag + data) == codec.probe(data)
    assert codec.probe(data + b"TAG" + bytes(125)) == codec.probe(data)  # ID3v1 trailer
    with pytest.raises(CorruptSampleError, match="mp3.*Xing.*truncated"):
        codec.probe(data[:-1])


def test_mp3_without_xing_header_walks_every_frame() -> None:
    codec = get_codec("mp3")
    data = fixture_bytes("stereo.mp3")
    first = data.index(b"Info") - 4 - 17  # frame sync of the Info frame (MPEG-2.5 stereo side info)
    assert codec.recognize(data[first:])
    length = 144 * 32000 // 2 // 8000  # MPEG-2.5 layer III frame size at 32 kbit/s, 8 kHz
    plain = data[first + length :]  # drop the Info frame: only audio frames remain
    assert codec.probe(plain) == codec.probe(data)  # Xing counts the audio frames, not itself
    with pytest.raises(CorruptSampleError, match="mp3.*runs past the end"):
        codec.probe(plain[:-1])
    with pytest.raises(CorruptSampleError, match="mp3.*sync"):
        codec.probe(plain + b"garbage!")


def test_mp4_box_walk() -> None:
    codec = get_codec("mp4")
    data = fixture_bytes("clip.mp4")
    assert codec.probe(data).shape == (12, 48, 64, 3)
    with pytest.raises(CorruptSampleError, match="mp4"):
        codec.probe(data + b"\x00\x00")  # trailing bytes that are not a box
    with pytest.raises(UnsupportedError):
        codec.decode(data)


def test_heif_is_not_mp4() -> None:
    assert detect(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") is None
