"""What of a damaged index or row segment can be trusted (``lakefs fsck --repair``).

A segment's crc32 covers its whole body, so once it fails nothing says which of its
entries took the damage. A sample's own crc32 covers only its bytes: an entry whose
``row`` took a flipped bit still points at good bytes, and would hand them to another
row. So an entry is kept only when it agrees with everything docs/FORMAT.md fixes about
it (:func:`plausible`), and only the longest run of them whose rows ascend, as rows do in
every segment (:func:`ascending`). The entries left out are lost; the rows they can have
been for lie strictly between the rows of the kept entries around them (:class:`LostSpan`).

Most damage is one flipped bit, and the segment's crc32 tells which one (see
:func:`~lakefs.format.checksum.locate_bit_flip`): it is set right first, and then nothing
is lost. Otherwise what cannot be caught is a damaged field nothing else constrains
(``mtime_ns``, ``mode``, the shape of an encoded image), or a ``row`` that stays in
ascending order (the first entry's going down, the last one's going up): docs/FORMAT.md
has no checksum per entry.

A row segment's keys each have their own hash (docs/FORMAT.md §5.2), so there every key
is checked on its own (:func:`salvage_rows`), after the same one-flipped-bit fix
(:func:`undo_bit_flip`): only the rows whose key or hash took the damage lose their key.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import numpy as np

from lakefs.dataset.samples import SampleFormat, npy_header
from lakefs.errors import LakeFSError
from lakefs.format.checksum import locate_bit_flip
from lakefs.format.index import ENTRY, FLAG_TRANSCODED, MAX_NDIM, NO_CHUNK
from lakefs.format.rows import KEY_MAX_BYTES, key_hash
from lakefs.format.segments import HEADER, MAGIC

LOCATE_LIMIT = 4 << 20  # bodies searched for one flipped bit (about a second per 4 MB)


@dataclass
class LostSpan:
    """``lost`` entries of segment ``pos`` (in the tensor's list; later segments win)
    that were left out between two kept ones: they were for rows ``lo + 1 .. hi - 1``."""

    pos: int
    lost: int
    lo: int
    hi: int


def file_size_of(fmt: SampleFormat, e: np.void, stored: bytes | None = None) -> int | None:
    """The ``file_size`` entry ``e`` must hold (docs/FORMAT.md §6.1), or None if that cannot
    be told: the stored length when the file is the stored bytes; the decompressed length
    for lz4 files (``stored``, the sample's verified bytes, needed); the ``.npy`` header
    plus the array bytes for raw arrays. A class label's file (its class names as text)
    changes when class names are added, so it is not checked."""
    n = int(e["length"])
    if fmt.file_is_stored:
        return n
    if fmt.htype.storage == "file":
        return None if stored is None else len(fmt.raw(stored))
    if fmt.htype.name == "class_label" or not fmt.meta.dtype:
        return None
    raw = n if fmt.lz4 is None else (None if stored is None else len(fmt.raw(stored)))
    return None if raw is None else _npy_header_size(fmt.meta.dtype, _shape(e)) + raw


def entry_flaw(fmt: SampleFormat, e: np.void, stored: bytes | None = None) -> str | None:
    """Why entry ``e`` cannot describe the sample it points at (its size fields disagree
    with each other or with its shape), or None."""
    if fmt.htype.storage != "file" and fmt.codec is None and fmt.meta.dtype:  # a raw array
        raw = int(e["length"]) if fmt.lz4 is None else (None if stored is None else len(fmt.raw(stored)))
        need = math.prod(_shape(e)) * np.dtype(fmt.meta.dtype).itemsize
        if raw is not None and raw != need:
            return f"its shape {_shape(e)} needs {need} bytes, the sample has {raw}"
    size = file_size_of(fmt, e, stored)
    if size is not None and size != int(e["file_size"]):
        return f"it says the file is {int(e['file_size'])} bytes, the sample makes {size}"
    return None


def _shape(e: np.void) -> tuple[int, ...]:
    return tuple(int(x) for x in e["shape"][: int(e["ndim"])])


@functools.lru_cache(maxsize=4096)
def _npy_header_size(dtype: str, shape: tuple[int, ...]) -> int:
    return len(npy_header(np.dtype(dtype), shape))


def plausible(seg: np.ndarray, fmt: SampleFormat, next_id: int, nrows: int) -> np.ndarray:
    """For each entry of ``seg``, whether it can be a real entry of this tensor."""
    row, chunk = seg["row"], seg["chunk"]
    off, n = seg["offset"], seg["length"]
    tiles = seg["tiles"].astype(np.int64)
    cs = int(fmt.meta.chunk_size)
    ok = (row >= 0) & (row < nrows) & (seg["_pad"] == 0) & (seg["ndim"] <= MAX_NDIM)
    ok &= (seg["flags"] & ~np.uint8(FLAG_TRANSCODED)) == 0
    unused = np.arange(MAX_NDIM)[None, :] >= seg["ndim"].astype(np.int64)[:, None]
    ok &= ~((seg["shape"] != 0) & unused).any(axis=1)
    # A sample of n <= 2 * chunk_size bytes sits in one chunk's payload (which that bounds);
    # a tiled one starts its first tile and fills all but the last (docs/FORMAT.md §6).
    # (Bounds first, so that the int64 arithmetic after them cannot wrap around.)
    small = (off <= 2 * cs) & (n <= 2 * cs)
    end = off.astype(np.int64) + n.astype(np.int64)
    in_chunk = (tiles == 1) & small & (end <= 2 * cs)
    n64 = n.astype(np.int64)
    in_tiles = (tiles > 1) & (off == 0) & (n < np.uint64(1 << 62)) & (n64 > (tiles - 1) * cs) & (n64 <= tiles * cs)
    limit = min(int(next_id), 1 << 62)
    live = (chunk >= 0) & (chunk < limit) & (chunk + tiles <= limit) & (in_chunk | in_tiles)
    ok &= np.where(chunk == NO_CHUNK, n == 0, live)  # (a deleted cell keeps no length)
    for i in np.flatnonzero(ok & (chunk != NO_CHUNK)).tolist():
        if entry_flaw(fmt, seg[i]) is not None:
            ok[i] = False
    return ok


def ascending(rows: np.ndarray) -> np.ndarray:
    """Positions of a longest strictly ascending subsequence of ``rows``."""
    if len(rows) < 2 or bool((np.diff(rows) > 0).all()):
        return np.arange(len(rows))
    tails: list[int] = []  # tails[k]: the smallest last row of an ascending run of k + 1
    tail_at: list[int] = []  # its position
    before = [-1] * len(rows)
    for i, r in enumerate(rows.tolist()):
        k = bisect.bisect_left(tails, r)
        if k == len(tails):
            tails.append(r)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = r, i
        before[i] = tail_at[k - 1] if k else -1
    out, i = [], tail_at[-1]
    while i >= 0:
        out.append(i)
        i = before[i]
    return np.array(out[::-1], dtype=np.int64)


def salvage(blob: bytes, count: int, pos: int, fmt: SampleFormat, next_id: int,
            nrows: int) -> tuple[np.ndarray, list[LostSpan], str | None]:
    """The entries of damaged segment ``pos`` (``count`` entries by the manifest) that can
    be trusted, where the others were, and a note when one flipped bit explains the
    damage and was set right. Their samples' crc32 is still checked after."""
    body, at = undo_bit_flip(blob, count, count * ENTRY.itemsize)
    note = None
    if at is not None:
        entry, within = divmod(at, ENTRY.itemsize)
        name = next(f for f, (dt, off) in ENTRY.fields.items() if off <= within < off + dt.itemsize)
        note = f"one flipped bit (entry {entry}, field {name}) explains the damage and was set right"
    n = min(len(body) // ENTRY.itemsize, count)
    seg = np.frombuffer(body, dtype=ENTRY, count=n).copy() if n else np.zeros(0, dtype=ENTRY)
    try:
        candidates = np.flatnonzero(plausible(seg, fmt, next_id, nrows))
    except LakeFSError:
        candidates = np.zeros(0, dtype=np.int64)
    keep = candidates[ascending(seg["row"][candidates])]
    kept = np.zeros(count, dtype=bool)
    kept[keep] = True
    spans, lo, run = [], -1, 0
    for i in range(count):
        if kept[i]:
            if run:
                spans.append(LostSpan(pos, run, lo, int(seg["row"][i])))
            lo, run = int(seg["row"][i]), 0
        else:
            run += 1
    if run:
        spans.append(LostSpan(pos, run, lo, nrows))
    return seg[keep], spans, note


def undo_bit_flip(blob: bytes, count: int, length: int | None = None) -> tuple[bytes, int | None]:
    """The body of a damaged segment (``count`` records by the manifest, ``length`` bytes
    when its kind fixes that), with the one flipped bit that explains its checksum
    mismatch set right, and the byte it was in (None: no single bit explains it, or the
    header is damaged too). For index and row segments alike."""
    body = blob[HEADER.size:]
    if len(blob) < HEADER.size or len(body) > LOCATE_LIMIT:
        return body, None
    magic, _, _, n, stored_length, crc, _ = HEADER.unpack_from(blob)
    if magic != MAGIC or n != count or stored_length != len(body) or length not in (None, len(body)):
        return body, None
    found = locate_bit_flip(body, crc)
    if found is None:
        return body, None
    at, bit = found
    fixed = bytearray(body)
    fixed[at] ^= 1 << bit
    return bytes(fixed), at


def salvage_rows(blob: bytes, count: int, start: int) -> tuple[list[str | None], str | None]:
    """The keys of damaged row segment ``blob`` (rows ``start ..``, ``count`` by the
    manifest), None for each that is lost, and a note when one flipped bit explains the
    damage and was set right. A key is kept when it verifies against its own hash
    (BLAKE2b, 64 bits: a damaged key or hash does not). Its span in the key blob is
    taken from its offsets, or, when the key before it verified (its start is known),
    found by the hash among the at most KEY_MAX_BYTES ends: a damaged offset costs
    nothing. A segment too short to hold the hashes and offsets loses every key."""
    body, at = undo_bit_flip(blob, count)
    fixed = _verified_keys(body, count)
    if at is None:
        return fixed, None
    if None not in fixed:
        where = _row_part(body, count, at, start)
        return fixed, f"one flipped bit (in the {where}) explains the damage and was set right"
    # More than one bit is damaged, and the one found may be none of them: a key that
    # verifies against its hash in either body is right.
    stored = _verified_keys(blob[HEADER.size:], count)
    return [a if a is not None else b for a, b in zip(fixed, stored)], None


def _verified_keys(body: bytes, count: int) -> list[str | None]:
    need = 16 * count + 8
    if len(body) < need:
        return [None] * count
    hashes = np.frombuffer(body, dtype="<u8", count=count).tolist()
    rel = np.frombuffer(body, dtype="<i8", count=count + 1, offset=8 * count).tolist()
    blob = bytes(body[need:])

    def verifies(a: int, b: int, h: int) -> bool:
        return 0 <= a < b <= len(blob) and b - a <= KEY_MAX_BYTES and key_hash(blob[a:b]) == h

    out: list[str | None] = [None] * count
    seen: set[bytes] = set()
    pos: int | None = 0  # where the key starts when that is known (the first at 0; after a verified one)
    for i, h in enumerate(hashes):
        span = next(((a, rel[i + 1]) for a in {pos, rel[i]} - {None} if verifies(a, rel[i + 1], h)), None)
        if span is None and pos is not None:  # its end offset may be the damaged one
            span = next(((pos, b) for b in range(pos + 1, min(pos + KEY_MAX_BYTES, len(blob)) + 1)
                         if key_hash(blob[pos:b]) == h), None)
        key = blob[span[0]:span[1]] if span else None
        if key is None or key in seen:
            pos = None
            continue
        try:
            out[i] = key.decode("utf-8")
        except UnicodeDecodeError:  # (a key that matches its hash was written as UTF-8)
            pos = None
            continue
        seen.add(key)
        pos = span[1]
    return out


def _row_part(body: bytes, count: int, at: int, start: int) -> str:
    """What byte ``at`` of a row segment body is part of: ``key hash of row 5``."""
    if at < 8 * count:
        return f"key hash of row {start + at // 8}"
    need = 16 * count + 8
    if at < need:
        i = (at - 8 * count) // 8
        return f"key offset of row {start + i}" if i < count else "end offset of the keys"
    rel = np.frombuffer(body, dtype="<i8", count=count + 1, offset=8 * count)
    return f"key of row {start + int(np.searchsorted(rel, at - need, side='right')) - 1}"
