"""The compression registry: one dict from name to :class:`Codec` row.

Modelled on numcodecs' ``registry.py``. Lookups by name, by file extension and by
content (magic bytes) all read the same table, so adding a codec is adding one row.
"""

from __future__ import annotations

from lakefs.compression.codec import Codec
from lakefs.errors import ConfigError

#: How many leading bytes ``recognize`` may look at.
HEAD_SIZE = 64

_codecs: dict[str, Codec] = {}
_by_extension: dict[str, Codec] = {}


def register(codec: Codec) -> None:
    """Add ``codec`` to the registry, replacing any codec of the same name."""
    old = _codecs.pop(codec.name, None)
    if old is not None:
        for ext in old.extensions:
            _by_extension.pop(ext, None)
    _codecs[codec.name] = codec
    for ext in codec.extensions:
        _by_extension[ext] = codec


def get_codec(name: str) -> Codec:
    """The codec called ``name``; :class:`ConfigError` (EINVAL) if there is none."""
    try:
        return _codecs[name]
    except KeyError:
        raise ConfigError(f"unknown compression {name!r}; known: {', '.join(codec_names())}") from None


def codec_names() -> list[str]:
    """Names of all registered codecs, sorted."""
    return sorted(_codecs)


def detect(data: bytes) -> Codec | None:
    """The registered media codec (image/audio/video) whose magic bytes ``data`` starts with.

    Bytes codecs are never detected: lz4 frames are storage, not a file format users copy.
    """
    head = bytes(data[:HEAD_SIZE])
    for codec in _codecs.values():
        if codec.kind != "bytes" and codec.recognize(head):
            return codec
    return None


def codec_for_extension(ext: str) -> Codec | None:
    """The codec a file extension names (``".JPG"`` or ``"jpg"`` -> jpeg), else None."""
    ext = ext.lower()
    if not ext.startswith("."):
        ext = "." + ext
    return _by_extension.get(ext)
