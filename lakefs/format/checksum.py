"""The checksum of every stored object and sample: CRC-32 (the zlib polynomial).

zlib-ng computes the same values as the standard library's ``zlib.crc32`` about 10x
faster (SIMD), which matters because every sample read verifies one: at ~4 GB/s the
checksum alone cost more than reading a 70 KB photo from the page cache. Without
zlib-ng installed the standard library gives identical results, only slower.
"""

from __future__ import annotations

try:
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - the dependency is declared; this keeps lakefs usable
    from zlib import crc32

__all__ = ["ChecksumReader", "crc32", "locate_bit_flip"]


class ChecksumReader:
    """A binary file that reads at most ``size`` bytes of ``f`` and keeps the CRC-32 of
    what it handed out: a plain file streamed into storage (``Storage.put_from``) gets
    its checksum while it is copied, never read a second time."""

    def __init__(self, f, size: int) -> None:
        self._f = f
        self.left = size
        self.crc = 0

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self._f.read(n) if n else b""
        self.left -= len(data)
        self.crc = crc32(data, self.crc)
        return data

    def readable(self) -> bool:
        return True


def _table() -> tuple[list[int], dict[int, int], dict[int, int]]:
    """The reflected CRC-32 table, its inverse by top byte, and the checksum differences
    a single flipped bit in the last byte makes (by bit)."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table, {c >> 24: i for i, c in enumerate(table)}, {table[1 << b]: b for b in range(8)}


_TABLE, _BY_TOP, _SINGLE = _table()


def locate_bit_flip(data: bytes | memoryview, expected: int) -> tuple[int, int] | None:
    """Where one flipped bit would explain ``crc32(data) != expected``: (byte, bit), or
    None. CRC-32 is linear, so the difference of the two checksums depends only on where
    the flipped bit is, and for data under 512 MB each single bit gives a different one
    (every 2-bit error is detected there: Hamming distance 3 or more). Walking
    the difference back one zero byte at a time finds it in one pass over the length.
    Damage of more bits is found by mistake with a chance of about ``8 * len(data)`` in
    2**32: callers check what they recover by other means too."""
    r = crc32(data) ^ expected
    if r == 0:
        return None
    n = len(data)
    for k in range(n):
        bit = _SINGLE.get(r)
        if bit is not None:
            return n - 1 - k, bit
        i = _BY_TOP[r >> 24]
        r = (((r ^ _TABLE[i]) << 8) & 0xFFFFFFFF) | i
    return None
