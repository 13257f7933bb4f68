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

__all__ = ["crc32"]
