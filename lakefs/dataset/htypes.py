"""The closed set of htypes, each resolved to concrete settings when a tensor is created.

``storage`` says what a sample's stored bytes are:

- ``media``: an encoded file (jpeg, wav, mp4...) kept byte-for-byte when it matches the
  tensor's ``sample_compression``; without a sample compression the decoded array is
  stored raw instead.
- ``array``: raw C-order array bytes of the tensor's dtype (optionally lz4 per sample).
- ``file``: the file's bytes as-is (json and text validated first).
"""

from __future__ import annotations

from dataclasses import dataclass

from lakefs.errors import InvalidSampleError


@dataclass(frozen=True)
class Htype:
    name: str
    storage: str  # "media" | "array" | "file"
    dtype: str | None  # default dtype (None: taken from the first sample)
    exact: bool  # values must survive exactly: no lossy transcode
    media_kind: str | None = None  # codec kind allowed as sample_compression
    file_ext: str | None = None  # the file view of non-media samples
    default_compression: str | None = None


HTYPES: dict[str, Htype] = {
    h.name: h
    for h in (
        Htype("generic", "array", None, exact=False, file_ext=".npy"),
        Htype("image", "media", "uint8", exact=False, media_kind="image", file_ext=".npy"),
        Htype("binary_mask", "media", "bool", exact=True, media_kind="image", file_ext=".npy"),
        Htype("segment_mask", "media", "uint32", exact=True, media_kind="image", file_ext=".npy"),
        Htype("class_label", "array", "uint32", exact=True, file_ext=".txt"),
        Htype("bbox", "array", "float32", exact=False, file_ext=".npy"),
        Htype("json", "file", None, exact=True, file_ext=".json"),
        Htype("text", "file", None, exact=True, file_ext=".txt"),
        Htype("bytes", "file", None, exact=True),
        Htype("audio", "media", None, exact=False, media_kind="audio", default_compression="wav"),
        Htype("video", "media", None, exact=False, media_kind="video", default_compression="mp4"),
    )
}


def get_htype(name: str) -> Htype:
    try:
        return HTYPES[name]
    except (KeyError, TypeError):
        raise InvalidSampleError(f"unknown htype {name!r}; known: {', '.join(HTYPES)}") from None
