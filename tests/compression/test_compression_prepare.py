"""The pass-through / transcode decision and the API encode path."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from codec_fixtures import fixture_array, fixture_bytes
from image_samples import COLOURS, VOC, animation, palette_bmp, palette_file, png16, tiff_uint32, with_alpha
from PIL import Image

from lakefs.compression import decode_values, detect, encode_array, get_codec, prepare_encoded
from lakefs.errors import (
    ConfigError,
    CorruptSampleError,
    InvalidSampleError,
    TranscodeRefusedError,
    UndecodableError,
    UnsupportedError,
    UnsupportedSampleError,
)


def test_png_into_jpeg_is_transcoded_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    png = fixture_bytes("rgb.png")
    with caplog.at_level(logging.INFO, logger="lakefs.compression"):
        prepared = prepare_encoded(png, "jpeg", exact=False)
    assert prepared.transcoded and prepared.source == "png"
    assert prepared.data[:3] == b"\xff\xd8\xff"
    assert prepared.info == get_codec("jpeg").probe(prepared.data)
    assert prepared.info.shape == (24, 32, 3)
    decoded = get_codec("jpeg").decode(prepared.data)
    assert np.abs(decoded.astype(int) - fixture_array("rgb.png")).mean() < 4
    [record] = [r for r in caplog.records if r.name == "lakefs.compression"]
    assert record.levelno == logging.INFO and "png -> jpeg" in record.getMessage()


def test_lossy_target_refused_for_exact_data() -> None:
    with pytest.raises(TranscodeRefusedError, match="lossy"):
        prepare_encoded(fixture_bytes("gray.png"), "jpeg", exact=True)


def test_every_transcode_refused_when_disabled() -> None:
    with pytest.raises(TranscodeRefusedError, match="disabled"):
        prepare_encoded(fixture_bytes("rgb.png"), "tiff", exact=False, allow_transcode=False)


def test_lossy_source_into_lossless_exact_tensor_keeps_decoded_values() -> None:
    jpeg = fixture_bytes("rgb.jpg")
    prepared = prepare_encoded(jpeg, "png", exact=True)
    assert prepared.transcoded and prepared.source == "jpeg"
    np.testing.assert_array_equal(get_codec("png").decode(prepared.data), get_codec("jpeg").decode(jpeg))


@pytest.mark.parametrize("target", ["tiff", "png"])
def test_16_bit_png_into_16_bit_capable_format_is_exact(target: str) -> None:
    source = fixture_bytes("gray16.png" if target == "tiff" else "gray16.tif")
    prepared = prepare_encoded(source, target, exact=True)
    assert prepared.info.dtype == "uint16" and prepared.transcoded
    np.testing.assert_array_equal(get_codec(target).decode(prepared.data), fixture_array("gray16.png"))


@pytest.mark.parametrize("target", ["webp", "bmp", "gif", "jpeg"])
def test_16_bit_into_8_bit_only_format_is_refused(target: str) -> None:
    with pytest.raises(TranscodeRefusedError, match="uint16"):
        prepare_encoded(fixture_bytes("gray16.png"), target, exact=False)


def test_alpha_is_not_dropped_into_a_lossless_format() -> None:
    with pytest.raises(TranscodeRefusedError, match="alpha"):
        prepare_encoded(fixture_bytes("rgba.png"), "bmp", exact=False)


def _transparent_gif() -> bytes:
    """A GIF whose transparent colour (index 0) is the left half's."""
    image = Image.fromarray(np.repeat(np.arange(6, dtype=np.uint8) // 3, 5)[None].repeat(4, 0), "P")
    image.putpalette([0, 0, 0, 200, 100, 50])
    out = io.BytesIO()
    image.save(out, "GIF", transparency=0, optimize=False)
    return out.getvalue()


@pytest.mark.parametrize("target", ["jpeg", "bmp", "gif"])
@pytest.mark.parametrize(
    "source",
    [with_alpha("RGBA"), with_alpha("LA"), fixture_bytes("palette_trns.png"), fixture_bytes("rgba.png"),
     fixture_bytes("rgba_lossless.webp"), with_alpha("RGBA", fmt="TIFF"), _transparent_gif()],
    ids=["rgba-png", "la-png", "palette-trns-png", "rgba-png-fixture", "rgba-webp", "rgba-tiff", "gif-trns"],
)
def test_transparent_pixels_are_never_dropped(source: bytes, target: str) -> None:
    """An RGBA PNG with transparent pixels was stored in a jpeg tensor as its colours,
    the transparency gone, logged at INFO only (QA): a target without alpha refuses it."""
    if detect(source).name == target:  # its own format: kept as it is, transparency and all
        kept = prepare_encoded(source, target, exact=False)
        assert (kept.data, kept.transcoded) == (source, False)
        return
    with pytest.raises(TranscodeRefusedError, match=rf"{target} would drop the alpha channel, and \d+ of \d+ "
                       "pixels are not fully opaque; store it in a png, webp or tiff tensor"):
        prepare_encoded(source, target, exact=False)


def test_the_transparent_pixels_are_counted() -> None:
    with pytest.raises(TranscodeRefusedError, match="600 of 1200 pixels are not fully opaque"):
        prepare_encoded(with_alpha("RGBA"), "jpeg", exact=False)


@pytest.mark.parametrize(("mode", "target", "channels"),
                         [("RGBA", "jpeg", 3), ("RGBA", "bmp", 3), ("RGBA", "gif", 3), ("LA", "jpeg", 1),
                          ("LA", "bmp", 1)])
def test_an_opaque_alpha_channel_is_dropped_and_logged(caplog: pytest.LogCaptureFixture, mode: str, target: str,
                                                       channels: int) -> None:
    """Alpha 255 everywhere holds nothing: it is dropped (into a lossless bmp too, which
    refused every alpha channel), and the colours are kept."""
    source = with_alpha(mode, opaque=True)
    with caplog.at_level(logging.INFO, logger="lakefs.compression"):
        prepared = prepare_encoded(source, target, exact=False)
    assert prepared.transcoded and prepared.info.shape == (30, 40, channels)
    assert "opaque alpha dropped" in caplog.text
    if target == "bmp":
        np.testing.assert_array_equal(get_codec("bmp").decode(prepared.data),
                                      get_codec("png").decode(source)[:, :, :channels])


def test_a_gif_transparent_colour_no_pixel_uses_is_no_alpha() -> None:
    image = Image.fromarray(np.ones((4, 6), np.uint8), "P")
    image.putpalette([0, 0, 0, 200, 100, 50])
    out = io.BytesIO()
    image.save(out, "GIF", transparency=0, optimize=False)
    assert get_codec("gif").probe(out.getvalue()).shape == (4, 6, 4)
    assert prepare_encoded(out.getvalue(), "jpeg", exact=False).info.shape == (4, 6, 3)


def test_an_opaque_alpha_channel_is_kept_in_exact_tensors() -> None:
    """A mask would read back with another number of channels."""
    with pytest.raises(TranscodeRefusedError, match="bmp would drop the alpha channel$"):
        prepare_encoded(with_alpha("RGBA", opaque=True), "bmp", exact=True)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("target", ["jpeg", "png", "webp", "bmp", "gif", "tiff"])
@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_an_animation_or_multi_page_tiff_is_not_cut_to_its_first_frame(fmt: str, target: str, exact: bool) -> None:
    """A 4-frame GIF copied into a jpeg tensor was stored as its first frame (QA): a
    transcode writes one frame, so it is refused; a tensor of the file's own format keeps
    it as it is."""
    source = animation(fmt)
    if fmt.lower() == target:
        prepared = prepare_encoded(source, target, exact=exact)
        assert prepared.data == source and not prepared.transcoded
        return
    if exact and get_codec(target).lossy:
        return  # refused as lossy, before anything else
    with pytest.raises(TranscodeRefusedError, match=f"this {fmt.lower()} holds 3 images .* store it in a "
                       f"{fmt.lower()} tensor"):
        prepare_encoded(source, target, exact=exact)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_a_single_frame_file_saved_as_an_animation_is_transcoded(fmt: str) -> None:
    assert prepare_encoded(animation(fmt, frames=1), "jpeg", exact=False).transcoded


def test_gray_into_rgb_only_format_is_widened_exactly() -> None:
    prepared = prepare_encoded(fixture_bytes("gray.png"), "webp", exact=False)
    decoded = get_codec("webp").decode(prepared.data)
    gray = fixture_array("gray.png")
    assert decoded.shape == (24, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel : channel + 1], gray)


@pytest.mark.parametrize("data", [fixture_bytes("gray.png"), palette_file("PNG"), palette_file("BMP")],
                         ids=["gray", "palette-png", "palette-bmp"])
def test_one_channel_mask_into_webp_is_refused(data: bytes) -> None:
    """webp has no gray images: a 1-channel mask was stored widened and read back as
    (H, W, 3), not the shape written."""
    with pytest.raises(TranscodeRefusedError, match="webp has no 1-channel images.*3 channels"):
        prepare_encoded(data, "webp", exact=True)
    assert prepare_encoded(fixture_bytes("rgb.png"), "webp", exact=True).info.shape == (24, 32, 3)


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [(b"hello, this is a plain text file\n" * 10, "text"), (b"", "empty"),
     (bytes(range(7, 200)), "unknown format"), ('caf\u00e9 ' .encode() * 200, "text")],
    ids=["ascii", "empty", "binary", "utf8"],
)
def test_non_images_are_undecodable_with_a_clear_message(data: bytes, looks_like: str) -> None:
    with pytest.raises(UndecodableError, match=f"not a jpeg image.*{looks_like}") as info:
        prepare_encoded(data, "jpeg", exact=False)
    assert not isinstance(info.value, CorruptSampleError)


def test_audio_into_image_tensor_is_undecodable() -> None:
    with pytest.raises(UndecodableError, match="looks like wav audio"):
        prepare_encoded(fixture_bytes("stereo16.wav"), "png", exact=False)


@pytest.mark.parametrize(("source", "target"), [("stereo16.flac", "wav"), ("stereo16.wav", "mp3"),
                                                ("stereo.mp3", "flac")])
def test_audio_is_never_transcoded(source: str, target: str) -> None:
    with pytest.raises(TranscodeRefusedError, match="does not transcode audio"):
        prepare_encoded(fixture_bytes(source), target, exact=False)


def test_truncated_jpeg_into_jpeg_tensor_is_corrupt() -> None:
    with pytest.raises(CorruptSampleError, match="jpeg.*EOI"):
        prepare_encoded(fixture_bytes("rgb.jpg")[:-100], "jpeg", exact=False)


def test_truncated_png_into_jpeg_tensor_is_corrupt_not_transcoded() -> None:
    with pytest.raises(CorruptSampleError, match="png"):
        prepare_encoded(fixture_bytes("rgb.png")[:-5], "jpeg", exact=False)


def test_unknown_compression_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown compression 'jpg2'; known: bmp, flac"):
        prepare_encoded(b"x", "jpg2", exact=False)


def test_bytes_target_compresses_any_file() -> None:
    data = b"any file at all " * 100
    prepared = prepare_encoded(data, "lz4", exact=True)
    assert get_codec("lz4").decompress(prepared.data) == data
    assert prepared.info.shape == (len(data),) and not prepared.transcoded
    assert prepare_encoded(data, "none", exact=True).data == data


# --- encode_array --------------------------------------------------------------------


def test_encode_array_into_jpeg() -> None:
    array = fixture_array("rgb.png")
    prepared = encode_array(array, "jpeg", exact=False)
    assert prepared.info.shape == array.shape and not prepared.transcoded and prepared.source is None


def test_encode_array_refuses_lossy_for_exact() -> None:
    with pytest.raises(TranscodeRefusedError):
        encode_array(np.zeros((4, 4), np.uint8), "jpeg", exact=True)


def test_encode_array_bool_mask_into_png() -> None:
    mask = np.eye(6, dtype=bool)
    prepared = encode_array(mask, "png", exact=True)
    decoded = get_codec("png").decode(prepared.data)
    assert prepared.info.shape == (6, 6, 1)
    np.testing.assert_array_equal(decoded[:, :, 0], mask.astype(np.uint8))


@pytest.mark.parametrize(("array", "target"), [(np.zeros((4, 4, 3), np.uint16), "jpeg"),
                                               (np.zeros((4, 4, 2), np.uint8), "jpeg"),
                                               (np.zeros((4, 4, 3), np.int64), "png"),
                                               (np.zeros((3, 3, 3), np.int16), "wav")])
def test_encode_array_rejects_bad_arrays(array: np.ndarray, target: str) -> None:
    with pytest.raises(InvalidSampleError, match=target):
        encode_array(array, target, exact=False)


@pytest.mark.parametrize("target", ["flac", "mp3", "mp4"])
def test_encode_array_without_encoder_is_unsupported(target: str) -> None:
    with pytest.raises(UnsupportedError, match=target):
        encode_array(np.zeros((10, 2), np.int16), target, exact=False)


def test_encode_array_lz4_keeps_raw_bytes() -> None:
    array = np.arange(1000, dtype=np.int32).reshape(10, 100)
    prepared = encode_array(array, "lz4", exact=True)
    assert prepared.info.shape == (10, 100) and prepared.info.dtype == "int32"
    assert get_codec("lz4").decompress(prepared.data) == array.tobytes()


GRAY_RAMP = [(i, i, i) for i in range(256)]  # Pillow opens such a GIF or BMP as L, not P
_EXTENSION = {"PNG": ".png", "TIFF": ".tif", "GIF": ".gif", "BMP": ".bmp"}


@pytest.mark.parametrize("source", ["PNG", "TIFF", "GIF", "BMP"])
@pytest.mark.parametrize("target", ["png", "tiff", "bmp"])
def test_palette_image_in_exact_tensor_keeps_its_indices(source: str, target: str) -> None:
    """Masks decoded to palette colours lost their class indices, also when transcoded
    (palette GIF and BMP did until they were read as indices too)."""
    data = palette_file(source)
    prepared = prepare_encoded(data, target, exact=True)
    assert prepared.info.shape == (2, 3, 1) and prepared.info.dtype == "uint8"
    assert prepared.transcoded == (get_codec(target).extension != _EXTENSION[source])
    np.testing.assert_array_equal(decode_values(get_codec(target), prepared.data, exact=True)[:, :, 0], VOC)


FOUR_BIT = np.array([[0, 1, 2, 3, 4], [15, 14, 13, 0, 7]], np.uint8)
ONE_BIT = np.array([[0, 1, 1, 0, 1], [1, 0, 0, 0, 1]], np.uint8)
SMALL_PALETTES = {
    "gif-gray-ramp": (palette_file("GIF", palette=GRAY_RAMP), VOC),
    "bmp-inverted-gray": (palette_file("BMP", palette=[(255 - i,) * 3 for i in range(256)]), VOC),
    "bmp4-gray-ramp": (palette_bmp(FOUR_BIT, 4, GRAY_RAMP[:16]), FOUR_BIT),
    "bmp4-colour": (palette_bmp(FOUR_BIT, 4, [(i * 16, 99, 255 - i) for i in range(16)]), FOUR_BIT),
    "bmp8-two-colours": (palette_bmp(ONE_BIT, 8, [(0, 0, 0), (255, 255, 255)], colours_used=2), ONE_BIT),
    "bmp1-white-black": (palette_bmp(ONE_BIT, 1, [(255, 255, 255), (0, 0, 0)]), ONE_BIT),
}


@pytest.mark.parametrize("name", SMALL_PALETTES)
def test_gray_and_small_palettes_are_read_as_indices(name: str) -> None:
    """Pillow reads a GIF or BMP with a gray palette as gray levels: not the indices for an
    inverted gray palette or a white/black 1-bit one, all black for an 8-bit file with two
    colours, and not at all for a 4-bit gray ramp ("codec configuration error")."""
    data, indices = SMALL_PALETTES[name]
    codec = get_codec(name[:3] if name.startswith("gif") else "bmp")
    prepared = prepare_encoded(data, codec.name, exact=True)
    assert prepared.data == data and prepared.info.shape == (*indices.shape, 1)
    np.testing.assert_array_equal(decode_values(codec, data, exact=True)[:, :, 0], indices)
    png = prepare_encoded(data, "png", exact=True)  # and transcoded: the indices as gray levels
    np.testing.assert_array_equal(get_codec("png").decode(png.data)[:, :, 0], indices)


@pytest.mark.parametrize("source", ["PNG", "GIF", "BMP"])
def test_palette_image_in_plain_image_tensor_is_colour(source: str) -> None:
    codec = get_codec(source.lower())
    prepared = prepare_encoded(palette_file(source), codec.name, exact=False)
    assert prepared.info.shape == (2, 3, 3)
    values = decode_values(codec, prepared.data, exact=False)
    assert values[1, 0].tolist() == list(COLOURS[15])


@pytest.mark.parametrize(("data", "target"), [(png16(2), "png"), (png16(3), "png"), (png16(4), "png"),
                                              (tiff_uint32(), "tiff")], ids=["la16", "rgb16", "rgba16", "u32tif"])
def test_an_image_lakefs_cannot_decode_is_refused_at_write(data: bytes, target: str) -> None:
    """It was stored as-is, and then every read of it failed."""
    codec = get_codec(target)
    with pytest.raises(UnsupportedError, match="not supported"):
        codec.decode(data)
    with pytest.raises(UndecodableError, match="images are not supported"):
        prepare_encoded(data, target, exact=False)


def test_a_16_bit_gray_png_is_still_stored() -> None:
    prepared = prepare_encoded(png16(1), "png", exact=False)
    assert prepared.info.dtype == "uint16" and not prepared.transcoded


def test_every_pair_an_image_codec_encodes_decodes() -> None:
    """Writes refuse what decode_mode says reads cannot give back; what encode writes must
    never be among it."""
    from lakefs.compression.codec import SampleInfo
    from lakefs.compression.images import CODECS, decode_mode

    for codec in CODECS:
        for channels, dtype in codec.accepts:
            assert decode_mode(SampleInfo((1, 1, channels), dtype)) is not None, (codec.name, channels, dtype)


def test_an_image_past_the_decoders_pixel_limit_is_refused_at_write(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path) -> None:
    """A small file may claim a huge image (one colour compresses to nothing); Pillow
    refuses to open more than 2 x MAX_IMAGE_PIXELS, so such a sample could be stored and
    never read (found by review). Here the limit is lowered instead of making 180M pixels."""

    import lakefs

    small, big = io.BytesIO(), io.BytesIO()
    Image.new("L", (5, 5), 7).save(small, format="PNG")
    Image.new("L", (20, 20), 7).save(big, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # opens at most 100 pixels
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="png")
    with pytest.raises(UnsupportedSampleError, match="20x20"):
        t.write_file("big.png", big.getvalue())
    with pytest.raises(UnsupportedSampleError):
        ds.create_tensor("jpegs", htype="image", sample_compression="jpeg").write_file("big.png", big.getvalue())
    t.write_file("small.png", small.getvalue())
    assert [s.filename for s in t.iter_samples()] == ["small.png"]
    assert t["small"].numpy().shape == (5, 5, 1)
