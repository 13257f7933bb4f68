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
    table = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    offset = 14 + 40 + len(table)
    pixels = b"".join(rows)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(pixels), 2835, 2835, colours_used, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + table + pixels
