"""Binary segment objects: a small checksummed container for index and row data.

Layout (little endian)::

    magic  b"LKSG"   4 bytes
    version u16      FORMAT_VERSION of the writer
    kind    u16      1 = sample index, 2 = row keys
    count   u64      number of records
    length  u64      body length in bytes
    crc32   u32      zlib.crc32 of the body
    pad     u32
    body

No pickle anywhere: bodies are numpy arrays written with ``tobytes`` and read with
``frombuffer`` against dtypes fixed in code.
"""

from __future__ import annotations

import struct

from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format.checksum import crc32
from lakefs.format.version import FORMAT_VERSION, READABLE_VERSIONS

MAGIC = b"LKSG"
HEADER = struct.Struct("<4sHHQQII")
KIND_INDEX = 1
KIND_ROWS = 2


def pack(kind: int, count: int, body: bytes | memoryview) -> bytes:
    """Header + body in one copy (``body`` may be any contiguous buffer, e.g. an array's)."""
    body = memoryview(body).cast("B")
    header = HEADER.pack(MAGIC, FORMAT_VERSION, kind, count, body.nbytes, crc32(body), 0)
    return b"".join((header, body))


def unpack(blob: bytes, kind: int, where: str) -> tuple[int, memoryview]:
    """Check header and checksum; return (count, body)."""
    if len(blob) < HEADER.size:
        raise CorruptionError(f"{where}: segment truncated ({len(blob)} bytes)")
    magic, version, got_kind, count, length, crc, _ = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptionError(f"{where}: not a lakefs segment (bad magic)")
    if version not in READABLE_VERSIONS:
        raise FormatVersionError(f"{where}: segment format version {version} is not supported")
    if got_kind != kind:
        raise CorruptionError(f"{where}: segment kind {got_kind}, expected {kind}")
    body = memoryview(blob)[HEADER.size :]
    if len(body) != length:
        raise CorruptionError(f"{where}: segment truncated ({len(body)} of {length} bytes)")
    if crc32(body) != crc:
        raise CorruptionError(f"{where}: segment checksum mismatch")
    return count, body


def unpack_exact(blob: bytes, kind: int, where: str, count: int, what: str) -> tuple[int, memoryview]:
    """:func:`unpack`, and ``CorruptionError`` unless the segment holds the ``count``
    records (``what``) its manifest says: the header's count is outside the checksum."""
    n, body = unpack(blob, kind, where)
    if n != count:
        raise CorruptionError(f"{where}: holds {n} {what}, manifest says {count}")
    return n, body


def merge_start(counts: list[int]) -> int:
    """Where the merge of the newest segment starts, binary-counter style.

    ``counts`` are the record counts of a segment list, oldest first, the newest last.
    The newest absorbs its predecessor while that one is at most twice as big as all it
    absorbed so far, so sizes fall geometrically along the list: O(log n) segments, each
    record rewritten O(log n) times. Returns the index of the first segment to merge
    (``len(counts) - 1`` when the newest stays alone).
    """
    k = len(counts) - 1
    covered = counts[-1] if counts else 0
    while k >= 1 and counts[k - 1] <= 2 * covered:
        covered += counts[k - 1]
        k -= 1
    return k
