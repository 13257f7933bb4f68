"""Small helpers shared by the codec modules."""

from __future__ import annotations

import numpy as np

from lakefs.compression.codec import SampleInfo
from lakefs.errors import CorruptSampleError, InvalidSampleError


def corrupt(codec: str, what: str) -> CorruptSampleError:
    """A CorruptSampleError whose message names the format and the defect."""
    return CorruptSampleError(f"corrupt {codec} file: {what}")


def need(data: bytes, end: int, codec: str, where: str, *args: object) -> None:
    """Raise a truncation error unless ``data`` has at least ``end`` bytes. ``where`` is
    formatted with ``args`` only then: probes call this per marker segment or chunk, and
    an f-string message made every time cost a JPEG probe a quarter of its time."""
    if end > len(data):
        where = where.format(*args) if args else where  # (a message without arguments is taken as it is)
        raise corrupt(codec, f"truncated {where} (needs {end} bytes, file has {len(data)})")


def riff_end(data: bytes, form: bytes, codec: str) -> int:
    """End offset of a RIFF file of type ``form`` (b"WEBP", b"WAVE"), checking its size field."""
    need(data, 12, codec, "RIFF header")
    if data[:4] != b"RIFF" or data[8:12] != form:
        raise corrupt(codec, f"not a RIFF {form.decode()} file")
    end = int.from_bytes(data[4:8], "little") + 8
    need(data, end, codec, "RIFF body (RIFF size field)")
    return end


def image_channels(array: np.ndarray, codec: str) -> tuple[np.ndarray, int]:
    """``array`` as (H, W, C) and C; InvalidSampleError unless it is a 2-D or 3-D image."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidSampleError(
            f"{codec} needs an image array of shape (H, W) or (H, W, C), got shape {array.shape}"
        )
    return array, array.shape[2]


def check_decoded(array: np.ndarray, info: SampleInfo, codec: str) -> np.ndarray:
    """Make the decoded array match the probed info exactly, or say the file lied."""
    if array.size != int(np.prod(info.shape)):
        raise corrupt(codec, f"decoded {array.shape} does not match header {info.shape}")
    return array.reshape(info.shape).astype(info.dtype, copy=False)
