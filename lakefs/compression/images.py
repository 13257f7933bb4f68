"""Image codecs: header probes written by hand, pixel decode/encode through Pillow.

Probes parse only the header and walk the file's structure (markers, chunks, IFDs) to
catch truncation and damage, so the pass-through path never touches pixels (DESIGN §3).
The probe is the single source of truth for the decoded shape: ``decode`` converts
Pillow's image to the mode that matches the probed ``(channels, dtype)``, so
``decode(data).shape == probe(data).shape`` holds by construction.

Decoded images are ``(H, W, C)``: C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA);
dtype ``uint8``, ``uint16`` for 16-bit grayscale PNG/TIFF, ``float32``/``int32`` for
32-bit grayscale TIFF. Per format:

- jpeg: 1 component -> 1, 3 -> 3, 4 (CMYK/YCCK) -> 3 (converted to RGB). 8-bit only.
- png: gray -> 1, gray+alpha -> 2, RGB -> 3, RGBA -> 4, palette -> 3 (4 with tRNS).
  1/2/4-bit gray is expanded by Pillow to 0..255. 16-bit colour PNGs probe as uint16
  but cannot be decoded (Pillow would cut them to 8 bits): UnsupportedSampleError, and a write
  refuses them (:func:`decode_mode`), as it does uint32 TIFFs.
- gif: first frame only, RGB (4 channels when that frame has a transparent colour).
- bmp: palette images (1, 4, 8 bits, raw or RLE) with an all-gray palette -> 1, other
  palettes / 16 / 24 bit -> 3, 32 bit -> 4 only with a non-zero alpha mask. lakefs looks
  palette colours up itself (Pillow misreads gray palettes); layouts Pillow cannot read
  (BI_ALPHABITFIELDS, other colour masks, > 256 colours) are refused by the probe.
- tiff: classic TIFF, first IFD; gray -> 1, gray+alpha -> 2, RGB -> 3/4, palette, CMYK
  and YCbCr -> 3.
- webp: RGB, or RGBA when the header says the image has alpha.

A file of several images (an animated GIF, PNG or WebP, a multi-page TIFF) decodes to
its first; :func:`frame_count` counts them, so that a transcode refuses to drop the rest.

Exact tensors (masks) read a palette image as its indices instead, (H, W, 1) uint8
(:func:`palette_info`, :func:`decode_palette`): a palette PNG or TIFF, a BMP of 1, 4 or
8 bits per pixel (gray palette or not) and every GIF. webp and jpeg have no palette.

Encoders: jpeg quality 90; png, tiff (uncompressed) and bmp lossless; webp
*lossless* with ``exact`` (so the webp row is marked lossless: without ``exact`` libwebp
zeroes the colour of fully transparent pixels); gif quantises colour to a palette and
is marked lossy.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from lakefs.compression._util import (
    check_decoded,
    corrupt,
    image_channels,
    need,
    riff_end,
)
from lakefs.compression.codec import Codec, SampleInfo
from lakefs.errors import CorruptSampleError, InvalidSampleError, UnsupportedSampleError
from lakefs.format.checksum import crc32

U8, U16 = "uint8", "uint16"

# (channels, dtype) of a decoded array -> the Pillow mode that holds it.
_MODES: dict[tuple[int, str], str] = {
    (1, U8): "L",
    (2, U8): "LA",
    (3, U8): "RGB",
    (4, U8): "RGBA",
    (1, U16): "I;16",
    (1, "int32"): "I",
    (1, "float32"): "F",
}



def decode_mode(info: SampleInfo) -> str | None:
    """The Pillow mode that decodes an image of ``info`` with every value kept, or None
    (16-bit colour, uint32): the one definition of what lakefs decodes, so a write refuses
    exactly the images a read could not give back."""
    return _MODES.get((info.shape[2], info.dtype))


def not_decodable(name: str, info: SampleInfo) -> str:
    """Why an image without a :func:`decode_mode` is refused."""
    return (f"{name}: {info.shape[2]}-channel {info.dtype} images are not supported "
            "(lakefs cannot decode them without reducing the bit depth)")


# --- jpeg ----------------------------------------------------------------------------

# SOFn markers carry the frame header; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


def probe_jpeg(data: bytes) -> SampleInfo:
    """Walk the JPEG marker segments up to the first scan (ITU T.81 B.1)."""
    if data[:3] != b"\xff\xd8\xff":
        raise corrupt("jpeg", "does not start with the SOI marker FFD8")
    pos, frame = 2, None
    while True:
        need(data, pos + 4, "jpeg", "marker segment at byte {}", pos)
        if data[pos] != 0xFF:
            raise corrupt("jpeg", f"expected a marker at byte {pos}, found 0x{data[pos]:02X}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker (B.1.1.2)
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            raise corrupt("jpeg", "EOI marker before any scan")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        need(data, pos + 2 + length, "jpeg", "segment FF{:02X} at byte {}", marker, pos)
        if length < 2:
            raise corrupt("jpeg", f"segment FF{marker:02X} has length {length}")
        if marker in _JPEG_SOF:
            if length < 8:
                raise corrupt("jpeg", "frame header too short")
            frame = struct.unpack_from(">BHHB", data, pos + 4)
        elif marker == 0xDA:  # SOS: entropy-coded data follows
            break
        pos += 2 + length
    if frame is None:
        raise corrupt("jpeg", "scan data before any frame header (SOF)")
    precision, height, width, components = frame
    # Entropy-coded data cannot contain FFD9 (FF is stuffed as FF00), so the last FFD9
    # after the scan header is the EOI. Data after EOI is allowed: phones append motion-
    # photo videos and vendor trailers there, and the bytes are kept as they are.
    if data.rfind(b"\xff\xd9", pos + 2 + length) < 0:
        raise corrupt("jpeg", "no EOI marker FFD9 after the scan data (truncated)")
    if precision != 8:
        raise UnsupportedSampleError(f"jpeg: {precision}-bit samples are not supported")
    if height == 0 or width == 0:
        raise UnsupportedSampleError("jpeg: zero height/width in the frame header (DNL) is not supported")
    if components not in (1, 3, 4):
        raise UnsupportedSampleError(f"jpeg: {components} colour components are not supported")
    return SampleInfo((height, width, 1 if components == 1 else 3), U8)


# --- png -----------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def probe_png(data: bytes) -> SampleInfo:
    """Walk every chunk to IEND, checking each CRC (PNG spec §5.3)."""
    if data[:8] != _PNG_SIGNATURE:
        raise corrupt("png", "bad signature")
    view, pos = memoryview(data), 8
    header, has_idat, has_trns = None, False, False
    while True:
        need(data, pos + 12, "png", "chunk at byte {} (no IEND)", pos)
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            need(data, end, "png", "{} chunk at byte {}", ctype.decode("latin-1"), pos)
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if crc32(view[pos + 4 : end - 4]) != crc:
            raise corrupt("png", f"CRC mismatch in {ctype.decode('latin-1')} chunk at byte {pos}")
        if header is None:
            if ctype != b"IHDR" or length != 13:
                raise corrupt("png", "first chunk is not a 13-byte IHDR")
            header = struct.unpack_from(">IIBB", data, pos + 8)
        elif ctype == b"IDAT":
            has_idat = True
        elif ctype == b"tRNS":
            has_trns = True
        elif ctype == b"IEND":
            break
        pos = end
    width, height, depth, colour = header
    if depth not in _PNG_DEPTHS.get(colour, ()) or width == 0 or height == 0:
        raise corrupt("png", f"invalid IHDR (size {width}x{height}, colour type {colour}, depth {depth})")
    if not has_idat:
        raise corrupt("png", "no IDAT chunk")
    channels = 4 if colour == 3 and has_trns else _PNG_CHANNELS[colour]
    return SampleInfo((height, width, channels), U16 if depth == 16 else U8)


# --- gif -----------------------------------------------------------------------------


def _gif_table_size(flags: int) -> int:
    """Bytes of the colour table a logical screen or image descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    """End of the data sub-blocks starting at ``pos`` (GIF89a §15): sizes up to a 0 byte."""
    while True:
        need(data, pos + 1, "gif", "data sub-block at byte {}", pos)
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _walk_gif(data: bytes) -> tuple[int, bool]:
    """Walk every block after the header up to the 0x3B trailer (GIF89a §17-27):
    (frames, whether the first frame has a transparent colour). Bytes after the trailer
    are kept."""
    pos, frames, transparent = 13 + _gif_table_size(data[10]), 0, False
    while True:
        need(data, pos + 1, "gif", "block at byte {} (no trailer 0x3B)", pos)
        introducer = data[pos]
        if introducer == 0x3B:
            break
        if introducer == 0x21:  # extension: label, then data sub-blocks
            end = _gif_sub_blocks(data, pos + 2)
            if data[pos + 1] == 0xF9 and data[pos + 2] and frames == 0:  # first frame's control
                transparent = bool(data[pos + 3] & 1)
            pos = end
        elif introducer == 0x2C:  # image descriptor, local colour table, LZW code size
            need(data, pos + 10, "gif", "image descriptor at byte {}", pos)
            pos += 10 + _gif_table_size(data[pos + 9])
            need(data, pos + 1, "gif", "image data at byte {}", pos)
            pos = _gif_sub_blocks(data, pos + 1)
            frames += 1
        else:
            raise corrupt("gif", f"unknown block 0x{introducer:02X} at byte {pos}")
    if frames == 0:
        raise corrupt("gif", "no image descriptor")
    return frames, transparent


def probe_gif(data: bytes) -> SampleInfo:
    """Every block checked (:func:`_walk_gif`). Shape is the logical screen; 4 channels
    when the first frame has a transparent colour."""
    need(data, 13, "gif", "header")
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise corrupt("gif", "bad signature")
    width, height = struct.unpack_from("<HH", data, 6)
    if width == 0 or height == 0:
        raise corrupt("gif", f"logical screen is {width}x{height}")
    _frames, transparent = _walk_gif(data)
    return SampleInfo((height, width, 4 if transparent else 3), U8)


# --- bmp -----------------------------------------------------------------------------

_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)
# (bits per pixel, colour masks) of the BI_BITFIELDS layouts Pillow decodes: r, g, b for
# 16 and 24 bits, r, g, b, a for 32 (BmpImagePlugin's SUPPORTED). Others fail every read.
_BMP_BITFIELDS = frozenset({
    (16, (0xF800, 0x7E0, 0x1F)), (16, (0x7C00, 0x3E0, 0x1F)), (24, (0xFF0000, 0xFF00, 0xFF)),
    *((32, masks) for masks in (
        (0xFF0000, 0xFF00, 0xFF, 0), (0xFF000000, 0xFF0000, 0xFF00, 0), (0xFF000000, 0xFF00, 0xFF, 0),
        (0xFF000000, 0xFF0000, 0xFF00, 0xFF), (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
        (0xFF0000, 0xFF00, 0xFF, 0xFF000000), (0xFF000000, 0xFF00, 0xFF, 0xFF0000), (0, 0, 0, 0),
    )),
})
_BMP_RLE_BITS = {1: 8, 2: 4}  # BI_RLE8, BI_RLE4


class _BmpHeader(NamedTuple):
    width: int
    height: int  # positive; a negative height in the file means top-down rows
    bpp: int
    compression: int
    colours: int  # biClrUsed: palette entries, 0 = 2**bpp
    entry: int  # bytes per palette entry
    palette_start: int
    pixel_offset: int


def _bmp_header(data: bytes) -> _BmpHeader:
    """The BITMAPFILEHEADER and DIB header fields lakefs reads (``data`` has >= 54 bytes
    or a 12-byte OS/2 header)."""
    (pixel_offset,) = struct.unpack_from("<I", data, 10)
    (dib_size,) = struct.unpack_from("<I", data, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: no compression, 3-byte palette entries
        width, height, _, bpp = struct.unpack_from("<HHHH", data, 18)
        return _BmpHeader(width, height, bpp, 0, 0, 3, 26, pixel_offset)
    width, height, _, bpp, compression = struct.unpack_from("<iiHHI", data, 18)
    (colours,) = struct.unpack_from("<I", data, 46)
    masks = 12 if dib_size == 40 and compression == 3 else 0  # BI_BITFIELDS masks after a 40-byte header
    return _BmpHeader(width, abs(height), bpp, compression, colours, 4, 14 + dib_size + masks, pixel_offset)


def _bmp_masks(data: bytes, header: _BmpHeader) -> tuple[int, ...]:
    """The BI_BITFIELDS colour masks: r, g, b, and a for 32 bits (0 without a place for it),
    in the DIB header from 52 bytes on, else in the 12 bytes after it."""
    (dib_size,) = struct.unpack_from("<I", data, 14)
    start = 14 + 40 if dib_size >= 52 else header.palette_start - 12
    need(data, start + 12, "bmp", "colour masks")
    masks = struct.unpack_from("<III", data, start)
    if header.bpp == 32:
        masks += struct.unpack_from("<I", data, 14 + 52) if dib_size >= 56 else (0,)
    return masks


def _bmp_palette(data: bytes, header: _BmpHeader) -> np.ndarray:
    """The ``(n, 3)`` RGB entries a pixel index can name: biClrUsed of them (all 2**bpp
    when 0), and only those before the pixel data."""
    count = min(header.colours or 1 << header.bpp, 1 << header.bpp,
                (header.pixel_offset - header.palette_start) // header.entry)
    table = np.frombuffer(data, np.uint8, count * header.entry, header.palette_start)
    return table.reshape(count, header.entry)[:, 2::-1]  # stored as B, G, R(, 0)


def _bmp_rle_end(data: bytes, header: _BmpHeader) -> None:
    """Walk a BI_RLE8/RLE4 stream as Pillow's decoder does, counting the pixels it sets:
    Pillow fails to read a stream that stops before the last pixel, whether cut off or
    ended early by an end-of-bitmap escape (allowed by the spec, unreadable here)."""
    rle4, width = header.compression == 2, header.width
    total, done, x, pos = width * header.height, 0, 0, header.pixel_offset
    while done < total:
        need(data, pos + 2, "bmp", "RLE data at byte {} (no end of bitmap)", pos)
        count, value = data[pos], data[pos + 1]
        pos += 2
        if count:  # a run of `count` pixels
            count = max(0, min(count, width - x))
            done, x = done + count, x + count
        elif value == 0:  # end of line
            done += -done % width
            x = 0
        elif value == 1:  # end of bitmap
            raise UnsupportedSampleError(f"bmp: RLE data that ends before the last pixel ({done} of {total}) "
                                   "is not supported")
        elif value == 2:  # delta: skip right and up
            need(data, pos + 2, "bmp", "RLE delta at byte {}", pos)
            done = min(total, done + data[pos] + data[pos + 1] * width)
            x, pos = done % width, pos + 2
        else:  # `value` literal pixels, padded to a 16-bit boundary of the file
            count = min(total - done, value)
            pos += (count + 1) // 2 if rle4 else count
            need(data, pos, "bmp", "RLE literal run ending at byte {}", pos)
            done, x = done + count, x + value
            pos += pos % 2


def probe_bmp(data: bytes) -> SampleInfo:
    """BITMAPFILEHEADER + DIB header; checks the file size field and pixel array extent,
    and refuses the layouts Pillow cannot decode (which would be stored and never read)."""
    need(data, 26, "bmp", "header")
    file_size, dib_size = struct.unpack_from("<I8xI", data, 2)
    if file_size and file_size > len(data):
        raise corrupt("bmp", f"file size field says {file_size} bytes, file has {len(data)} (truncated)")
    if dib_size not in _BMP_HEADER_SIZES:
        raise corrupt("bmp", f"unknown DIB header size {dib_size}")
    need(data, 14 + dib_size, "bmp", "DIB header")
    header = _bmp_header(data)
    width, height, bpp, compression = header[:4]
    if width <= 0 or height == 0 or bpp not in (1, 4, 8, 16, 24, 32):
        raise corrupt("bmp", f"invalid header (size {width}x{height}, {bpp} bits per pixel)")
    if compression in (0, 3):  # BI_RGB, BI_BITFIELDS: plain rows
        row = (bpp * width + 31) // 32 * 4
        need(data, header.pixel_offset + row * height, "bmp", "pixel array")
    elif _BMP_RLE_BITS.get(compression) == bpp:
        _bmp_rle_end(data, header)
    elif compression in _BMP_RLE_BITS:
        raise corrupt("bmp", f"RLE{_BMP_RLE_BITS[compression]} compression in a {bpp}-bit image")
    else:
        raise UnsupportedSampleError(f"bmp: compression method {compression} is not supported")
    if compression == 3 and (bpp, _bmp_masks(data, header)) not in _BMP_BITFIELDS:
        masks = ", ".join(f"0x{m:X}" for m in _bmp_masks(data, header))
        raise UnsupportedSampleError(f"bmp: {bpp}-bit colour masks {masks} are not supported")
    if bpp <= 8:
        if header.pixel_offset < header.palette_start + header.entry:
            raise corrupt("bmp", f"{bpp}-bit image without a palette (pixel data at byte {header.pixel_offset})")
        if header.colours > 256:
            raise corrupt("bmp", f"palette of {header.colours} colours in a {bpp}-bit image")
        palette = _bmp_palette(data, header)
        gray = bool((palette == palette[:, :1]).all())
        return SampleInfo((height, width, 1 if gray else 3), U8)
    alpha = bpp == 32 and compression == 3 and _bmp_masks(data, header)[3] != 0
    return SampleInfo((height, width, 4 if alpha else 3), U8)


def _bmp_indices(data: bytes) -> np.ndarray:
    """The palette indices of a 1-, 4- or 8-bit BMP, ``(H, W, 1)``. Pillow drops a palette it
    takes for gray (entry i = (i, i, i), or black and white for 2 colours) and reads the
    pixels as gray levels, which are right only for 8-bit files with at least 3 colours: a
    4-bit gray ramp read as garbage or "codec configuration error", an 8-bit black/white
    one all black. A first entry that is not gray keeps Pillow on P at every depth."""
    from PIL import Image

    header = _bmp_header(data)
    patched = bytearray(data)
    patched[header.palette_start : header.palette_start + 3] = b"\x01\x02\x03"
    try:
        with Image.open(io.BytesIO(bytes(patched)), formats=["BMP"]) as image:
            image.load()
            if image.mode != "P":
                raise UnsupportedSampleError(f"bmp: palette image opens as mode {image.mode}, not P")
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise CorruptSampleError(f"corrupt bmp file: {exc}") from exc
    return check_decoded(array, SampleInfo((header.height, header.width, 1), U8), "bmp")


def _decode_bmp(data: bytes) -> np.ndarray:
    """A palette BMP's pixels are its palette's colours (gray levels for a gray palette),
    looked up here rather than by Pillow (:func:`_bmp_indices`); an index past the palette
    is black. Other BMPs decode through Pillow."""
    info = probe_bmp(data)
    header = _bmp_header(data)
    if header.bpp > 8:
        return _decode("bmp", "BMP", probe_bmp, data)
    lookup = np.zeros((256, 3), np.uint8)
    palette = _bmp_palette(data, header)
    lookup[: len(palette)] = palette
    return lookup[_bmp_indices(data)[:, :, 0]][:, :, : info.shape[2]]


# --- tiff ----------------------------------------------------------------------------

_TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TIFF_INT_TYPE = {1: "u1", 3: "u2", 4: "u4", 13: "u4"}


def _tiff_tags(data: bytes, order: str) -> dict[int, np.ndarray]:
    """The integer-valued tags of the first IFD (TIFF 6.0 §2), each as an array."""
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    need(data, ifd + 2, "tiff", "first IFD")
    (count,) = struct.unpack_from(order + "H", data, ifd)
    need(data, ifd + 2 + 12 * count, "tiff", "first IFD entries")
    tags: dict[int, np.ndarray] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, typ, n = struct.unpack_from(order + "HHI", data, entry)
        if typ not in _TIFF_INT_TYPE:
            continue
        size = _TIFF_TYPE_SIZE[typ] * n
        if size <= 4:
            start = entry + 8
        else:
            (start,) = struct.unpack_from(order + "I", data, entry + 8)
            need(data, start + size, "tiff", "values of tag {}", tag)
        dtype = np.dtype(_TIFF_INT_TYPE[typ]).newbyteorder(order)
        tags[tag] = np.frombuffer(data, dtype, n, start).astype(np.int64)
    return tags


def probe_tiff(data: bytes) -> SampleInfo:
    """First IFD of a classic TIFF; checks every strip/tile lies inside the file."""
    need(data, 8, "tiff", "header")
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        raise corrupt("tiff", "bad byte-order header")
    tags = _tiff_tags(data, order)

    def tag(number: int, default: int | None = None) -> int:
        values = tags.get(number)
        if values is None or len(values) == 0:
            if default is None:
                raise corrupt("tiff", f"required tag {number} missing")
            return default
        return int(values[0])

    width, height = tag(256), tag(257)
    bits, samples, photometric = tag(258, 1), tag(277, 1), tag(262)
    sample_format = tag(339, 1)
    offsets, counts = tags.get(273, tags.get(324)), tags.get(279, tags.get(325))
    if offsets is None or counts is None or len(offsets) != len(counts) or len(offsets) == 0:
        raise corrupt("tiff", "missing or inconsistent strip/tile offsets")
    if int((offsets + counts).max()) > len(data):
        raise corrupt("tiff", f"image data extends past the end of the file ({len(data)} bytes): truncated")
    if width == 0 or height == 0:
        raise corrupt("tiff", f"image is {width}x{height}")
    if photometric in (0, 1):
        channels = min(samples, 2)
    elif photometric == 2:
        channels = 4 if samples >= 4 else 3
    elif photometric in (3, 5, 6):
        channels = 3
    else:
        raise UnsupportedSampleError(f"tiff: photometric interpretation {photometric} is not supported")
    dtype = {(1, 1): U8, (8, 1): U8, (16, 1): U16, (32, 1): "uint32", (32, 2): "int32", (32, 3): "float32"}.get(
        (bits, sample_format)
    )
    if dtype is None:
        raise UnsupportedSampleError(f"tiff: {bits}-bit samples of format {sample_format} are not supported")
    return SampleInfo((height, width, channels), dtype)


# --- webp ----------------------------------------------------------------------------


def probe_webp(data: bytes) -> SampleInfo:
    """RIFF size and chunk walk; size and alpha from the VP8 / VP8L / VP8X header."""
    end = riff_end(data, b"WEBP", "webp")
    need(data, 30, "webp", "header")
    pos = 12
    while pos < end:
        need(data, pos + 8, "webp", "chunk header at byte {}", pos)
        (size,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + size + (size & 1)
    if pos != end:
        raise corrupt("webp", "chunk sizes do not add up to the RIFF size")
    fourcc, body = data[12:16], 20
    if fourcc == b"VP8 ":
        if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
            raise corrupt("webp", "bad VP8 start code")
        width, height = struct.unpack_from("<HH", data, body + 6)
        width, height, alpha = width & 0x3FFF, height & 0x3FFF, False
    elif fourcc == b"VP8L":
        if data[body] != 0x2F:
            raise corrupt("webp", "bad VP8L signature")
        (bits,) = struct.unpack_from("<I", data, body + 1)
        width, height, alpha = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    elif fourcc == b"VP8X":
        flags = data[body]
        width = int.from_bytes(data[body + 4 : body + 7], "little") + 1
        height = int.from_bytes(data[body + 7 : body + 10], "little") + 1
        alpha = bool(flags & 0x10)
    else:
        raise corrupt("webp", f"unknown first chunk {fourcc!r}")
    if width == 0 or height == 0:
        raise corrupt("webp", f"image is {width}x{height}")
    return SampleInfo((height, width, 4 if alpha else 3), U8)


# --- frames: animations and pages ----------------------------------------------------


def frame_count(name: str, data: bytes) -> int:
    """How many images a file ``data``, already probed as ``name``, holds: GIF frames,
    APNG frames (acTL, plus the default image when it is not the first frame), animated
    WebP frames (ANMF chunks), TIFF pages (the IFD chain). ``decode`` reads the first
    only, so a transcode would lose the others. Other formats hold one."""
    if name == "gif":
        return _walk_gif(data)[0]
    if name == "png":
        return _png_frames(data)
    if name == "webp":
        return _webp_frames(data)
    if name == "tiff":
        return _tiff_pages(data)
    return 1


def _png_frames(data: bytes) -> int:
    pos, frames, fctl_first, idat = 8, None, False, False
    while pos + 8 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if ctype == b"acTL" and length >= 4:
            (frames,) = struct.unpack_from(">I", data, pos + 8)
        elif ctype == b"fcTL" and not idat:
            fctl_first = True  # the default image is the animation's first frame
        elif ctype == b"IDAT":
            idat = True
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if frames is None:
        return 1
    return max(frames + (0 if fctl_first else 1), 1)


def _webp_frames(data: bytes) -> int:
    if data[12:16] != b"VP8X" or not data[20] & 0x02:  # VP8X animation flag
        return 1
    pos, end, frames = 12, riff_end(data, b"WEBP", "webp"), 0
    while pos + 8 <= end:
        (size,) = struct.unpack_from("<I", data, pos + 4)
        frames += data[pos : pos + 4] == b"ANMF"
        pos += 8 + size + (size & 1)
    return max(frames, 1)


def _tiff_pages(data: bytes) -> int:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    pages, seen = 0, set()
    while ifd and ifd not in seen and ifd + 2 <= len(data):
        seen.add(ifd)
        pages += 1
        (count,) = struct.unpack_from(order + "H", data, ifd)
        if ifd + 6 + 12 * count > len(data):
            break
        (ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * count)
    return max(pages, 1)


# --- decode / encode through Pillow --------------------------------------------------


def _decode(name: str, pil_format: str, probe: Callable[[bytes], SampleInfo], data: bytes) -> np.ndarray:
    """Pixels of the first frame, converted to the mode the probe promised."""
    from PIL import Image

    info = probe(data)
    mode = decode_mode(info)
    if mode is None:
        raise UnsupportedSampleError(not_decodable(name, info))
    try:
        with Image.open(io.BytesIO(data), formats=[pil_format]) as image:
            image.load()
            same = image.mode == mode or (mode in ("I;16", "I") and image.mode.startswith("I"))
            array = np.asarray(image if same else image.convert(mode))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise CorruptSampleError(f"corrupt {name} file: {exc}") from exc
    return check_decoded(array, info, name)


# --- palette images as their indices (exact tensors: masks) ------------------------------


def palette_info(name: str, data: bytes) -> SampleInfo | None:
    """``(H, W, 1)`` uint8 when ``data``, already probed as ``name``, is a palette image,
    else None. In a mask (PASCAL VOC PNGs, Carvana GIFs) the indices are the class values
    and the palette only shows them, so exact tensors keep the indices."""
    if name == "png" and data[25] == 3:  # IHDR colour type 3 (PNG spec §11.2.2)
        width, height = struct.unpack_from(">II", data, 16)
        return SampleInfo((height, width, 1), U8)
    if name == "tiff":
        tags = _tiff_tags(data, "<" if data[:2] == b"II" else ">")
        if 262 in tags and int(tags[262][0]) == 3 and tags.get(277, [1])[0] == 1:  # palette
            return SampleInfo((int(tags[257][0]), int(tags[256][0]), 1), U8)
    if name == "gif":  # always indexed; the shape is the logical screen, as probe_gif's
        width, height = struct.unpack_from("<HH", data, 6)
        return SampleInfo((height, width, 1), U8)
    if name == "bmp":
        header = _bmp_header(data)
        if header.bpp <= 8:
            return SampleInfo((header.height, header.width, 1), U8)
    return None


def decode_palette(name: str, data: bytes) -> np.ndarray:
    """The indices of a palette image (:func:`palette_info` is not None for it)."""
    from PIL import Image

    info = palette_info(name, data)
    if info is None:
        raise UnsupportedSampleError(f"{name}: not a palette image")
    if name == "bmp":
        return _bmp_indices(data)
    try:
        with Image.open(io.BytesIO(data), formats=[name.upper()]) as image:
            image.load()
            # Pillow opens a GIF without a palette, or with the gray ramp, as L: the same bytes.
            if image.mode != "P" and not (name == "gif" and image.mode == "L"):
                raise UnsupportedSampleError(f"{name}: palette image opens as mode {image.mode}, not P")
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise CorruptSampleError(f"corrupt {name} file: {exc}") from exc
    return check_decoded(array, info, name)


def _encode(name: str, pil_format: str, accepts: tuple[tuple[int, str], ...], options: dict,
            array: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, C) array; InvalidSampleError if the format cannot hold it."""
    from PIL import Image

    array, channels = image_channels(np.asarray(array), name)
    if (channels, array.dtype.name) not in accepts:
        allowed = ", ".join(f"{c}x{d}" for c, d in accepts)
        raise InvalidSampleError(
            f"{name} cannot store a {array.dtype.name} image with {channels} channels "
            f"(shape {array.shape}); accepted channels x dtype: {allowed}"
        )
    plane = array[:, :, 0] if channels == 1 else array
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane)).save(out, pil_format, **options)
    return out.getvalue()


def _row(name: str, pil_format: str, probe: Callable[[bytes], SampleInfo], *, lossy: bool,
         extensions: tuple[str, ...], recognize: Callable[[bytes], bool],
         accepts: tuple[tuple[int, str], ...], options: dict,
         decode: Callable[[bytes], np.ndarray] | None = None) -> Codec:
    return Codec(
        name=name, kind="image", lossy=lossy, extensions=extensions, recognize=recognize,
        probe=probe, decode=decode or partial(_decode, name, pil_format, probe),
        encode=partial(_encode, name, pil_format, accepts, options), accepts=accepts,
    )


def _is_bmp(head: bytes) -> bool:
    # "BM" alone is too weak (text can start with it): also require a known DIB size.
    return head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES


_GRAY_COLOUR = ((1, U8), (2, U8), (3, U8), (4, U8))

CODECS: tuple[Codec, ...] = (
    _row("jpeg", "JPEG", probe_jpeg, lossy=True, extensions=(".jpg", ".jpeg", ".jpe", ".jfif"),
         recognize=lambda h: h[:3] == b"\xff\xd8\xff", accepts=((1, U8), (3, U8)),
         options={"quality": 90}),
    _row("png", "PNG", probe_png, lossy=False, extensions=(".png",),
         recognize=lambda h: h[:8] == _PNG_SIGNATURE, accepts=_GRAY_COLOUR + ((1, U16),), options={}),
    _row("webp", "WEBP", probe_webp, lossy=False, extensions=(".webp",),
         recognize=lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", accepts=((3, U8), (4, U8)),
         options={"lossless": True, "exact": True}),
    _row("bmp", "BMP", probe_bmp, lossy=False, extensions=(".bmp", ".dib"), recognize=_is_bmp,
         accepts=((1, U8), (3, U8)), options={}, decode=_decode_bmp),
    _row("gif", "GIF", probe_gif, lossy=True, extensions=(".gif",),
         recognize=lambda h: h[:6] in (b"GIF87a", b"GIF89a"), accepts=((3, U8),), options={}),
    _row("tiff", "TIFF", probe_tiff, lossy=False, extensions=(".tif", ".tiff"),
         recognize=lambda h: h[:4] in (b"II*\x00", b"MM\x00*"),
         accepts=_GRAY_COLOUR + ((1, U16), (1, "float32")), options={}),
)
