"""Compression: one registry of codecs and the pass-through / transcode decision.

Each compression is one :class:`Codec` row (name, kind, lossy, extensions, magic-byte
recognition, header probe, decode/encode or compress/decompress); see DESIGN §3.
Rows live in ``images.py`` (jpeg, png, webp, bmp, gif, tiff), ``media.py`` (wav, flac,
mp3, mp4) and ``bytecodecs.py`` (lz4, none); ``prepare.py`` decides what gets stored.

Shape conventions of decoded samples (``probe(data)`` == ``decode(data)`` shape/dtype):

- images: ``(H, W, C)``, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; ``uint8``, or
  ``uint16`` for 16-bit grayscale PNG/TIFF (16-bit colour probes as uint16 but has no
  lossless decoder: writes refuse it). Per-format details in :mod:`lakefs.compression.images`.
- wav: ``(frames, channels)`` with the file's sample dtype (24-bit -> int32).
- flac: ``(frames, channels)`` from STREAMINFO, int16/int32; mp3: ``(frames, channels)``
  float32, frame count from the Xing header or estimated; no decoders for either.
- mp4: ``(frames, H, W, 3)`` uint8 from the first video track, ``()`` without one.

Importing this package loads numpy only; Pillow and lz4 are imported on first use.
"""

from lakefs.compression import bytecodecs, images, media
from lakefs.compression.codec import Codec, SampleInfo
from lakefs.compression.prepare import (
    Prepared,
    check_one_image,
    decode_values,
    encode_array,
    prepare_encoded,
    probe_decodable,
)
from lakefs.compression.registry import (
    codec_for_extension,
    codec_names,
    detect,
    get_codec,
    register,
)

for _codec in (*images.CODECS, *media.CODECS, *bytecodecs.CODECS):
    register(_codec)
del _codec

__all__ = [
    "Codec",
    "Prepared",
    "SampleInfo",
    "check_one_image",
    "codec_for_extension",
    "codec_names",
    "decode_values",
    "detect",
    "encode_array",
    "get_codec",
    "prepare_encoded",
    "probe_decodable",
    "register",
]
