"""The sample index of one tensor: row → where the sample's bytes are, and what it is.

In memory it is one dense numpy structured array indexed by row (O(1) lookup, O(1)
amortized append by capacity doubling). On storage it is a short list of immutable
*segments*, each holding the entries of the rows changed by some commits. A commit writes
one new segment with only its changed rows, so committing never rewrites O(n) data;
segments are merged like a binary counter (a merge when the newer of the last two is at
least half the size of the older), which keeps O(log n) segments and rewrites each entry
O(log n) times amortized. Loading applies the segments in order: later entries win.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lakefs.errors import CorruptionError
from lakefs.format import segments

MAX_NDIM = 6
NO_CHUNK = -1  # an empty cell (never written, or deleted)

FLAG_TRANSCODED = 1

ENTRY = np.dtype(
    [
        ("row", "<i8"),
        ("chunk", "<i8"),  # chunk object id; NO_CHUNK for an empty cell
        ("offset", "<u8"),  # byte offset in the chunk's (uncompressed) payload
        ("length", "<u8"),  # stored length in bytes (all tiles together)
        ("file_size", "<u8"),  # size of the sample seen as a file (st_size without a read)
        ("crc", "<u4"),  # zlib.crc32 of the stored bytes
        ("tiles", "<u4"),  # number of consecutive chunks a large sample spans
        ("mtime_ns", "<i8"),
        ("mode", "<u4"),
        ("ext", "<u1"),  # index into the tensor's extension table
        ("flags", "<u1"),
        ("ndim", "<u1"),
        ("_pad", "<u1"),
        ("shape", "<u4", (MAX_NDIM,)),
    ]
)

# Positions in ``ndarray.item()`` tuples of ENTRY (SampleIndex.file_stat).
_CHUNK, _FILE_SIZE, _MTIME, _MODE, _EXT = (
    ENTRY.names.index(n) for n in ("chunk", "file_size", "mtime_ns", "mode", "ext"))


@dataclass
class SegmentRef:
    """A stored segment: its object id, entry count, and (in memory) the rows it covers."""

    seg_id: int
    count: int
    rows: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.int64))

    def to_json(self) -> dict:
        return {"id": self.seg_id, "count": self.count}


def empty_entries(n: int) -> np.ndarray:
    out = np.zeros(n, dtype=ENTRY)
    out["chunk"] = NO_CHUNK
    out["row"] = np.arange(n)
    return out


class SampleIndex:
    """Dense row → entry table of one tensor plus the bookkeeping of its segments."""

    def __init__(self) -> None:
        self._entries = empty_entries(16)
        self._len = 0  # 1 + last row ever touched (the table's logical length)
        self.segments: list[SegmentRef] = []
        self._dirty: set[int] = set()
        self._last: int | None = -1  # last filled row; None when it must be recomputed
        # Rows changed since the last commit that was published → their entry in it (None:
        # empty). A commit that cannot store every chunk publishes these for the held-back
        # rows (:meth:`published_entry`), and a writer that gives up knows what it wrote.
        self._base: dict[int, np.void | None] = {}

    # --- queries -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def entry(self, row: int) -> np.ndarray | None:
        """A copy of the entry at ``row`` (fields read as ``e["chunk"]``), or None when
        the cell is empty. A copy, never a view: an open file keeps reading the sample it
        opened while its row is rewritten or deleted. (``take`` copies in ~1.4 µs where
        ``np.void.copy()`` takes ~3.5; ``np.array(self._entries[row])`` is no copy on
        numpy 2.)"""
        if row < 0 or row >= self._len:
            return None
        e = self._entries.take(row)
        return None if e["chunk"] == NO_CHUNK else e

    def file_stat(self, row: int) -> tuple[int, int, int, int] | None:
        """``(file_size, mtime_ns, mode, ext)`` of the sample at ``row`` as Python ints, or
        None for an empty cell: what a stat needs, ~3x cheaper than :meth:`entry` + fields."""
        if row < 0 or row >= self._len:
            return None
        e = self._entries.item(row)
        if e[_CHUNK] == NO_CHUNK:
            return None
        return e[_FILE_SIZE], e[_MTIME], e[_MODE], e[_EXT]

    def present_rows(self) -> np.ndarray:
        """Rows holding a sample, in row order."""
        return np.flatnonzero(self._entries["chunk"][: self._len] != NO_CHUNK)

    def last_filled_row(self) -> int:
        if self._last is None:
            rows = self.present_rows()
            self._last = int(rows[-1]) if len(rows) else -1
        return self._last

    def live(self) -> np.ndarray:
        """Entries of the cells holding a sample (a view; do not mutate)."""
        e = self._entries[: self._len]
        return e[e["chunk"] != NO_CHUNK]

    def changed(self, entries: np.ndarray) -> np.ndarray:
        """For each of ``entries`` (ENTRY records, e.g. another snapshot's ``live()``),
        whether this index holds something else at its row: another sample, other
        metadata, or none (a refreshed reader asks the kernel to forget those files)."""
        rows = entries["row"]
        inside = rows < self._len
        mine = self._entries[np.where(inside, rows, 0)]
        differ = ~inside
        for name in ("chunk", "offset", "length", "file_size", "crc", "mtime_ns", "mode", "ext", "flags"):
            differ |= mine[name] != entries[name]
        return differ

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    # --- mutation ----------------------------------------------------------------------

    def _grow(self, n: int) -> None:
        if n <= len(self._entries):
            return
        cap = max(n, 2 * len(self._entries))
        bigger = empty_entries(cap)
        bigger[: len(self._entries)] = self._entries
        self._entries = bigger

    def _remember(self, row: int) -> None:
        """Keep ``row``'s published entry before its first change since the last commit."""
        if row not in self._base:
            self._base[row] = self.entry(row)

    def set(self, row: int, entry: np.void | np.ndarray | tuple) -> None:
        """Store ``entry`` (an ENTRY record, or a tuple of its fields) at ``row``."""
        if row not in self._base:  # (inline _remember: the per-sample hot path)
            self._base[row] = self.entry(row)
        self._grow(row + 1)
        self._entries[row] = entry
        self._entries["row"][row] = row
        self._len = max(self._len, row + 1)
        self._dirty.add(row)
        if self._last is not None and row > self._last:
            self._last = row

    def forget_last(self, row: int) -> None:
        """Undo a :meth:`set` of a new last row (one whose row is being taken back), so
        that no entry, not even an empty one, is left past the last row."""
        if row != self._len - 1:
            raise ValueError(f"row {row} is not the index's newest row")
        self._remember(row)
        self._entries[row] = empty_entries(1)[0]
        self._entries["row"][row] = row
        self._len = row
        self._dirty.discard(row)
        self._last = None

    def clear(self, row: int) -> None:
        if row < self._len:
            self._remember(row)
            self._entries["chunk"][row] = NO_CHUNK
            self._entries["length"][row] = 0
            self._dirty.add(row)
            if row == self._last:
                self._last = None

    # --- persistence -------------------------------------------------------------------

    def apply_segment(self, body: memoryview, count: int, where: str) -> np.ndarray:
        if len(body) != count * ENTRY.itemsize:
            raise CorruptionError(f"{where}: index segment size mismatch")
        seg = np.frombuffer(body, dtype=ENTRY, count=count)
        if count:
            rows = seg["row"]
            if rows.min() < 0:
                raise CorruptionError(f"{where}: negative row in index segment")
            self._grow(int(rows.max()) + 1)
            self._entries[rows] = seg
            self._len = max(self._len, int(rows.max()) + 1)
            self._last = None
        return seg["row"].copy()

    def take_dirty(self) -> np.ndarray:
        """Sorted rows changed since the last commit; clears the dirty set."""
        rows = np.fromiter(sorted(self._dirty), dtype=np.int64, count=len(self._dirty))
        self._dirty.clear()
        return rows

    def encode_rows(self, rows: np.ndarray, held: np.ndarray | None = None) -> bytes:
        """The index segment of ``rows``; those of them ``held`` back (see
        :meth:`ChunkEngine.held_rows`) as the last published commit has them."""
        selected = self._entries[rows]  # a fresh contiguous copy; packed without another
        if held is not None and len(held):
            for i in np.flatnonzero(np.isin(rows, held)).tolist():
                row = int(rows[i])
                before = self._base.get(row)
                if before is None:
                    before = empty_entries(1)[0]
                    before["row"] = row
                selected[i] = before
        return segments.pack(segments.KIND_INDEX, len(rows), selected.view(np.uint8))

    def dirty_rows(self) -> np.ndarray:
        """Sorted rows changed since the last commit (the dirty set is kept)."""
        return np.fromiter(sorted(self._dirty), dtype=np.int64, count=len(self._dirty))

    def entries_at(self, rows: np.ndarray) -> np.ndarray:
        """The entries of ``rows`` (valid row numbers), a copy."""
        return self._entries[rows]

    def mark_dirty(self, rows: np.ndarray) -> None:
        self._dirty.update(int(r) for r in rows)

    # --- what the last published commit holds --------------------------------------------

    def unpublished_rows(self) -> np.ndarray:
        """Sorted rows changed since the last published commit."""
        return np.fromiter(sorted(self._base), dtype=np.int64, count=len(self._base))

    def is_published(self, row: int) -> bool:
        """Whether ``row`` holds what the last published commit has there."""
        return row not in self._base

    def published_entry(self, row: int) -> np.void | None:
        """``row``'s entry in the last published commit (None: an empty cell)."""
        return self._base[row] if row in self._base else self.entry(row)

    def published(self, held: np.ndarray | None = None) -> None:
        """A commit was published with every change but those of the ``held`` rows."""
        keep = {int(r): self._base[int(r)] for r in held} if held is not None and len(held) else {}
        self._base = keep


def plan_merge(segs: list[SegmentRef]) -> list[SegmentRef]:
    """The segments at the end of ``segs`` to merge into one (see ``segments.merge_start``)."""
    if not segs:
        return []
    k = segments.merge_start([s.count for s in segs[:-1]] + [len(segs[-1].rows)])
    return segs[k:] if k < len(segs) - 1 else []
