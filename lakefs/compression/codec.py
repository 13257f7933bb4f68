"""The codec row type: what one compression is and what it can do.

A :class:`Codec` is a frozen record of plain functions, so the registry is a table
(DESIGN §3: "adding a codec is adding one row") rather than a class hierarchy.
Operations a codec does not have default to :func:`unsupported`, which raises
:class:`~lakefs.errors.UnsupportedError` naming the codec and the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lakefs.errors import UnsupportedError

KINDS = ("image", "audio", "video", "bytes")
_OPERATIONS = ("probe", "decode", "encode", "compress", "decompress")


@dataclass(frozen=True)
class SampleInfo:
    """Shape and numpy dtype name of a decoded sample, read from the file's header."""

    shape: tuple[int, ...]
    dtype: str


def unsupported(codec: str, operation: str) -> Callable[..., object]:
    """A stand-in for an operation a codec lacks; raises UnsupportedError when called."""

    def _raise(*_args: object, **_kwargs: object) -> object:
        raise UnsupportedError(f"{codec}: {operation} is not supported")

    _raise.__name__ = f"unsupported_{operation}"
    return _raise


def _never(_head: bytes) -> bool:
    return False


@dataclass(frozen=True)
class Codec:
    """One row of the compression registry.

    ``recognize(head)`` looks only at the first <=64 bytes (magic numbers), never at a
    file name. ``probe(data)`` returns the :class:`SampleInfo` from the header and checks
    the file's structure cheaply (no pixel or audio decode), raising
    :class:`~lakefs.errors.CorruptSampleError`. ``decode``/``encode`` convert between
    encoded bytes and arrays whose shape and dtype equal ``probe``'s. ``compress`` /
    ``decompress`` are the bytes->bytes pair of the ``bytes`` kind (lz4, none).
    ``accepts`` lists the ``(channels, dtype)`` pairs an image ``encode`` writes and
    decodes back with the same shape and bit depth; the transcode planner reads it.
    """

    name: str
    kind: str
    lossy: bool
    extensions: tuple[str, ...]
    chunk_capable: bool = False
    recognize: Callable[[bytes], bool] = _never
    probe: Callable[[bytes], SampleInfo] = None  # type: ignore[assignment]
    decode: Callable[[bytes], np.ndarray] = None  # type: ignore[assignment]
    encode: Callable[[np.ndarray], bytes] = None  # type: ignore[assignment]
    compress: Callable[[bytes], bytes] = None  # type: ignore[assignment]
    decompress: Callable[[bytes], bytes] = None  # type: ignore[assignment]
    accepts: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"codec {self.name!r}: kind must be one of {KINDS}")
        if any(e != e.lower() or not e.startswith(".") for e in self.extensions):
            raise ValueError(f"codec {self.name!r}: extensions must be lowercase and start with '.'")
        for operation in _OPERATIONS:
            if getattr(self, operation) is None:
                object.__setattr__(self, operation, unsupported(self.name, operation))

    @property
    def extension(self) -> str:
        """The canonical file extension (the first one)."""
        return self.extensions[0]
