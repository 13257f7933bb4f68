"""The tiles of large samples being read: a small window of verified tiles, read ahead.

A FUSE read of a big file asks for at most 1 MiB at a time (128 KiB with the kernel's
default readahead); a tile is 8 MB. Each tile is read whole into a buffer and its
checksum verified once, then every request within it is served as a view of the
verified bytes (the only copy left is the binding's, into the FUSE buffer). While a
reader goes through tile ``t``, tile ``t + 1`` is read and verified on a background
thread, so the disk (or the network) works while the current tile is served.

Memory stays bounded: a window (one per open file) holds at most ``WINDOW`` tiles plus
``SPARE`` buffers kept for reuse, whatever the file size; tiles do not go through the
chunk cache, so reading a multi-GB file does not flush the small chunks cached there. Buffers are reused (no new
8 MB of pages, which the kernel zeroes, per tile) but only once no view of them is
alive: a caller may hold a served piece as long as it likes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

WINDOW = 3  # tiles kept per reader: the previous (out-of-order requests), current and next
SPARE = 2  # buffers of evicted tiles kept for reuse

# One shared pool for every window: two threads keep a disk or a store busy without a
# thread per open file.
_ahead = ThreadPoolExecutor(2, thread_name_prefix="lakefs-tile-ahead")

Loader = Callable[[int, memoryview], memoryview]


def _exported(buf: bytearray) -> bool:
    """True while a memoryview of ``buf`` is alive. A bytearray refuses to change size
    while exported (BufferError), so shrink it by a byte and grow it back (within its
    allocation: nothing is copied)."""
    try:
        del buf[-1:]
    except BufferError:
        return True
    buf.append(0)
    return False


class TileWindow:
    """Verified tile payloads by chunk id.

    ``load(chunk_id, buf)`` reads and verifies a tile, into ``buf`` (``buffer_size``
    bytes) when it can, and returns the payload as a view (of ``buf`` or of another
    object); ``hint(chunk_id)`` tells storage a tile will be read soon.
    """

    def __init__(self, load: Loader, buffer_size: int, hint: Callable[[int], None] | None = None,
                 size: int = WINDOW) -> None:
        self._load = load
        self._buffer_size = buffer_size
        self._hint = hint
        self._size = size
        self._lock = threading.Lock()
        self._tiles: OrderedDict[int, tuple[Future, bytearray]] = OrderedDict()
        self._spare: list[bytearray] = []

    def get(self, chunk_id: int, ahead: int | None = None, hint: int | None = None) -> memoryview:
        """The payload of tile ``chunk_id``; with ``ahead``, also start loading that tile
        in the background unless it is already there, and first pass ``hint`` (the tile
        after it) to ``hint``, off the caller's thread: a storage hint can block."""
        with self._lock:
            item = self._tiles.get(chunk_id)
            mine = item is None
            if mine:
                buf = self._buffer()
                view = memoryview(buf)  # held until the load is done: buf stays exported
                future = self._running()
                self._tiles[chunk_id] = (future, buf)
            else:
                future = item[0]
                self._tiles.move_to_end(chunk_id)
                if future.cancel():  # still queued behind other read-ahead: load it here
                    mine, buf = True, item[1]
                    view = memoryview(buf)
                    future = self._running()
                    self._tiles[chunk_id] = (future, buf)
            if ahead is not None and ahead not in self._tiles:
                abuf = self._buffer()
                self._tiles[ahead] = (_ahead.submit(self._load_ahead, ahead, memoryview(abuf), hint), abuf)
            while len(self._tiles) > self._size:
                self._spare.append(self._tiles.popitem(last=False)[1][1])
            del self._spare[:-SPARE]  # older ones are freed once their views are gone
        if mine:  # loaded here, not queued behind read-ahead work
            try:
                future.set_result(self._load(chunk_id, view))
            except BaseException as e:
                future.set_exception(e)
            del view
        try:
            return future.result()
        except BaseException:
            self._forget(chunk_id, future)  # a failure is not remembered: the next read retries
            raise

    @staticmethod
    def _running() -> Future:
        """A future for a load done by the caller: running, so no one can cancel it."""
        future: Future = Future()
        future.set_running_or_notify_cancel()
        return future

    def _buffer(self) -> bytearray:
        """A spare buffer no view refers to any more, else a new one."""
        for i, buf in enumerate(self._spare):
            if not _exported(buf):
                del self._spare[i]
                return buf
        return bytearray(self._buffer_size)

    def _load_ahead(self, chunk_id: int, buf: memoryview, hint: int | None) -> memoryview:
        if hint is not None and self._hint is not None:
            self._hint(hint)  # first: the disk reads that tile while this one is read
        return self._load(chunk_id, buf)

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self._tiles

    def _forget(self, chunk_id: int, future: Future) -> None:
        with self._lock:
            item = self._tiles.get(chunk_id)
            if item is not None and item[0] is future:
                del self._tiles[chunk_id]
                self._spare.append(item[1])
                del self._spare[:-SPARE]
