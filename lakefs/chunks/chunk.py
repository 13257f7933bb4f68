"""Chunk objects: many samples' bytes in one immutable, checksummed storage object.

Layout (little endian)::

    magic   b"LKCH"  4 bytes
    version u16      format version of the writer
    kind    u8       ChunkKind
    pad     u8
    payload_len u64  bytes of the (uncompressed) payload
    stored_len  u64  bytes after the header
    crc32   u32      zlib.crc32 of the stored bytes
    pad     u32
    stored bytes     the payload, lz4-compressed for CHUNK_COMPRESSED

Sample offsets in the index point into the payload. For uncompressed and
sample-compressed chunks the payload is stored as-is, so one sample is a ranged read at
``HEADER.size + offset`` with its own crc32 from the index.
"""

from __future__ import annotations

import bisect
import enum
import struct

from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format.checksum import crc32
from lakefs.format.version import FORMAT_VERSION, READABLE_VERSIONS

MAGIC = b"LKCH"
HEADER = struct.Struct("<4sHBBQQII")


class ChunkKind(enum.IntEnum):
    """Deep Lake's three chunk kinds."""

    UNCOMPRESSED = 0  # raw array bytes / raw file bytes
    SAMPLE_COMPRESSED = 1  # each sample encoded on its own (jpeg, png, per-sample lz4)
    CHUNK_COMPRESSED = 2  # the whole payload lz4-compressed


def encode(kind: ChunkKind, payload: bytes | bytearray | memoryview, compress=None) -> bytes:
    """A chunk object for ``payload``; ``compress`` is the chunk codec's compress function."""
    stored = compress(bytes(payload)) if kind == ChunkKind.CHUNK_COMPRESSED else payload
    header = HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, len(payload), len(stored), crc32(stored), 0)
    return b"".join((header, stored))  # one copy: header + bytes(stored) copied the payload twice


class OpenChunk:
    """An uncompressed or sample-compressed chunk being filled, as pieces in payload
    order: a sample of ``SMALL`` bytes or more is kept as its own bytes object (adding a
    70 kB photo copies nothing: an 8 MB bytearray grown by appends was reallocated and
    its fresh pages faulted in, 2-80 µs per photo on this VM), smaller ones are copied
    into runs of up to ``RUN`` bytes (a million 4-byte labels are a few pieces, not a
    million). Sealed, it is written from the pieces (``Storage.put_parts``)."""

    SMALL = 16 << 10
    RUN = 1 << 20

    def __init__(self) -> None:
        self.pieces: list[bytes | bytearray] = []
        self._starts: list[int] = []  # payload offset of each piece
        self._run: bytearray | None = None  # the run being filled (the last piece)
        self.size = 0  # payload bytes so far
        self._crc = 0  # of the payload so far
        self._header: bytes | None = None

    def append(self, data: bytes) -> int:
        """Add ``data`` (immutable: a large one is kept, not copied); return its offset."""
        offset, n = self.size, len(data)
        if not n:
            return offset
        if n < self.SMALL:
            run = self._run
            if run is None or len(run) + n > self.RUN:
                run = self._run = bytearray()
                self.pieces.append(run)
                self._starts.append(offset)
            run += data
        else:
            self._run = None
            self.pieces.append(data)
            self._starts.append(offset)
        self.size += n
        self._crc = crc32(data, self._crc)
        return offset

    def sample(self, offset: int, n: int) -> bytes:
        """The ``n`` payload bytes at ``offset`` (a sample as it was appended)."""
        if not n:
            return b""
        i = bisect.bisect_right(self._starts, offset) - 1
        piece, at = self.pieces[i], offset - self._starts[i]
        if type(piece) is bytes and at == 0 and len(piece) == n:
            return piece  # the object it was written as
        if i >= 0 and at + n <= len(piece):
            return bytes(piece[at : at + n])
        return self.payload()[offset : offset + n]  # (not one appended sample)

    def payload(self) -> bytes:
        return b"".join(self.pieces)

    def seal(self, kind: ChunkKind) -> OpenChunk:
        """Fix the header (:func:`encode`'s layout); the object is then :meth:`parts`."""
        if kind == ChunkKind.CHUNK_COMPRESSED:
            raise ValueError("a chunk-compressed chunk is encoded whole (encode)")
        self._run = None  # (no more appends)
        self._header = HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, self.size, self.size, self._crc, 0)
        return self

    def parts(self) -> list[bytes | bytearray]:
        """The sealed chunk object, in pieces: the header, then the payload."""
        if self._header is None:
            raise ValueError("the chunk is not sealed")
        return [self._header, *self.pieces]


def payload_buffer() -> bytearray:
    """A buffer to build an uncompressed chunk in its final layout: room for the header,
    then the payload appended after it (see :func:`seal_buffer`)."""
    return bytearray(HEADER.size)


def seal_buffer(kind: ChunkKind, buf: bytearray) -> bytearray:
    """The chunk object built in ``buf`` (from :func:`payload_buffer`), its header filled
    in: no copy of the payload (8 MB tiles streamed in would otherwise each be copied)."""
    if kind == ChunkKind.CHUNK_COMPRESSED:
        raise ValueError("a chunk-compressed chunk cannot be sealed in place")
    with memoryview(buf) as view:
        n = len(view) - HEADER.size
        crc = crc32(view[HEADER.size :])
    HEADER.pack_into(buf, 0, MAGIC, FORMAT_VERSION, int(kind), 0, n, n, crc, 0)
    return buf


def parse_header(blob: bytes | memoryview, where: str) -> tuple[ChunkKind, int, int, int]:
    """(kind, payload_len, stored_len, crc) from a chunk's first bytes."""
    if len(blob) < HEADER.size:
        raise CorruptionError(f"{where}: chunk truncated ({len(blob)} bytes)")
    magic, version, kind, _, payload_len, stored_len, crc, _ = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptionError(f"{where}: not a lakefs chunk (bad magic)")
    if version not in READABLE_VERSIONS:
        raise FormatVersionError(f"{where}: chunk format version {version} is not supported")
    try:
        return ChunkKind(kind), payload_len, stored_len, crc
    except ValueError:
        raise CorruptionError(f"{where}: unknown chunk kind {kind}") from None


def decode(blob: bytes, where: str, decompress=None) -> bytes:
    """Verify a whole chunk object and return its payload."""
    payload = decode_view(blob, where, decompress)
    return payload if isinstance(payload, bytes) else bytes(payload)


def decode_view(blob: bytes | bytearray | memoryview, where: str, decompress=None) -> bytes | memoryview:
    """Like :func:`decode`, but the payload of an uncompressed or sample-compressed chunk
    is a view of ``blob``, not a copy (an 8 MB tile is then never copied again)."""
    kind, payload_len, stored_len, crc = parse_header(blob, where)
    stored = memoryview(blob)[HEADER.size :]
    if len(stored) != stored_len:
        raise CorruptionError(f"{where}: chunk truncated ({len(stored)} of {stored_len} bytes)")
    if crc32(stored) != crc:
        raise CorruptionError(f"{where}: chunk checksum mismatch")
    if kind == ChunkKind.CHUNK_COMPRESSED:
        try:
            payload = decompress(bytes(stored))
        except Exception as e:
            raise CorruptionError(f"{where}: chunk does not decompress: {e}") from e
    else:
        payload = stored
    if len(payload) != payload_len:
        raise CorruptionError(f"{where}: chunk payload is {len(payload)} bytes, header says {payload_len}")
    return payload
