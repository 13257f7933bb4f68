"""Bytes-to-bytes codecs: lz4 (sample or chunk compression) and none.

lz4 uses the LZ4 *frame* format (not raw blocks): it is self-describing (magic
04 22 4D 18, content size), streams chunks of any size (chunks reach 16 MB) and carries
an xxHash32 content checksum, so a damaged chunk fails loudly instead of decoding to
wrong bytes. Failures raise :class:`~lakefs.errors.CorruptionError` (EIO): the input to
``decompress`` is always stored data.
"""

from __future__ import annotations

from lakefs.compression.codec import Codec
from lakefs.errors import CorruptionError

_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def lz4_compress(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data, store_size=True, content_checksum=True)


def lz4_decompress(data: bytes) -> bytes:
    import lz4.frame

    if bytes(data[:4]) != _LZ4_MAGIC:
        raise CorruptionError("corrupt lz4 data: missing frame magic 04224D18")
    try:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out = decompressor.decompress(data)
    except RuntimeError as exc:  # lz4 reports every frame error as RuntimeError
        raise CorruptionError(f"corrupt lz4 data: {exc}") from exc
    if not decompressor.eof or decompressor.unused_data:
        raise CorruptionError("corrupt lz4 data: truncated frame or trailing bytes")
    return out


def _identity(data: bytes) -> bytes:
    return bytes(data)


CODECS: tuple[Codec, ...] = (
    Codec(name="lz4", kind="bytes", lossy=False, extensions=(".lz4",), chunk_capable=True,
          recognize=lambda h: h[:4] == _LZ4_MAGIC, compress=lz4_compress, decompress=lz4_decompress),
    Codec(name="none", kind="bytes", lossy=False, extensions=(), chunk_capable=True,
          compress=_identity, decompress=_identity),
)
