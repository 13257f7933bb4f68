"""Audio and video codecs: container probes by hand; only WAV has a decoder/encoder.

Audio and video are stored as they are (DESIGN §3): there are no transcoders, so the
probe is what matters. Shapes:

- wav: ``(frames, channels)`` with the sample dtype: 8-bit PCM ``uint8``, 16-bit
  ``int16``, 24-bit ``int32`` (sign-extended, not rescaled), 32-bit ``int32``, IEEE
  float ``float32``/``float64``. ``encode`` writes 44100 Hz PCM/float WAV.
- flac: ``(frames, channels)`` from STREAMINFO, dtype ``int16`` for <=16-bit streams
  else ``int32`` (what a decoder would return). No decoder is installed:
  ``decode`` raises UnsupportedSampleError.
- mp3: ``(frames, channels)`` where frames is the Xing/Info frame count times the
  samples per frame, or for CBR files without one, an estimate from the file size;
  both include the encoder delay/padding. dtype ``float32``. No decoder.
- mp4: ``(frames, height, width, 3)`` ``uint8`` from the first video track (tkhd size,
  stsz sample count); ``()`` when there is no video track (e.g. m4a). No decoder.

Truncation checks: RIFF sizes (wav), the Xing/Info stream size or else a walk of every
frame header to the end of file (mp3: ID3v1/APE tags may follow), the
top-level box walk (mp4). FLAC frames carry no length, so a truncated FLAC is caught
only when STREAMINFO's frame sizes prove the audio too short for its sample count
(any cut of a single-frame file; a cut of more than a frame or so of a longer one).
"""

from __future__ import annotations

import struct

import numpy as np

from lakefs.compression._util import corrupt, need, riff_end
from lakefs.compression.codec import Codec, SampleInfo
from lakefs.errors import InvalidSampleError, UnsupportedSampleError

# --- wav -----------------------------------------------------------------------------

_WAV_PCM, _WAV_FLOAT, _WAV_EXTENSIBLE = 1, 3, 0xFFFE
_WAV_DTYPES = {(_WAV_PCM, 8): "uint8", (_WAV_PCM, 16): "int16", (_WAV_PCM, 24): "int32",
               (_WAV_PCM, 32): "int32", (_WAV_FLOAT, 32): "float32", (_WAV_FLOAT, 64): "float64"}
_WAV_RATE = 44100


def _wav_layout(data: bytes) -> tuple[SampleInfo, int, int, int]:
    """(info, data offset, data size, bits per sample) from the RIFF chunks."""
    end = riff_end(data, b"WAVE", "wav")
    pos, fmt, body = 12, None, None
    while pos + 8 <= end:
        ctype, size = struct.unpack_from("<4sI", data, pos)
        if ctype == b"fmt ":
            need(data, pos + 8 + 16, "wav", "fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
            if fmt[0] == _WAV_EXTENSIBLE and size >= 40:  # sub-format GUID starts with the real tag
                fmt = (struct.unpack_from("<H", data, pos + 8 + 24)[0],) + fmt[1:]
        elif ctype == b"data":
            need(data, pos + 8 + size, "wav", "data chunk")
            body = (pos + 8, size)
        pos += 8 + size + (size & 1)
    if fmt is None or body is None:
        raise corrupt("wav", "missing fmt or data chunk")
    tag, channels, _rate, _byte_rate, block_align, bits = fmt
    dtype = _WAV_DTYPES.get((tag, bits))
    if dtype is None or channels == 0 or block_align != channels * bits // 8:
        raise UnsupportedSampleError(
            f"wav: format tag {tag} with {bits}-bit samples, {channels} channels is not supported")
    return SampleInfo((body[1] // block_align, channels), dtype), body[0], body[1], bits


def probe_wav(data: bytes) -> SampleInfo:
    return _wav_layout(data)[0]


def decode_wav(data: bytes) -> np.ndarray:
    info, start, size, bits = _wav_layout(data)
    frames, channels = info.shape
    count = frames * channels
    if bits == 24:  # three little-endian bytes -> int32 with sign extension
        raw = np.frombuffer(data, np.uint8, count * 3, start).reshape(-1, 3).astype(np.int32)
        values = raw[:, 0] | raw[:, 1] << 8 | raw[:, 2] << 16
        samples = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.int32)
    else:
        samples = np.frombuffer(data, np.dtype(info.dtype).newbyteorder("<"), count, start).astype(info.dtype)
    return samples.reshape(info.shape)


def encode_wav(array: np.ndarray) -> bytes:
    """(frames,) or (frames, channels) uint8/int16/int32/float32/float64 -> a 44100 Hz WAV."""
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    tags = {"uint8": _WAV_PCM, "int16": _WAV_PCM, "int32": _WAV_PCM, "float32": _WAV_FLOAT, "float64": _WAV_FLOAT}
    if array.ndim != 2 or array.shape[1] == 0 or array.dtype.name not in tags:
        raise InvalidSampleError(
            f"wav needs a (frames,) or (frames, channels) array of {', '.join(tags)}; "
            f"got {array.dtype.name} of shape {array.shape}"
        )
    channels, width = array.shape[1], array.dtype.itemsize
    body = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    fmt = struct.pack("<HHIIHH", tags[array.dtype.name], channels, _WAV_RATE,
                      _WAV_RATE * channels * width, channels * width, width * 8)
    pad = b"\x00" * (len(body) & 1)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


# --- flac ----------------------------------------------------------------------------


def probe_flac(data: bytes) -> SampleInfo:
    """fLaC, STREAMINFO first, metadata blocks up to the first frame sync (RFC 9639 §8)."""
    need(data, 42, "flac", "STREAMINFO")
    if data[:4] != b"fLaC" or data[4] & 0x7F != 0 or data[5:8] != b"\x00\x00\x22":
        raise corrupt("flac", "missing fLaC marker or 34-byte STREAMINFO block")
    min_block, max_block, min_frame_hi, min_frame_lo, max_frame_hi, max_frame_lo, packed = struct.unpack_from(
        ">HHBHBHQ", data, 8
    )
    min_frame = min_frame_hi << 16 | min_frame_lo
    max_frame = max_frame_hi << 16 | max_frame_lo
    channels = (packed >> 41 & 0x7) + 1
    bits = (packed >> 36 & 0x1F) + 1
    total = packed & (1 << 36) - 1
    pos, last = 4, False
    while not last:  # metadata blocks
        need(data, pos + 4, "flac", "metadata block header at byte {}", pos)
        last = bool(data[pos] & 0x80)
        pos += 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
    need(data, pos + 2, "flac", "audio frames")
    if data[pos] != 0xFF or data[pos + 1] & 0xFE != 0xF8:
        raise corrupt("flac", f"no frame sync code at byte {pos} after the metadata")
    if total and min_block == max_block and min_frame and max_frame:
        # Fixed block size gives the frame count; every frame is >= min_frame bytes and
        # one of them is max_frame bytes, a lower bound on the audio size.
        frames = -(-total // max_block)
        if len(data) - pos < max_frame + (frames - 1) * min_frame:
            raise corrupt("flac", f"audio is {len(data) - pos} bytes, too short for {frames} frames (truncated)")
    return SampleInfo((total, channels), "int16" if bits <= 16 else "int32")


# --- mp3 -----------------------------------------------------------------------------

# MPEG audio frame header (ISO 11172-3 / 13818-3); index 0 = free format, 15 = bad.
_MP3_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 layer III
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2/2.5 layer III
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(frame length, samples per frame, channels) of a layer III header at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version, layer = b1 >> 3 & 3, b1 >> 1 & 3
    if b1 & 0xE0 != 0xE0 or version == 1 or layer != 1 or b2 >> 4 in (0, 15) or b2 >> 2 & 3 == 3:
        return None
    bitrate = _MP3_BITRATES[1 if version == 3 else 2][b2 >> 4] * 1000
    rate = _MP3_RATES[version][b2 >> 2 & 3]
    samples = 1152 if version == 3 else 576
    return samples // 8 * bitrate // rate + (b2 >> 1 & 1), samples, 1 if b3 >> 6 == 3 else 2


def _is_mp3(head: bytes) -> bool:
    return head[:3] == b"ID3" or _mp3_frame(head, 0) is not None


def probe_mp3(data: bytes) -> SampleInfo:
    """Skip ID3v2 tags; sizes from the Xing/Info header, else walk every frame to the end."""
    pos = 0
    while data[pos : pos + 3] == b"ID3":  # one or more ID3v2 tags (ID3v2.4 §3.1)
        need(data, pos + 10, "mp3", "ID3v2 header")
        size = 0
        for byte in data[pos + 6 : pos + 10]:  # syncsafe integer
            size = size << 7 | byte & 0x7F
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)
    first = _mp3_frame(data, pos)
    if first is None:
        raise corrupt("mp3", f"no MPEG audio frame sync at byte {pos}")
    _, samples, channels = first
    side = (32 if channels == 2 else 17) if samples == 1152 else (17 if channels == 2 else 9)
    xing_at = pos + 4 + side  # the Xing/Info header sits after the first frame's side info
    if data[xing_at : xing_at + 4] in (b"Xing", b"Info") and len(data) >= xing_at + 16:
        flags, frames, stream_bytes = struct.unpack_from(">III", data, xing_at + 4)
        if flags & 3 == 3:  # frame count and stream size present: no need to walk the frames
            if pos + stream_bytes > len(data):
                raise corrupt("mp3", f"Xing header says {stream_bytes} bytes of audio, "
                                     f"file has {len(data) - pos} (truncated)")
            return SampleInfo((frames * samples, channels), "float32")
    return SampleInfo((_mp3_walk(data, pos) * samples, channels), "float32")


def _mp3_walk(data: bytes, pos: int) -> int:
    """Count frames from ``pos`` to the end; each must fit in the file."""
    frames, n = 0, len(data)
    while pos < n:
        frame = _mp3_frame(data, pos)
        if frame is None:
            if data[pos : pos + 3] in (b"TAG", b"APE", b"LYR"):  # trailing tags
                break
            raise corrupt("mp3", f"lost frame sync at byte {pos}")
        if pos + frame[0] > n:
            raise corrupt("mp3", f"last frame at byte {pos} runs past the end of the file (truncated)")
        pos += frame[0]
        frames += 1
    return frames


# --- mp4 -----------------------------------------------------------------------------

# ISO-BMFF brands that are still images (HEIF/AVIF), not video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})


def _boxes(data: bytes, start: int, end: int):
    """(type, body start, box end) for each box in data[start:end] (ISO 14496-12 §4.2)."""
    pos = start
    while pos < end:
        need(data, pos + 8, "mp4", "box header at byte {}", pos)
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            need(data, pos + 16, "mp4", "box header at byte {}", pos)
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise corrupt("mp4", f"box {btype!r} at byte {pos} claims {size} bytes, past the end (truncated)")
        yield btype, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, btype: bytes) -> tuple[int, int] | None:
    for found, body, box_end in _boxes(data, start, end):
        if found == btype:
            return body, box_end
    return None


def _video_shape(data: bytes, moov: tuple[int, int]) -> tuple[int, ...]:
    for btype, body, end in _boxes(data, *moov):
        if btype != b"trak":
            continue
        mdia = _child(data, body, end, b"mdia")
        hdlr = mdia and _child(data, *mdia, b"hdlr")
        if not hdlr or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        tkhd = _child(data, body, end, b"tkhd")
        minf = _child(data, *mdia, b"minf")
        stbl = minf and _child(data, *minf, b"stbl")
        stsz = stbl and _child(data, *stbl, b"stsz")
        if not tkhd or not stsz:
            raise corrupt("mp4", "video track without tkhd or stsz box")
        need(data, tkhd[1], "mp4", "tkhd box")
        width, height = struct.unpack_from(">II", data, tkhd[1] - 8)  # 16.16 fixed point, last fields
        (frames,) = struct.unpack_from(">I", data, stsz[0] + 8)
        return (frames, height >> 16, width >> 16, 3)
    return ()


def _is_mp4(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS


def probe_mp4(data: bytes) -> SampleInfo:
    """Top-level boxes must tile the file exactly; shape from the first video track."""
    moov = None
    for btype, body, end in _boxes(data, 0, len(data)):
        if btype == b"moov":
            moov = (body, end)
    if moov is None:
        raise corrupt("mp4", "no moov box")
    shape = _video_shape(data, moov)
    return SampleInfo(shape, "uint8")


CODECS: tuple[Codec, ...] = (
    Codec(name="wav", kind="audio", lossy=False, extensions=(".wav", ".wave"),
          recognize=lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE",
          probe=probe_wav, decode=decode_wav, encode=encode_wav),
    Codec(name="flac", kind="audio", lossy=False, extensions=(".flac",),
          recognize=lambda h: h[:4] == b"fLaC", probe=probe_flac),
    Codec(name="mp3", kind="audio", lossy=True, extensions=(".mp3",), recognize=_is_mp3, probe=probe_mp3),
    Codec(name="mp4", kind="video", lossy=True, extensions=(".mp4", ".m4v", ".mov"),
          recognize=_is_mp4, probe=probe_mp4),
)
