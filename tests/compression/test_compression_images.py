"""Image codecs: encode/decode round trips, array validation, hand-made damage."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from codec_fixtures import fixture_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from image_samples import animation, bmp_file, palette_bmp, rle_bmp

from lakefs.compression import detect, get_codec, prepare_encoded
from lakefs.compression.images import frame_count
from lakefs.errors import CorruptSampleError, InvalidSampleError, UnsupportedError

IMAGE_CODECS = ["jpeg", "png", "webp", "bmp", "gif", "tiff"]


def smooth(channels: int, dtype: str = "uint8", h: int = 40, w: int = 56) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [x * 4, y * 5, (x + y) * 2, np.full_like(x, 200)]
    image = np.stack(planes[:channels], axis=2) % 256
    return (image * 257 if dtype == "uint16" else image).astype(dtype)


def accepted(name: str) -> list[tuple[int, str]]:
    return list(get_codec(name).accepts)


@pytest.mark.parametrize(
    ("name", "channels", "dtype"),
    [(n, c, d) for n in IMAGE_CODECS for c, d in get_codec(n).accepts],
)
def test_round_trip(name: str, channels: int, dtype: str) -> None:
    codec = get_codec(name)
    array = smooth(channels, dtype)
    data = codec.encode(array)
    assert detect(data) is codec
    info = codec.probe(data)
    decoded = codec.decode(data)
    assert info.shape == decoded.shape == array.shape
    assert info.dtype == decoded.dtype.name == dtype
    if codec.lossy:
        assert np.abs(decoded.astype(int) - array).mean() < 4
    else:
        np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("name", IMAGE_CODECS)
def test_two_dimensional_array_is_one_channel(name: str) -> None:
    codec = get_codec(name)
    if (1, "uint8") not in codec.accepts:
        with pytest.raises(InvalidSampleError, match=name):
            codec.encode(smooth(1)[:, :, 0])
        return
    assert codec.decode(codec.encode(smooth(1)[:, :, 0])).shape == (40, 56, 1)


@pytest.mark.parametrize(
    "array",
    [np.zeros((4, 4, 3), np.float64), np.zeros((4, 4, 5), np.uint8), np.zeros((4,), np.uint8),
     np.zeros((0, 4, 3), np.uint8), np.zeros((2, 4, 4, 3), np.uint8)],
    ids=["float64", "5-channels", "1-d", "empty", "4-d"],
)
@pytest.mark.parametrize("name", IMAGE_CODECS)
def test_encode_rejects_arrays_the_format_cannot_hold(name: str, array: np.ndarray) -> None:
    with pytest.raises(InvalidSampleError, match=name):
        get_codec(name).encode(array)


def test_jpeg_cannot_hold_16_bit() -> None:
    with pytest.raises(InvalidSampleError, match="uint16"):
        get_codec("jpeg").encode(smooth(1, "uint16"))


def _png(width: int, height: int, colour: int, depth: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_16_bit_colour_png_probes_honestly_and_refuses_a_lossy_decode() -> None:
    rows = smooth(3, "uint16", 3, 4).astype(">u2")
    data = _png(4, 3, 2, 16, b"".join(b"\x00" + row.tobytes() for row in rows))
    codec = get_codec("png")
    assert codec.probe(data).shape == (3, 4, 3) and codec.probe(data).dtype == "uint16"
    with pytest.raises(UnsupportedError, match="16"):
        codec.decode(data)


def test_16_bit_gray_png_keeps_every_value() -> None:
    array = np.arange(0, 65536, 97, dtype=np.uint16)[:672].reshape(24, 28, 1)
    codec = get_codec("png")
    np.testing.assert_array_equal(codec.decode(codec.encode(array)), array)


def test_lossless_webp_keeps_colour_under_transparent_pixels() -> None:
    """The webp row is marked lossless, so RGB under alpha=0 must survive (masks)."""
    array = smooth(4)
    array[0, :, 3] = 0
    codec = get_codec("webp")
    np.testing.assert_array_equal(codec.decode(codec.encode(array)), array)


def test_png_crc_damage_is_detected() -> None:
    data = bytearray(fixture_bytes("rgb.png"))
    data[40] ^= 0xFF  # inside the IDAT body
    with pytest.raises(CorruptSampleError, match="CRC"):
        get_codec("png").probe(bytes(data))


def test_png_without_iend_is_truncated() -> None:
    data = fixture_bytes("rgb.png")[:-12]
    with pytest.raises(CorruptSampleError, match="png.*IEND"):
        get_codec("png").probe(data)


def test_jpeg_without_eoi_is_truncated_and_trailing_data_is_kept() -> None:
    codec, data = get_codec("jpeg"), fixture_bytes("rgb.jpg")
    with pytest.raises(CorruptSampleError, match="EOI"):
        codec.probe(data[:-2])
    # Motion photos append a video after EOI: still a valid JPEG.
    assert codec.probe(data + b"\x00\x00\x00\x18ftypmp42" + bytes(100)).shape == (24, 32, 3)


def test_bmp_file_size_field_is_checked() -> None:
    data = fixture_bytes("rgb.bmp")
    with pytest.raises(CorruptSampleError, match="bmp.*file size"):
        get_codec("bmp").probe(data[:-10])


GRAY_RAMP = [(i, i, i) for i in range(256)]
BLACK_WHITE = [(0, 0, 0), (255, 255, 255)]
COLOURS = [(i * 37 % 256, i * 91 % 256, 255 - i) for i in range(256)]


def _bmp_cases() -> dict[str, tuple[bytes, np.ndarray]]:
    """Hand-built palette BMPs and the pixels they show (the palette entry of each index)."""
    rng = np.random.default_rng(7)
    cases = {}
    for bits in (1, 4, 8):
        indices = rng.integers(0, 1 << bits, (5, 11)).astype(np.uint8)
        indices[1, 2:8] = indices[1, 2]  # a run, for RLE
        inverted = [(255 - v,) * 3 for v in range(0, 256, 255 // ((1 << bits) - 1))]
        palettes = {"ramp": GRAY_RAMP[: 1 << bits], "inverted": inverted, "colour": COLOURS[: 1 << bits]}
        for name, palette in palettes.items():
            cases[f"{bits}bit-{name}"] = (palette_bmp(indices, bits, palette), indices, palette)
            if bits > 1:
                cases[f"rle{bits}-{name}"] = (rle_bmp(indices, bits, palette), indices, palette)
        two = indices % 2  # a 2-colour palette, as biClrUsed says
        cases[f"{bits}bit-black-white"] = (palette_bmp(two, bits, BLACK_WHITE, colours_used=2), two, BLACK_WHITE)
    out = {}
    for name, (data, indices, palette) in cases.items():
        pixels = np.array(palette, np.uint8)[indices]
        gray = all(r == g == b for r, g, b in palette)
        out[name] = (data, pixels[:, :, :1] if gray else pixels)
    return out


BMP_CASES = _bmp_cases()


@pytest.mark.parametrize("name", BMP_CASES)
def test_palette_bmp_decodes_to_its_palette(name: str) -> None:
    """Pillow reads a BMP whose palette it takes for gray (the ramp i -> (i, i, i), or
    black and white) as gray levels: a 4-bit ramp failed ("codec configuration error") or
    read garbage, an 8-bit or 4-bit black/white one read all black. Stored as-is, such a
    file could never be read back; transcoded, it was refused or wrong."""
    data, pixels = BMP_CASES[name]
    codec = get_codec("bmp")
    assert codec.probe(data).shape == pixels.shape
    np.testing.assert_array_equal(codec.decode(data), pixels)
    png = prepare_encoded(data, "png", exact=False)  # transcoded, the same pixels
    assert png.transcoded and png.info.shape == pixels.shape
    np.testing.assert_array_equal(get_codec("png").decode(png.data), pixels)


def test_bmp_of_16_24_and_32_bits_decodes_to_its_pixels() -> None:
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    bgr_rows = [row[:, ::-1].tobytes().ljust(16, b"\0") for row in rgb[::-1]]
    rgba = np.concatenate([rgb, rng.integers(0, 256, (3, 5, 1), dtype=np.uint8)], axis=2)
    bgra = b"".join(row[:, [2, 1, 0, 3]].tobytes() for row in rgba[::-1])
    five = rng.integers(0, 32, (3, 4, 3))  # 5-bit channels, scaled to 8 bits
    pixels555 = (five[:, :, 0] << 10 | five[:, :, 1] << 5 | five[:, :, 2]).astype("<u2")
    six = rng.integers(0, 64, (3, 4))
    pixels565 = (five[:, :, 0] << 11 | six << 5 | five[:, :, 2]).astype("<u2")
    rgb565 = np.stack([five[:, :, 0] * 255 // 31, six * 255 // 63, five[:, :, 2] * 255 // 31], axis=2)
    cases = [
        (bmp_file(b"".join(bgr_rows), 5, 3, 24), rgb),
        (bmp_file(b"".join(bgr_rows[::-1]), 5, -3, 24), rgb),  # top-down rows
        (bmp_file(bgra, 5, 3, 32), rgb),  # BI_RGB: the fourth byte is not alpha
        (bmp_file(bgra, 5, 3, 32, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), dib_size=124), rgba),
        (bmp_file(pixels555[::-1].tobytes(), 4, 3, 16), five * 255 // 31),
        (bmp_file(pixels565[::-1].tobytes(), 4, 3, 16, compression=3, masks=(0xF800, 0x7E0, 0x1F)), rgb565),
    ]
    codec = get_codec("bmp")
    for data, pixels in cases:
        assert codec.probe(data).shape == pixels.shape
        np.testing.assert_array_equal(codec.decode(data), pixels)


def test_bmp_index_past_its_palette_is_black() -> None:
    data = palette_bmp(np.array([[0, 1, 5]]), 8, [(40, 40, 40), (200, 200, 200)], colours_used=2)
    assert get_codec("bmp").decode(data)[:, :, 0].tolist() == [[40, 200, 0]]


def _bmp_refused() -> dict[str, tuple[bytes, type, str]]:
    indices = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.arange(60, dtype=np.uint8).reshape(3, 5, 4).tobytes()
    many = bytearray(palette_bmp(indices, 8, COLOURS))
    struct.pack_into("<I", many, 46, 300)  # biClrUsed
    rle8_in_4bit = bytearray(rle_bmp(indices, 8, COLOURS))
    struct.pack_into("<H", rle8_in_4bit, 28, 4)  # biBitCount
    cut = bytearray(rle_bmp(indices, 8, COLOURS))[:-12]
    struct.pack_into("<I", cut, 2, 0)  # no file size to give the cut away
    return {
        "alpha-bitfields": (bmp_file(rgba, 5, 3, 32, compression=6, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000),
                                     dib_size=124), UnsupportedError, "compression method 6"),
        "other-masks": (bmp_file(rgba, 5, 3, 32, compression=3, masks=(0xFF00, 0xFF0000, 0xFF, 0xFF000000),
                                 dib_size=124), UnsupportedError, "colour masks"),
        "300-colours": (bytes(many), CorruptSampleError, "palette of 300 colours"),
        "rle8-in-4-bits": (bytes(rle8_in_4bit), CorruptSampleError, "RLE8 compression in a 4-bit image"),
        "rle-cut": (bytes(cut), CorruptSampleError, "truncated RLE data"),
        "rle-ends-early": (bmp_file(bytes([4, 7, 0, 0, 0, 1]), 4, 3, 8, palette=COLOURS, compression=1),
                           UnsupportedError, "ends before the last pixel"),
        "no-palette": (bmp_file(palette_bmp(indices, 8, [])[54:], 4, 3, 8), CorruptSampleError, "without a palette"),
    }


BMP_REFUSED = _bmp_refused()


@pytest.mark.parametrize("name", BMP_REFUSED)
def test_bmp_pillow_cannot_read_is_refused_at_write(name: str) -> None:
    """The probe took these, so they were stored as-is, and then every read failed (or,
    for RLE8 data in a 4-bit file, read wrong)."""
    data, error, message = BMP_REFUSED[name]
    for target in ("bmp", "png"):
        with pytest.raises(error, match=message):
            prepare_encoded(data, target, exact=False)


def test_gif_trailer_is_checked() -> None:
    with pytest.raises(CorruptSampleError, match="0x3B"):
        get_codec("gif").probe(fixture_bytes("rgb.gif")[:-1])


def _animated_gif() -> bytes:
    from PIL import Image

    frames = [Image.fromarray(np.roll(smooth(3), 7 * i, axis=1)).convert("P") for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=40,
                   comment=b"made by lakefs tests;;;")
    return out.getvalue()


def test_gif_cut_anywhere_is_corrupt() -> None:
    """Cuts that happen to end in 0x3B were taken for the trailer; the probe walks the blocks."""
    codec, data = get_codec("gif"), _animated_gif()
    assert codec.probe(data).shape == codec.decode(data).shape == (40, 56, 3)
    assert any(data[n - 1] == 0x3B for n in range(1, len(data) - 1))  # the damage this is about
    for n in range(len(data)):
        with pytest.raises(CorruptSampleError, match="gif"):
            codec.probe(data[:n])
    assert codec.probe(data + bytes(8)).shape == (40, 56, 3)  # bytes after the trailer are kept


def _apng_after_its_default_image() -> bytes:
    """An APNG whose default image (IDAT) is not one of its 2 animation frames: 3 images."""
    from PIL import Image

    images = [Image.fromarray(np.full((8, 9, 3), 30 * i, np.uint8)) for i in range(3)]
    out = io.BytesIO()
    images[0].save(out, "PNG", save_all=True, append_images=images[1:], default_image=True)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [*(animation(fmt, frames) for fmt in ("GIF", "PNG", "WEBP", "TIFF") for frames in (1, 4)),
     _apng_after_its_default_image(), *(fixture_bytes(name) for name in ("rgb.jpg", "rgb.bmp", "rgb.png", "rgb.tif",
                                                                         "rgb_lossy.webp", "rgb.gif"))],
    ids=[*(f"{fmt}-{n}" for fmt in ("gif", "png", "webp", "tiff") for n in (1, 4)), "apng-default-image",
         "jpeg", "bmp", "png", "tiff", "webp", "gif"],
)
def test_frame_count_is_pillows(data: bytes) -> None:
    """Frames a transcode would lose (it writes the first only), counted from the file's
    structure, as Pillow counts them."""
    from PIL import Image

    codec = detect(data)
    codec.probe(data)
    with Image.open(io.BytesIO(data)) as image:
        assert frame_count(codec.name, data) == getattr(image, "n_frames", 1)


def test_a_tiff_whose_pages_loop_is_counted_once_each() -> None:
    data = bytearray(animation("TIFF", 2))
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    (second,) = struct.unpack_from("<I", data, first + 2 + 12 * count)
    (count,) = struct.unpack_from("<H", data, second)
    struct.pack_into("<I", data, second + 2 + 12 * count, first)  # the last page points to the first
    assert frame_count("tiff", bytes(data)) == 2


def test_text_starting_with_bm_is_not_a_bmp() -> None:
    assert detect(b"BMW 3 series, 2004, blue, 120000 km, full service history\n") is None


@pytest.mark.parametrize("name", IMAGE_CODECS)
def test_garbage_after_magic_is_corrupt_not_a_crash(name: str) -> None:
    codec = get_codec(name)
    data = codec.encode(smooth(3))
    head = data[:16]
    rubbish = head + bytes(range(256)) * 4
    with pytest.raises((CorruptSampleError, UnsupportedError)):
        codec.probe(rubbish)
        codec.decode(rubbish)


def test_decode_shape_equals_probe_for_pillow_modes() -> None:
    """Palette, 1-bit and LA files from Pillow decode to the shape the probe promised."""
    from PIL import Image

    cases = [("P", "PNG"), ("1", "PNG"), ("LA", "PNG"), ("P", "BMP"), ("1", "BMP"), ("P", "TIFF"),
             ("1", "TIFF"), ("LA", "TIFF"), ("L", "GIF"), ("RGBA", "GIF"), ("L", "WEBP"), ("RGBA", "WEBP")]
    for mode, fmt in cases:
        out = io.BytesIO()
        Image.fromarray(smooth(3)).convert(mode).save(out, fmt)
        data = out.getvalue()
        codec = detect(data)
        assert codec is not None, (mode, fmt)
        assert codec.decode(data).shape == codec.probe(data).shape, (mode, fmt)


@settings(max_examples=40, deadline=None)
@given(arrays(st.sampled_from([np.uint8, np.uint16]),
              st.tuples(st.integers(1, 17), st.integers(1, 17), st.sampled_from([1, 2, 3, 4]))))
def test_png_round_trip_property(array: np.ndarray) -> None:
    codec = get_codec("png")
    if (array.shape[2], array.dtype.name) not in codec.accepts:
        with pytest.raises(InvalidSampleError):
            codec.encode(array)
        return
    np.testing.assert_array_equal(codec.decode(codec.encode(array)), array)
