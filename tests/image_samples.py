"""Image files for the compression, dataset and mount tests: files lakefs can probe but
not decode (16-bit colour PNG, uint32 TIFF), which writes must refuse, and palette masks
(PASCAL VOC style: the palette index of a pixel is its class)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def png16(channels: int) -> bytes:
    """A 2x3 16-bit PNG (colour type by channels): it probes, but lakefs cannot decode it."""
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = np.arange(6 * channels, dtype=">u2").reshape(2, 3 * channels) * 1000
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 3, 2, 16, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tiff_uint32() -> bytes:
    """A uint32 TIFF: Pillow's int32 TIFF with its SampleFormat tag set to unsigned."""
    out = io.BytesIO()
    Image.fromarray(np.array([[1, 2], [3, 70000]], np.int32)).save(out, "TIFF")
    sample_format = b"\x53\x01\x03\x00\x01\x00\x00\x00\x02\x00"  # tag 339, SHORT, 1, signed
    assert out.getvalue().count(sample_format) == 1
    return out.getvalue().replace(sample_format, sample_format[:8] + b"\x01\x00")


#: Class indices of a small palette mask, 0 (background) to 255 (VOC's "void").
VOC = np.array([[0, 1, 2], [15, 20, 255]], np.uint8)
#: A palette whose colours are nothing like the indices.
COLOURS = [(i * 37 % 256, i * 91 % 256, i * 13 % 256) for i in range(256)]


def palette_file(fmt: str, indices: np.ndarray = VOC, palette: list | None = None) -> bytes:
    """A palette ("P") image written by Pillow as ``fmt`` (PNG, GIF, BMP, TIFF). GIF is
    written without ``optimize``, which would renumber the indices to the colours used."""
    image = Image.fromarray(indices, "P")
    image.putpalette([v for rgb in (palette or COLOURS) for v in rgb])
    out = io.BytesIO()
    image.save(out, fmt, **({"optimize": False} if fmt == "GIF" else {}))
    return out.getvalue()


def bmp_file(pixels: bytes, width: int, height: int, bits: int, *, palette: list = (), colours_used: int = 0,
             compression: int = 0, masks: tuple = (), dib_size: int = 40) -> bytes:
    """A BMP around ``pixels`` (rows as stored): BITMAPINFOHEADER or, with ``dib_size`` 56
    or 124, a V3/V5 header holding ``masks``; a 40-byte header puts 3 masks after it.
    A negative ``height`` is top-down rows."""
    dib = struct.pack("<IiiHHIIiiII", dib_size, width, height, 1, bits, compression, len(pixels), 2835, 2835,
                      colours_used, 0)
    if dib_size > 40:
        dib += struct.pack(f"<{len(masks)}I", *masks).ljust(dib_size - 40, b"\0")
    elif masks:
        dib += struct.pack(f"<{len(masks)}I", *masks)
    table = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    offset = 14 + len(dib) + len(table)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + table + pixels


def palette_bmp(indices: np.ndarray, bits: int, palette: list, colours_used: int = 0) -> bytes:
    """A bottom-up BI_RGB palette BMP of ``bits`` (1, 4, 8) per pixel: Pillow writes only
    8-bit ones with a 256-entry palette."""
    height, width = indices.shape
    stride = (bits * width + 31) // 32 * 4
    per_byte = 8 // bits
    rows = []
    for row in indices[::-1].astype(np.uint32):
        padded = np.zeros(-(-width // per_byte) * per_byte, np.uint32)
        padded[:width] = row
        groups = padded.reshape(-1, per_byte)
        shifts = bits * np.arange(per_byte - 1, -1, -1, dtype=np.uint32)
        rows.append(bytes((groups << shifts).sum(axis=1).astype(np.uint8)).ljust(stride, b"\0"))
    return bmp_file(b"".join(rows), width, height, bits, palette=palette, colours_used=colours_used)


def rle_bmp(indices: np.ndarray, bits: int, palette: list) -> bytes:
    """A BI_RLE8 (``bits`` 8) or BI_RLE4 (4) BMP: runs of a repeated index as encoded
    pairs, other stretches of 3 or more pixels in absolute mode (Pillow writes neither)."""
    height, width = indices.shape
    out = bytearray()
    for row in indices[::-1].tolist():
        x = 0
        while x < width:
            run = 1
            while x + run < width and row[x + run] == row[x] and run < 255:
                run += 1
            single = 1
            while x + single < width and row[x + single] != row[x + single - 1] and single < 255:
                single += 1
            if x + single < width:  # the last pixel of the stretch starts the next run
                single -= 1
            if run == 1 and single >= 3:  # (0, 1) and (0, 2) are escapes, not absolute runs
                values = row[x : x + single]
                if bits == 4:
                    values = [(values[i] << 4) | (values[i + 1] if i + 1 < single else 0) for i in range(0, single, 2)]
                out += bytes((0, single, *values)) + b"\0" * (len(values) % 2)  # word aligned
                x += single
            else:
                out += bytes((run, row[x] * 17 if bits == 4 else row[x]))
                x += run
        out += b"\0\0"  # end of line
    out += b"\0\1"  # end of bitmap
    return bmp_file(bytes(out), width, height, bits, palette=palette, compression={8: 1, 4: 2}[bits])


def with_alpha(mode: str = "RGBA", *, opaque: bool = False, fmt: str = "PNG") -> bytes:
    """A 30x40 image of ``mode`` (RGBA, LA) whose left half is fully transparent (alpha 0),
    or, ``opaque``, with alpha 255 everywhere: what a jpeg tensor must refuse, or may take."""
    pixels = np.zeros((30, 40, 4), np.uint8)
    pixels[..., :3] = np.arange(40, dtype=np.uint8)[None, :, None] * 6
    pixels[..., 3] = 255
    if not opaque:
        pixels[:, :20, 3] = 0
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, fmt)
    return out.getvalue()


def animation(fmt: str, frames: int = 3) -> bytes:
    """``frames`` different 20x30 images in one file of ``fmt``: an animated GIF, PNG
    (APNG) or WebP, or a multi-page TIFF."""
    images = [Image.fromarray(np.full((20, 30, 3), 10 + 40 * i, np.uint8)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()
