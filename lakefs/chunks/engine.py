"""The chunk engine of one tensor: turns samples into chunk objects and back.

Writes go into an in-memory *open chunk*; when it would pass the target size it is
*sealed*: encoded, checksummed and put to storage as an immutable object. A commit seals
every open chunk, so a live chunk is never rewritten in place; updates and deletes only
change index entries and leave garbage that ``compact`` reclaims. Samples larger than
the maximum chunk size are split into *tiles*, consecutive whole chunks, and read back
byte-exact (Deep Lake v3 re-encodes tiles; we keep the original bytes).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Iterable

import numpy as np

from lakefs.chunks import chunk as chunkfmt
from lakefs.chunks.cache import ChunkCache
from lakefs.chunks.chunk import ChunkKind
from lakefs.chunks.stream import TileStream
from lakefs.chunks.tiles import TileWindow
from lakefs.chunks.writer import ChunkWriter, put_chunk
from lakefs.errors import (
    CorruptionError,
    InvalidSampleError,
    ObjectNotFoundError,
    SampleNotFoundError,
)
from lakefs.format import keys, segments
from lakefs.format.checksum import crc32
from lakefs.format.index import ENTRY, MAX_NDIM, NO_CHUNK, SampleIndex, SegmentRef, plan_merge
from lakefs.storage.base import Storage, read_verified

# read_entry and DatasetFS._content_token unpack ``entry.item()`` tuples by position.
assert ENTRY.names[:7] == ("row", "chunk", "offset", "length", "file_size", "crc", "tiles")

DEFAULT_CHUNK_SIZE = 8 << 20  # Deep Lake's target
MIN_CHUNK_SIZE = 4096  # a tensor's smallest chunk_size
# A tensor's largest chunk_size. The format has no limit (offsets and lengths are u64),
# memory does: a writer holds an open chunk of up to 2 x chunk_size per tensor plus
# ChunkWriter.DEPTH sealed ones in flight, a reader of a tiled file up to five tile
# buffers of chunk_size. 256 MiB (32 x Deep Lake's 8 MB) keeps that near 1.5 GB per
# tensor written, and every chunk under S3's 5 GB single-PUT limit.
MAX_CHUNK_SIZE = 256 << 20
MAX_CHUNK_FACTOR = 2  # a chunk's maximum: 2 x chunk_size, 16 MB for the default
PREFETCH_MEMORY = 4096  # chunks remembered as prefetched (then asked again: cheap hints)


class IdAllocator:
    """Hands out object ids from the manifest's counter (consecutive blocks for tiles)."""

    def __init__(self, next_id: int) -> None:
        self.next_id = next_id
        self._lock = threading.Lock()

    def take(self, n: int = 1) -> int:
        with self._lock:
            first = self.next_id
            self.next_id += n
            return first

    def give_back(self, start: int, end: int) -> None:
        """Return the unused ids ``start..end-1`` of a block if none were taken after it."""
        with self._lock:
            if self.next_id == end:
                self.next_id = start


class ChunkEngine:
    def __init__(
        self,
        storage: Storage,
        tid: str,
        kind: ChunkKind,
        ids: IdAllocator,
        cache: ChunkCache,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compress: Callable[[bytes], bytes] | None = None,
        decompress: Callable[[bytes], bytes] | None = None,
        writer: ChunkWriter | None = None,
        explain_missing: Callable[[str], str] | None = None,
    ) -> None:
        self.storage = storage
        self.tid = tid
        self.kind = kind
        self.ids = ids
        self.cache = cache
        self.chunk_size = chunk_size
        self.max_chunk = chunk_size * MAX_CHUNK_FACTOR
        self._compress = compress
        self._decompress = decompress
        self.writer = writer  # None: sealed chunks are put synchronously
        self._explain_missing = explain_missing  # key → why that chunk is missing (the dataset knows)
        self._prefetched: set[int] = set()  # chunks whose whole object was asked for ahead
        self._touched: set[int] = set()  # chunks read from
        self._tiles = self.tile_window()  # for read_range calls without a window of their own
        self.index = SampleIndex()
        # The open chunk: the samples' own bytes objects (chunkfmt.OpenChunk), sealed
        # and put without being copied into one buffer.
        self._open = chunkfmt.OpenChunk()
        self._open_id: int | None = None
        self._open_state: tuple[int | None, chunkfmt.OpenChunk] = (None, self._open)
        self.obsolete: list[str] = []  # keys to delete once the next commit is visible
        # Chunks put (or being put) that no published commit references: a writer that
        # gives up deletes them (Dataset.abandon), so their space is free again.
        self.unpublished: set[int] = set()
        self._undo: tuple | None = None  # what commit_index changed, for roll_back
        self._streams: weakref.WeakSet[TileStream] = weakref.WeakSet()  # open_stream()s

    # --- write path ----------------------------------------------------------------------

    def write(
        self,
        row: int,
        stored: bytes | bytearray | memoryview,
        *,
        shape: tuple[int, ...],
        mtime_ns: int,
        mode: int,
        ext: int = 0,
        flags: int = 0,
        file_size: int | None = None,
    ) -> None:
        """Store ``stored`` as the sample at ``row`` (replacing any previous one).

        A sealed chunk or tile is written behind (``ChunkWriter``) when the engine has a
        writer: a storage failure then surfaces at the next commit, which publishes
        nothing and keeps the data for a retry. ``file_size`` is the sample's size seen
        as a file (defaults to the stored length).
        """
        if len(shape) > MAX_NDIM:
            raise InvalidSampleError(f"at most {MAX_NDIM} dimensions are supported")
        if self.writer is not None:
            self.writer.check()  # a chunk that could not be stored: no more samples
        if not isinstance(stored, bytes):  # the open chunk keeps it: it must not change
            stored = bytes(stored)
        n = len(stored)
        crc = crc32(stored)
        if n > self.max_chunk:
            chunk_id, tiles = self._write_tiles(stored)
            offset = 0
        else:
            filled = self._open.size
            if filled and filled + n > self.chunk_size:
                self.seal()
            if self._open_id is None:
                self._open_id = self.ids.take()
                self._open_state = (self._open_id, self._open)
            chunk_id, offset, tiles = self._open_id, self._open.append(stored), 1
        self._set_entry(row, chunk_id, offset, n, n if file_size is None else file_size, crc,
                        tiles, shape, mtime_ns, mode, ext, flags)

    def _set_entry(self, row: int, chunk_id: int, offset: int, n: int, file_size: int, crc: int,
                   tiles: int, shape: tuple[int, ...], mtime_ns: int, mode: int, ext: int, flags: int) -> None:
        # One tuple assignment instead of a record and a dozen field writes: this is the
        # per-sample hot path (ENTRY field order; see lakefs/format/index.py).
        padded = (*shape, 0, 0, 0, 0, 0, 0)[:MAX_NDIM]
        self.index.set(row, (
            row, chunk_id, offset, n, file_size, crc, tiles, mtime_ns, mode, ext, flags, len(shape), 0, padded,
        ))

    def open_stream(self) -> TileStream:
        """A sample to be written piece by piece as tiles (see lakefs.chunks.stream)."""
        if self.kind == ChunkKind.CHUNK_COMPRESSED:
            raise InvalidSampleError("chunk-compressed tensors cannot stream samples")
        if self.writer is not None:
            self.writer.check()
        stream = TileStream(self)
        self._streams.add(stream)
        return stream

    def write_stream(self, row: int, stream: TileStream, *, shape: tuple[int, ...], mtime_ns: int,
                     mode: int, ext: int = 0, flags: int = 0) -> None:
        """Make the finished ``stream`` the sample at ``row`` (its tiles are already written)."""
        if len(shape) > MAX_NDIM:
            raise InvalidSampleError(f"at most {MAX_NDIM} dimensions are supported")
        first, tiles = stream.finish()
        self._set_entry(row, first, 0, stream.size, stream.size, stream.crc, tiles, shape, mtime_ns, mode,
                        ext, flags)

    def _write_tiles(self, stored: bytes | bytearray | memoryview) -> tuple[int, int]:
        view = memoryview(stored)
        tiles = (len(view) + self.chunk_size - 1) // self.chunk_size
        first = self.ids.take(tiles)
        for t in range(tiles):  # written behind like sealed chunks: encode overlaps the I/O
            piece = view[t * self.chunk_size : (t + 1) * self.chunk_size]
            self._put_chunk(first + t, piece, behind=True)
        return first, tiles

    def _put_chunk(self, chunk_id: int, payload: bytes | bytearray | memoryview, *, behind: bool = False) -> None:
        self.put_sealed(chunk_id, chunkfmt.encode(self.kind, payload, self._compress), behind=behind)

    def put_sealed(self, chunk_id: int, blob: bytes | bytearray | chunkfmt.OpenChunk, *,
                   behind: bool = True) -> None:
        """Put a whole chunk object (written behind when the engine has a writer)."""
        self.unpublished.add(chunk_id)  # (first: a failed put may leave a piece behind)
        if behind and self.writer is not None:
            self.writer.submit(keys.chunk(self.tid, chunk_id), blob)
        else:
            put_chunk(self.storage, keys.chunk(self.tid, chunk_id), blob)

    def seal(self) -> None:
        """Hand the open chunk to storage (behind, with a writer; a failed put is kept
        there and retried at the next commit) and start a new one."""
        if self._open_id is None:  # not `not self._open`: empty samples still point at it
            return
        if self.kind == ChunkKind.CHUNK_COMPRESSED:
            self._put_chunk(self._open_id, self._open.payload(), behind=True)
        else:
            self.put_sealed(self._open_id, self._open.seal(self.kind))
        self._open = chunkfmt.OpenChunk()
        self._open_id = None
        self._open_state = (None, self._open)

    def update_meta(self, row: int, *, mtime_ns: int | None = None, mode: int | None = None) -> None:
        e = self.index.entry(row)
        if e is None:
            raise SampleNotFoundError(f"no sample at row {row}")
        if mtime_ns is not None:
            e["mtime_ns"] = mtime_ns
        if mode is not None:
            e["mode"] = mode
        self.index.set(row, e)

    def move(self, src: int, dst: int) -> None:
        """Move the sample at row ``src`` to row ``dst`` (no data is copied)."""
        e = self.index.entry(src)
        if e is None:
            raise SampleNotFoundError(f"no sample at row {src}")
        self.index.set(dst, e)
        self.index.clear(src)

    def delete(self, row: int) -> None:
        if self.index.entry(row) is None:
            raise SampleNotFoundError(f"no sample at row {row}")
        self.index.clear(row)

    # --- read path -----------------------------------------------------------------------

    def read(self, row: int) -> bytes:
        """The stored bytes of the sample at ``row``, verified against its checksum."""
        e = self.index.entry(row)
        if e is None:
            raise SampleNotFoundError(f"no sample at row {row}")
        return self.read_entry(e)

    def read_entry(self, e: np.void) -> bytes:
        # One .item() (a tuple of Python ints) costs less than four field reads.
        _, chunk_id, off, n, _, crc, tiles, *_ = e.item()  # (ENTRY field order, checked below)
        open_id, open_chunk = self._open_state  # one read: seal() may swap it concurrently
        try:
            if chunk_id == open_id and tiles == 1:
                data = open_chunk.sample(off, n)
            elif tiles > 1:
                data = b"".join(self._payload(chunk_id + t) for t in range(tiles))[:n]
            elif self.kind == ChunkKind.CHUNK_COMPRESSED:
                data = self._payload(chunk_id)[off : off + n]
            else:
                data = None
        except CorruptionError as err:  # name the sample, not only the chunk
            raise CorruptionError(f"row {int(e['row'])}: {err}") from err
        if data is None:
            key = keys.chunk(self.tid, chunk_id)
            blob = self.writer.pending(key) if self.writer is not None else None
            try:
                if isinstance(blob, chunkfmt.OpenChunk):  # sealed, still being written behind
                    data = blob.sample(off, n)
                elif blob is not None:
                    data = blob[chunkfmt.HEADER.size + off : chunkfmt.HEADER.size + off + n]
                else:
                    if chunk_id not in self._touched:  # whole chunks ahead: the next
                        self._prefetch(chunk_id, key)     # samples of it are cache reads
                    start = chunkfmt.HEADER.size + off
                    data = self.storage.get_range(key, start, n)
                    if len(data) == n and crc32(data) == crc:
                        return data  # (checked once: the common read)
                    if self.storage.invalidate(key):
                        data = self.storage.get_range(key, start, n)  # a damaged local copy: once more
            except ObjectNotFoundError as err:
                raise CorruptionError(f"row {int(e['row'])}: {self._missing(key)}") from err
        if len(data) != n or crc32(data) != crc:
            raise CorruptionError(
                f"row {int(e['row'])}: sample checksum mismatch in chunk "
                f"{keys.chunk(self.tid, chunk_id)} (stored data is damaged)"
            )
        return data

    def _prefetch(self, chunk_id: int, key: str) -> None:
        """At the first read of a chunk, ask for all of it ahead; when reads moved on from
        the chunk before (an epoch in row order, ``cat`` of a directory), ask for the next
        one too, so the disk or the network works while this chunk's samples are served."""
        if len(self._touched) > PREFETCH_MEMORY:
            self._touched.clear()
            self._prefetched.clear()
        self._touched.add(chunk_id)
        if chunk_id not in self._prefetched:
            self._prefetched.add(chunk_id)
            self.storage.prefetch(key)
        if chunk_id - 1 in self._touched and chunk_id + 1 not in self._prefetched:
            self._prefetched.add(chunk_id + 1)
            self.storage.prefetch(keys.chunk(self.tid, chunk_id + 1))

    def tile_window(self) -> TileWindow:
        """A window of tiles for one reader of large samples (an open file): each reader
        keeps its own few tiles, so two files read at once do not evict each other's.
        A buffer holds a whole tile object (+1 byte: a longer object is damaged)."""
        return TileWindow(self._tile, chunkfmt.HEADER.size + self.chunk_size + 1, self._hint_tile)

    def read_range(self, e: np.void, offset: int, size: int, window: TileWindow | None = None) -> bytes | memoryview:
        """``size`` stored bytes of a sample from ``offset``.

        A tiled sample is read tile by tile, each tile verified by its chunk checksum,
        so reading a piece of a multi-GB file never loads the whole file. A piece within
        one tile is a read-only view of the verified tile (no copy); sequential reading
        loads the next tile ahead, in ``window`` (:meth:`tile_window`; else one shared
        by the tensor). Other samples are read whole (at most a chunk) and verified by
        their own checksum.
        """
        n, tiles = int(e["length"]), int(e["tiles"])
        if tiles <= 1:
            return self.read_entry(e)[offset : offset + size]
        first = int(e["chunk"])
        end = min(n, offset + size)
        window = self._tiles if window is None else window
        pieces = []
        pos = offset
        while pos < end:
            t, within = divmod(pos, self.chunk_size)
            chunk_id = first + t
            # Read ahead only for a reader that goes through the file in order.
            sequential = t + 1 < tiles and (t == 0 or chunk_id - 1 in window)
            try:
                if sequential:
                    payload = window.get(chunk_id, chunk_id + 1, chunk_id + 2 if t + 2 < tiles else None)
                else:
                    payload = window.get(chunk_id)
            except CorruptionError as err:
                raise CorruptionError(f"row {int(e['row'])}: {err}") from err
            piece = payload[within : within + (end - pos)]
            if not piece:
                raise CorruptionError(f"row {int(e['row'])}: tile {t} is shorter than the sample says")
            pieces.append(piece)
            pos += len(piece)
        if len(pieces) == 1:
            return pieces[0].toreadonly()
        return b"".join(pieces)

    def _tile(self, chunk_id: int, buf: memoryview) -> memoryview:
        """The verified payload of one tile (for TileWindow): read into ``buf`` and served
        from there, except a compressed tile or one still being written behind."""
        key = keys.chunk(self.tid, chunk_id)
        blob = self.writer.pending(key) if self.writer is not None else None
        if isinstance(blob, chunkfmt.OpenChunk):
            blob = b"".join(blob.parts())
        if blob is not None:
            return memoryview(chunkfmt.decode_view(blob, key, self._decompress))
        if self.kind != ChunkKind.CHUNK_COMPRESSED:
            def read() -> memoryview:
                return buf[: self.storage.readinto(key, 0, buf)]
        else:
            def read() -> bytes:
                return self.storage.get(key)
        try:
            return memoryview(read_verified(self.storage, key, read, self._decoder(key, view=True)))
        except ObjectNotFoundError as err:
            raise CorruptionError(self._missing(key)) from err

    def _decoder(self, key: str, view: bool = False) -> Callable[[bytes | memoryview], bytes | memoryview]:
        """The verifying decode of chunk ``key`` (for read_verified)."""
        decode = chunkfmt.decode_view if view else chunkfmt.decode
        return lambda blob: decode(blob, key, self._decompress)

    def _missing(self, key: str) -> str:
        """Why chunk ``key`` is not there: the dataset can tell damage from a reader's
        snapshot that a writer's compact or tensor deletion went past."""
        if self._explain_missing is None:
            return f"chunk {key} is missing"
        return self._explain_missing(key)

    def chunk_header(self, chunk_id: int) -> tuple[ChunkKind, int, int, int]:
        """(kind, payload_len, stored_len, crc) of the stored chunk ``chunk_id``, read from
        its first bytes alone."""
        key = keys.chunk(self.tid, chunk_id)
        return read_verified(self.storage, key, lambda: self.storage.get_range(key, 0, chunkfmt.HEADER.size),
                             lambda blob: chunkfmt.parse_header(blob, key))

    def _hint_tile(self, chunk_id: int) -> None:
        self.storage.prefetch(keys.chunk(self.tid, chunk_id))

    def _payload(self, chunk_id: int) -> bytes:
        key = keys.chunk(self.tid, chunk_id)
        payload = self.cache.get(key)
        if payload is None:
            blob = self.writer.pending(key) if self.writer is not None else None
            if isinstance(blob, chunkfmt.OpenChunk):
                blob = b"".join(blob.parts())
            if blob is not None:
                payload = chunkfmt.decode(blob, key, self._decompress)
            else:
                try:
                    payload = read_verified(self.storage, key, lambda: self.storage.get(key), self._decoder(key))
                except ObjectNotFoundError as err:
                    raise CorruptionError(self._missing(key)) from err
            self.cache.put(key, payload)
        return payload

    @staticmethod
    def shape_of(e: np.void) -> tuple[int, ...]:
        return tuple(int(x) for x in e["shape"][: int(e["ndim"])])

    # --- commit --------------------------------------------------------------------------

    def commit_index(self, held: np.ndarray | None = None) -> bool:
        """Seal the open chunk and write the changed rows as a new index segment.

        Returns True when something was written. Merged-away segments are queued in
        ``obsolete`` for deletion after the manifest naming the new ones is visible.
        ``held`` rows (:meth:`held_rows`) are written as the last published commit has
        them, or left out when it has none there, and stay changed for the next commit.
        Until :meth:`published` or :meth:`roll_back`, the change can be undone.
        """
        self.seal()
        self._undo = None
        if not self.index.dirty:
            return False
        rows = self.index.take_dirty()
        write = rows
        if held is not None and len(held):  # a held row the last commit has nothing at: left out
            hold = set(held.tolist())
            write = np.array([r for r in rows.tolist() if r not in hold or self.index.published_entry(r) is not None],
                             dtype=np.int64)
            if not len(write):
                self.index.mark_dirty(rows)
                return False
        new = SegmentRef(self.ids.take(), len(write), write)
        segs = [*self.index.segments, new]
        merge = plan_merge(segs)
        if merge:
            merged_rows = np.unique(np.concatenate([s.rows for s in merge]))
            new = SegmentRef(new.seg_id, len(merged_rows), merged_rows)
            segs = [*segs[: len(segs) - len(merge)], new]
        key = keys.index_segment(self.tid, new.seg_id)
        try:
            self.storage.put(key, self.index.encode_rows(new.rows, held))
        except BaseException:
            self.index.mark_dirty(rows)  # the next commit retries them
            raise
        self._undo = (self.index.segments, list(self.obsolete), rows, key)
        self.obsolete += [keys.index_segment(self.tid, s.seg_id) for s in merge if s.seg_id != new.seg_id]
        self.index.segments = segs
        if held is not None and len(held):
            self.index.mark_dirty(held)
        return True

    def roll_back(self) -> str | None:
        """Undo :meth:`commit_index` (the commit was not published): its rows are changed
        again, its segment is out of the list. Returns that segment's key (no manifest
        HEAD names it: the caller deletes it) or None."""
        if self._undo is None:
            return None
        self.index.segments, self.obsolete, rows, key = self._undo
        self._undo = None
        self.index.mark_dirty(rows)
        return key

    def held_rows(self, unstored: Iterable[str]) -> np.ndarray:
        """The changed rows whose sample has a chunk among ``unstored`` (keys whose put
        failed: a full disk). A commit can publish the other rows without them."""
        prefix = keys.chunk_prefix(self.tid)
        ids = {keys.parse_id(k) for k in unstored if k.startswith(prefix)}
        rows = self.index.dirty_rows()
        if not ids or not len(rows):
            return rows[:0]
        e = self.index.entries_at(rows)
        chunk, tiles = e["chunk"], e["tiles"]
        bad = np.isin(chunk, np.fromiter(ids, dtype=np.int64)) & (chunk != NO_CHUNK)
        for i in np.flatnonzero((tiles > 1) & (chunk != NO_CHUNK)).tolist():
            first = int(chunk[i])
            bad[i] = any(c in ids for c in range(first, first + int(tiles[i])))
        return rows[bad]

    def published(self, held: np.ndarray | None = None) -> None:
        """A commit was published with every change but those of ``held`` rows: the chunks
        it references are not this writer's to delete any more (:attr:`unpublished`)."""
        self._undo = None
        if self.unpublished:
            rows = self.index.unpublished_rows()
            rows = rows[rows < len(self.index)]
            if held is not None and len(held):
                rows = np.setdiff1d(rows, held)
            e = self.index.entries_at(rows)
            e = e[e["chunk"] != NO_CHUNK]
            single = e["tiles"] <= 1
            self.unpublished.difference_update(e["chunk"][single].tolist())
            for first, n in zip(e["chunk"][~single].tolist(), e["tiles"][~single].tolist()):
                self.unpublished.difference_update(range(first, first + n))
        self.index.published(held)

    def segment_refs(self) -> list[dict]:
        return [s.to_json() for s in self.index.segments]

    def load_index(self, refs: Iterable[dict]) -> None:
        for ref in refs:
            key = keys.index_segment(self.tid, int(ref["id"]))
            try:
                count, body = read_verified(self.storage, key, functools.partial(self.storage.get, key),
                                            functools.partial(segments.unpack_exact, kind=segments.KIND_INDEX,
                                                              where=key, count=int(ref["count"]), what="entries"))
            except ObjectNotFoundError as err:
                raise CorruptionError(f"index segment {key} is missing") from err
            rows = self.index.apply_segment(body, count, key)
            self.index.segments.append(SegmentRef(int(ref["id"]), count, rows))

    # --- maintenance ---------------------------------------------------------------------

    def live_chunks(self) -> set[int]:
        """Chunks the index points at, and the tiles of streams still being written
        (nothing points at those yet: ``compact`` must not take them for garbage)."""
        live = self.index.live()
        out: set[int] = set()
        for c, t in zip(live["chunk"].tolist(), live["tiles"].tolist()):
            out.update(range(c, c + t))
        for stream in list(self._streams):
            if not stream.closed:
                out.update(range(stream.first, stream.first + stream.tiles))
        return out


