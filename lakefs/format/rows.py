"""The row table: row number → key, and key → row.

Rows are append-only and live in creation order. Keys are kept as one UTF-8 blob with
offsets (no Python object per row), each with a 64-bit hash; key lookup is a binary search
over the sorted hashes (rebuilt lazily) plus a small dict of keys added since, so a
million-row dataset opens without building a million Python strings.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lakefs.errors import CorruptionError
from lakefs.format import segments

KEY_MAX_BYTES = 255  # a key is 1 to 255 bytes of UTF-8 (docs/FORMAT.md §5.2)


def key_hash(key_utf8: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key_utf8, digest_size=8).digest(), "little")


class RowTable:
    def __init__(self) -> None:
        self._blob = bytearray()
        self._offsets = np.zeros(1, dtype=np.int64)  # offsets[i]..offsets[i+1] is key i
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._n = 0
        self._sorted_hashes = np.zeros(0, dtype=np.uint64)
        self._sorted_rows = np.zeros(0, dtype=np.int64)
        self._recent: dict[str, int] = {}  # keys added since the sorted arrays were built
        self._stale = False  # loaded rows are not yet in the sorted arrays
        self.committed = 0  # rows already stored in segments
        self.segments: list[dict] = []  # [{"id", "start", "count"}]

    def __len__(self) -> int:
        return self._n

    def key(self, row: int) -> str:
        if not 0 <= row < self._n:
            raise IndexError(row)
        return bytes(self._blob[self._offsets[row] : self._offsets[row + 1]]).decode("utf-8")

    def key_size(self, row: int) -> int:
        """The length of ``row``'s key in bytes (no decode: checked at every write)."""
        return self._offsets.item(row + 1) - self._offsets.item(row)

    def keys(self) -> list[str]:
        return self.keys_at(np.arange(self._n))

    def keys_at(self, rows: np.ndarray) -> list[str]:
        """The keys of ``rows`` (valid row numbers), decoded in bulk: one decode of the
        blob when it is ASCII (the usual case) instead of one per key."""
        starts = self._offsets[rows].tolist()
        ends = self._offsets[rows + 1].tolist()
        blob = self._blob
        if blob.isascii():
            text = blob.decode("ascii")
            return [text[a:b] for a, b in zip(starts, ends)]
        return [blob[a:b].decode("utf-8") for a, b in zip(starts, ends)]

    def find(self, key: str) -> int | None:
        """Row of ``key`` or None; O(log n)."""
        row = self._recent.get(key)
        if row is not None:
            return row
        if self._stale:
            self._rebuild_lookup()
        sorted_hashes = self._sorted_hashes
        if not len(sorted_hashes):
            return None
        try:
            raw = key.encode("utf-8")
        except UnicodeEncodeError:  # a file name of non-UTF-8 bytes (surrogateescape): no key is
            return None
        h = key_hash(raw)
        # np.uint64, not a Python int: a Python int may make numpy convert the whole array.
        i = int(sorted_hashes.searchsorted(np.uint64(h)))
        n, offsets = len(sorted_hashes), self._offsets
        while i < n and sorted_hashes.item(i) == h:  # equal hashes: compare keys
            r = self._sorted_rows.item(i)  # .item(): a Python int without a numpy scalar
            if self._blob[offsets.item(r) : offsets.item(r + 1)] == raw:
                return r
            i += 1
        return None

    def _ensure_capacity(self, n: int) -> None:
        if n + 1 > len(self._offsets):
            cap = max(n + 1, 2 * len(self._offsets))
            off = np.zeros(cap, dtype=np.int64)
            off[: len(self._offsets)] = self._offsets
            self._offsets = off
            h = np.zeros(cap, dtype=np.uint64)
            h[: len(self._hashes)] = self._hashes
            self._hashes = h

    def append(self, key: str) -> int:
        """Add a row with a key the caller has checked is new; return its number."""
        raw = key.encode("utf-8")
        row = self._n
        self._ensure_capacity(row + 1)
        self._blob += raw
        self._offsets[row + 1] = len(self._blob)
        self._hashes[row] = key_hash(raw)
        self._n += 1
        self._recent[key] = row
        if len(self._recent) > 1024 and len(self._recent) * 8 > self._n:
            self._rebuild_lookup()
        return row

    def pop_last(self) -> None:
        """Undo the last :meth:`append` (a new row none of whose cells could be stored);
        only a row not yet in a segment."""
        row = self._n - 1
        if row < self.committed:
            raise ValueError(f"row {row} is committed already")
        key = self.key(row)
        del self._blob[self._offsets[row] :]
        self._n = row
        if self._recent.pop(key, None) is None:
            self._stale = True  # it was in the sorted arrays: rebuild them at the next find

    def _rebuild_lookup(self) -> None:
        hashes = self._hashes[: self._n]
        order = np.argsort(hashes, kind="stable")
        self._sorted_hashes = hashes[order]
        self._sorted_rows = order.astype(np.int64)
        self._recent.clear()
        self._stale = False

    # --- persistence -------------------------------------------------------------------

    def encode_range(self, start: int, stop: int) -> bytes:
        """Segment body for rows [start, stop): hashes, relative offsets, then the key blob."""
        off = self._offsets[start : stop + 1]
        rel = (off - off[0]).astype("<i8")
        body = (
            self._hashes[start:stop].astype("<u8").tobytes()
            + rel.tobytes()
            + bytes(self._blob[off[0] : off[-1]])
        )
        return segments.pack(segments.KIND_ROWS, stop - start, body)

    def load_segment(self, body: memoryview, count: int, start: int, where: str) -> None:
        if start != self._n:
            raise CorruptionError(f"{where}: row segment starts at {start}, expected {self._n}")
        need = 8 * count + 8 * (count + 1)
        if len(body) < need:
            raise CorruptionError(f"{where}: row segment truncated")
        hashes = np.frombuffer(body, dtype="<u8", count=count)
        rel = np.frombuffer(body, dtype="<i8", count=count + 1, offset=8 * count)
        blob = body[need:]
        if rel[0] != 0 or rel[-1] != len(blob) or (count and np.any(np.diff(rel) < 0)):
            raise CorruptionError(f"{where}: row segment offsets are inconsistent")
        self._ensure_capacity(self._n + count)
        base = len(self._blob)
        self._blob += blob
        self._offsets[self._n + 1 : self._n + count + 1] = rel[1:] + base
        self._hashes[self._n : self._n + count] = hashes
        self._n += count
        self.committed = self._n

    def finish_load(self) -> None:
        """Loading is done. The sorted-hash lookup is built on the first ``find``, not
        here: argsort of a million hashes is a third of a 1M-row open, and readers that
        index by row number never need it."""
        self._recent.clear()
        self._stale = True
