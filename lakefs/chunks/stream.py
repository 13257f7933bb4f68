"""A large sample written as it arrives: tile after tile, never whole in memory.

A file copied into the mount is only known to be complete at its close, but a big file
(a video, a tarball, a dataset shard) cannot wait there: buffering it means holding it
in memory or writing it twice (a temp file, then the tiles). A :class:`TileStream` seals
each full tile as soon as it has arrived and hands it to the chunk writer, exactly as
:meth:`ChunkEngine.write` would have tiled the whole sample, so the stored layout is the
same byte for byte. Nothing points at the tiles until :meth:`finish`'s index entry is
committed; an abandoned stream leaves its tiles to be deleted after the next commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakefs.chunks.chunk import HEADER, payload_buffer, seal_buffer
from lakefs.errors import CorruptionError, InvalidSampleError, StorageError, message_of
from lakefs.format import keys
from lakefs.format.checksum import crc32

if TYPE_CHECKING:
    from lakefs.chunks.engine import ChunkEngine

# Tile ids must be consecutive, and other samples may seal chunks while a stream is
# open, so a stream reserves a block up front (ids are 64-bit; the unused tail goes
# back to the allocator when nobody took ids after it). 2^20 tiles of 8 MB = 8 TiB.
RESERVED_TILES = 1 << 20


class TileStream:
    def __init__(self, engine: ChunkEngine) -> None:
        self.engine = engine
        self.first = engine.ids.take(RESERVED_TILES)
        self.tiles = 0  # sealed and handed to the writer
        self.size = 0
        self.crc = 0
        self._buf = payload_buffer()  # the tile being filled, in its final layout
        self.closed = False
        self._broken: BaseException | None = None  # a write that failed part way

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; every tile that fills up is written behind at once.

        A write refused before it is taken (no room left, a tile put that still fails on
        a full disk) leaves the stream as it was: the writer may retry it, and the file's
        close commits only what was taken. A write that fails part way, with some of its
        tiles gone out (an interrupt), cannot be taken back: the stream is broken, and
        refuses more writes and :meth:`finish`, so that no entry counting bytes that were
        never stored is committed."""
        if self.closed:
            raise InvalidSampleError("the stream is closed")
        self._check_whole()
        size = self.engine.chunk_size
        view = memoryview(data)
        pos, n = 0, len(view)
        self._check_room((len(self._buf) - HEADER.size + n) // size)  # the tiles it fills
        tiles, buffered = self.tiles, len(self._buf)
        try:
            while pos < n:
                filled = len(self._buf) - HEADER.size
                if not filled and n - pos >= size:  # a whole tile straight from the caller
                    self.engine._put_chunk(self.first + self.tiles, view[pos : pos + size], behind=True)
                    self.tiles += 1
                    pos += size
                    continue
                take = min(size - filled, n - pos)
                self._buf += view[pos : pos + take]
                pos += take
                if len(self._buf) - HEADER.size == size:
                    self._seal_buffer()
        except BaseException as e:
            if self.tiles == tiles:  # no tile went out: undone
                del self._buf[buffered:]
            else:
                self._broken = e
            raise
        self.crc = crc32(data, self.crc)
        self.size += n

    def _seal_buffer(self) -> None:
        """The tile built in ``_buf`` goes out as it is (header filled in, no copy)."""
        blob = seal_buffer(self.engine.kind, self._buf)
        self.engine.put_sealed(self.first + self.tiles, blob)
        self._buf = payload_buffer()  # (after the put: a put that raised keeps the bytes)
        self.tiles += 1

    def _check_room(self, tiles: int) -> None:
        """Before a write that fills ``tiles`` tiles: room for them, and no tile whose put
        failed and still fails (``ChunkWriter.check``, as before each sample): one big
        file written while the store is down (or the disk full) fails at its next tile,
        where it went on being taken in, tile after failed tile held in memory, until
        its close."""
        if not tiles:
            return
        if self.tiles + tiles > RESERVED_TILES:
            raise InvalidSampleError(f"a file may hold at most {RESERVED_TILES} tiles")
        if self.engine.writer is not None:
            self.engine.writer.check()

    def _check_whole(self) -> None:
        """Refuse a stream broken by a write that failed part way (see :meth:`write`)."""
        if self._broken is not None:
            raise StorageError(
                f"an earlier write to this file failed part way ({message_of(self._broken)}): "
                f"its stored tiles are incomplete"
            ) from self._broken

    def read(self, offset: int, size: int) -> bytes:
        """Bytes written so far (a reader of the file still being written)."""
        end = min(self.size, offset + size)
        chunk = self.engine.chunk_size
        pieces = []
        pos = offset
        while pos < end:
            t, within = divmod(pos, chunk)
            if t < self.tiles:
                piece = self.engine._payload(self.first + t)[within : within + (end - pos)]
            else:
                piece = bytes(self._buf[HEADER.size + within : HEADER.size + within + (end - pos)])
            if not piece:  # a tile shorter than it should be: never loop on it
                raise CorruptionError(f"streamed tile {t} is shorter than the bytes written to it")
            pieces.append(piece)
            pos += len(piece)
        return b"".join(pieces)

    def finish(self) -> tuple[int, int]:
        """Seal the last partial tile; (first chunk id, tiles) for the index entry."""
        if not self.closed:
            self._check_whole()
            if len(self._buf) > HEADER.size or not self.tiles:
                self._check_room(1)
                self._seal_buffer()
            self.closed = True
            self._give_back()
        return self.first, self.tiles

    def abort(self) -> None:
        """Forget the stream: its tiles are deleted after the next commit."""
        if not self.closed:
            self.closed = True
            self._buf = payload_buffer()
            self._give_back()
        self.engine.obsolete += [keys.chunk(self.engine.tid, self.first + t) for t in range(self.tiles)]

    def _give_back(self) -> None:
        self.engine.ids.give_back(self.first + self.tiles, self.first + RESERVED_TILES)
