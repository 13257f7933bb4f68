"""The pass-through / transcode decision (DESIGN §3).

A file's bytes written into a tensor whose ``sample_compression`` is ``target``:

- same format as the target: probed (header + structure check) and stored unchanged,
  unless lakefs could not decode it back (a 16-bit colour PNG): refused;
- another image format into an image tensor: decoded and re-encoded (logged at INFO on
  ``lakefs.compression``), unless that would lose information the tensor must keep;
- anything else: refused with a message saying what the bytes look like.

Policy for ``exact`` tensors (masks, labels, any bool tensor): a lossy *target* is refused; a lossy
*source* (a JPEG written into a png mask tensor) is allowed, because re-encoding
losslessly keeps exactly the values the file decodes to. Transcodes between lossless
formats are refused when the target cannot hold the source's bit depth (16-bit PNG into
webp). Whatever the tensor, a transcode loses nothing but a lossy encoder's rounding: a
target without alpha (jpeg, bmp, gif) refuses an image with a pixel that is not fully
opaque (an RGBA or LA PNG, a palette with a transparent colour in use); an alpha channel
all 255 holds nothing, so it is dropped (logged), except in exact tensors, where the
sample would read back with another shape. A transcode writes one frame, so an animation
or a multi-page TIFF is refused (a tensor of its own format keeps the file as it is), as
it is by a tensor that stores arrays (:func:`check_one_image`).
Gray into an RGB-only format (webp) is widened (no loss), except in exact tensors.
In exact tensors a palette image's values are its indices (a PASCAL VOC mask), so it
is probed, decoded and transcoded as one channel of indices (:func:`decode_values`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lakefs.compression.codec import Codec, SampleInfo
from lakefs.compression.images import decode_mode, decode_palette, frame_count, not_decodable, palette_info
from lakefs.compression.registry import detect, get_codec
from lakefs.errors import TranscodeRefusedError, UndecodableError, UnsupportedSampleError

log = logging.getLogger("lakefs.compression")

# Channel adaptations tried, in order, when the target cannot store the source's channel
# count: (new channel count, source channel per output channel, drops alpha).
_ADAPT: dict[int, tuple[tuple[int, tuple[int, ...], bool], ...]] = {
    1: ((3, (0, 0, 0), False),),
    2: ((4, (0, 0, 0, 1), False), (1, (0,), True), (3, (0, 0, 0), True)),
    3: (),
    4: ((3, (0, 1, 2), True),),
}


@dataclass(frozen=True)
class Prepared:
    """Bytes ready to store, what they decode to, and how they were obtained."""

    data: bytes
    info: SampleInfo
    transcoded: bool
    source: str | None


def describe(data: bytes) -> str:
    """A short guess at what unrecognised bytes are, for error messages."""
    if not data:
        return "it is empty"
    codec = detect(data)
    if codec is not None:
        return f"it looks like {codec.name} {codec.kind}"
    head = bytes(data[:512])
    try:
        head.decode("utf-8")
        return "it looks like text"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and b"\x00" not in head:  # a character cut at 512 bytes
            return "it looks like text"
    return f"unknown format, starts with {head[:8].hex(' ')}"


def prepare_encoded(data: bytes, target: str, *, exact: bool, allow_transcode: bool = True) -> Prepared:
    """Decide pass-through or transcode for a file's bytes written into a ``target`` tensor."""
    codec = get_codec(target)
    source = detect(data)
    if codec.kind == "bytes":
        stored = codec.compress(data)
        return Prepared(stored, SampleInfo((len(data),), "uint8"), False, source.name if source else None)
    if source is not None and source.name == codec.name:
        return Prepared(bytes(data), probe_decodable(codec, data, exact=exact), False, source.name)
    if source is None or source.kind != codec.kind:
        raise UndecodableError(f"content is not a {target} {codec.kind}: {describe(data)}")
    if codec.kind != "image":
        raise TranscodeRefusedError(
            f"a {source.name} file cannot go into a {target} tensor: {codec.kind} is stored as-is, "
            f"lakefs does not transcode {codec.kind}; convert it first or use a {source.name} tensor"
        )
    return _transcode_image(data, source, codec, exact=exact, allow_transcode=allow_transcode)


def _transcode_image(data: bytes, source: Codec, codec: Codec, *, exact: bool, allow_transcode: bool) -> Prepared:
    what = f"{source.name} -> {codec.name}"
    if not allow_transcode:
        raise TranscodeRefusedError(f"transcode {what} refused: transcoding is disabled by configuration")
    if exact and codec.lossy:
        raise TranscodeRefusedError(
            f"transcode {what} refused: {codec.name} is lossy and this tensor needs exact values"
        )
    info = probe_values(source, data, exact=exact)
    check_pixel_limit(source.name, info)
    check_one_image(source, data, f"transcode {what} refused")
    channels, dtype = info.shape[2], info.dtype
    plan = _plan_channels(channels, dtype, codec)
    if plan is None:
        raise TranscodeRefusedError(
            f"transcode {what} refused: {codec.name} cannot hold a {channels}-channel {dtype} image "
            "without losing information"
        )
    new_channels, index, drops_alpha = plan
    if drops_alpha and exact:
        raise TranscodeRefusedError(f"transcode {what} refused: {codec.name} would drop the alpha channel")
    if exact and new_channels != channels:
        raise TranscodeRefusedError(
            f"transcode {what} refused: {codec.name} has no {channels}-channel images, so this mask "
            f"would read back as {new_channels} channels; use a png, tiff or bmp tensor"
        )
    array = decode_values(source, data, exact=exact)
    if drops_alpha:
        see_through = int(np.count_nonzero(array[:, :, channels - 1] != 255))
        if see_through:
            raise TranscodeRefusedError(
                f"transcode {what} refused: {codec.name} would drop the alpha channel, and "
                f"{see_through} of {array.shape[0] * array.shape[1]} pixels are not fully opaque; "
                "store it in a png, webp or tiff tensor"
            )
    if new_channels != channels:
        array = np.ascontiguousarray(array[:, :, list(index)])
    stored = codec.encode(array)
    height, width = info.shape[:2]
    log.info("transcoded %s (%dx%d, %d channels%s): %d -> %d bytes", what, width, height, channels,
             ", opaque alpha dropped" if drops_alpha else "", len(data), len(stored))
    return Prepared(stored, codec.probe(stored), True, source.name)


def check_one_image(codec: Codec, data: bytes, refused: str) -> None:
    """Refuse a file of several images (an animation, a multi-page TIFF) where only its
    first would be kept: a transcode writes one frame, an array tensor decodes one."""
    frames = frame_count(codec.name, data)
    if frames > 1:
        raise TranscodeRefusedError(
            f"{refused}: this {codec.name} holds {frames} images (animation frames or pages) and only "
            f"the first would be kept; store it in a {codec.name} tensor, which keeps the file as it is, "
            "or write each frame as a file of its own"
        )


def probe_values(codec: Codec, data: bytes, *, exact: bool) -> SampleInfo:
    """``codec.probe``, except that an exact tensor sees a palette image as its indices."""
    info = codec.probe(data)
    return (exact and palette_info(codec.name, data)) or info


def probe_decodable(codec: Codec, data: bytes, *, exact: bool) -> SampleInfo:
    """:func:`probe_values`, refusing an image lakefs could not decode back (a 16-bit
    colour PNG, a uint32 TIFF): stored, it could never be read."""
    info = probe_values(codec, data, exact=exact)
    if codec.kind == "image":
        if decode_mode(info) is None:
            raise UndecodableError(not_decodable(codec.name, info))
        check_pixel_limit(codec.name, info)
    return info


def check_pixel_limit(name: str, info: SampleInfo) -> None:
    """Refuse an image Pillow would not open: a small file may claim a huge image (a PNG
    of one colour), and Pillow refuses more than 2 x ``MAX_IMAGE_PIXELS`` (a decompression
    bomb), so stored it could never be decoded, nor transcoded."""
    limit = _pixel_limit()
    height, width = info.shape[:2]
    if limit is not None and height * width > limit:
        raise UnsupportedSampleError(
            f"{name}: {width}x{height} is more than the {limit} pixels the image decoder opens "
            "(PIL.Image.MAX_IMAGE_PIXELS x 2); store it in a bytes tensor")


_PIL_IMAGE = None  # PIL.Image once imported (a function-level import costs ~2 µs a call)


def _pixel_limit() -> int | None:
    """Pillow's decompression-bomb limit: it refuses to open larger images."""
    global _PIL_IMAGE
    if _PIL_IMAGE is None:
        from PIL import Image

        _PIL_IMAGE = Image
    limit = _PIL_IMAGE.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def decode_values(codec: Codec, data: bytes, *, exact: bool) -> np.ndarray:
    """``codec.decode``, except that an exact tensor reads a palette image's indices."""
    if exact and codec.kind == "image" and palette_info(codec.name, data) is not None:
        return decode_palette(codec.name, data)
    return codec.decode(data)


def _plan_channels(channels: int, dtype: str, codec: Codec) -> tuple[int, tuple[int, ...], bool] | None:
    """How to fit (channels, dtype) into ``codec``: (channels, channel index, drops alpha)."""
    if (channels, dtype) in codec.accepts:
        return channels, tuple(range(channels)), False
    for new_channels, index, drops_alpha in _ADAPT.get(channels, ()):
        if (new_channels, dtype) in codec.accepts:
            return new_channels, index, drops_alpha
    return None


def encode_array(array: np.ndarray, target: str, *, exact: bool) -> Prepared:
    """Encode an array written through the API (``tensor.append(np_array)``) to ``target``.

    Image arrays are (H, W) or (H, W, C); bool arrays (binary masks) are stored as 0/1
    uint8. Bytes codecs compress the array's raw C-order bytes. Raises InvalidSampleError
    for a shape/dtype the format cannot hold, TranscodeRefusedError for a lossy target
    when ``exact``, UnsupportedError where lakefs has no encoder (flac, mp3, mp4).
    """
    codec = get_codec(target)
    array = np.asarray(array)
    if codec.kind == "bytes":
        raw = np.ascontiguousarray(array).tobytes()
        return Prepared(codec.compress(raw), SampleInfo(array.shape, array.dtype.name), False, None)
    if exact and codec.lossy:
        raise TranscodeRefusedError(f"{target} is lossy and this tensor needs exact values")
    if array.dtype == np.bool_ and codec.kind == "image":
        array = array.astype(np.uint8)
    stored = codec.encode(array)
    return Prepared(stored, codec.probe(stored), False, None)
