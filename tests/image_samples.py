"""Image files lakefs can probe but not decode (16-bit colour PNG, uint32 TIFF), for the
compression and dataset tests: writes must refuse them."""

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
