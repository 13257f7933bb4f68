"""The tiles of large samples being read: a small window of verified tiles, read ahead.

A FUSE read of a big file asks for at most 1 MiB at a time; a tile is 8 MB. Each tile is
read whole and its checksum verified once, then every request within it is served as a
view of the verified bytes (the only copy left is the binding's, into the FUSE buffer).
While a reader goes through tile ``t``, tile ``t + 1`` is read and verified on a
background thread, so the disk (or the network) works while the current tile is served.

Memory stays bounded: at most ``size`` tiles per tensor (plus views a caller still
holds), whatever the file size; tiles do not go through the chunk cache, so reading a
multi-GB file does not flush the small chunks cached there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

WINDOW = 4  # tiles kept per tensor: the current and next tile of two sequential readers

# One shared pool for every tensor: read-ahead is a hint, two threads keep a disk or a
# store busy without one thread per open file.
_ahead = ThreadPoolExecutor(2, thread_name_prefix="lakefs-tile-ahead")


class TileWindow:
    """Verified tile payloads by chunk id, loaded by ``load(chunk_id)`` (which verifies)."""

    def __init__(self, load: Callable[[int], memoryview], hint: Callable[[int], None] | None = None,
                 size: int = WINDOW) -> None:
        self._load = load
        self._hint = hint
        self._size = size
        self._lock = threading.Lock()
        self._tiles: OrderedDict[int, Future] = OrderedDict()

    def get(self, chunk_id: int, ahead: int | None = None, hint: int | None = None) -> memoryview:
        """The payload of tile ``chunk_id``; with ``ahead``, also start loading that tile
        in the background unless it is already there, and then pass ``hint`` (the tile
        after it) to ``hint``, off the caller's thread: a storage hint can block."""
        with self._lock:
            future = self._tiles.get(chunk_id)
            mine = future is None
            if mine:
                future = self._tiles[chunk_id] = Future()
            else:
                self._tiles.move_to_end(chunk_id)
            if ahead is not None and ahead not in self._tiles:
                self._tiles[ahead] = _ahead.submit(self._load_ahead, ahead, hint)
            while len(self._tiles) > self._size:
                self._tiles.popitem(last=False)
        if mine:  # loaded here, not queued behind read-ahead work
            try:
                future.set_result(self._load(chunk_id))
            except BaseException as e:
                future.set_exception(e)
        try:
            return future.result()
        except BaseException:
            self._forget(chunk_id, future)  # a failure is not remembered: the next read retries
            raise

    def _load_ahead(self, chunk_id: int, hint: int | None) -> memoryview:
        if hint is not None and self._hint is not None:
            self._hint(hint)  # first: the disk reads that tile while this one is read
        return self._load(chunk_id)

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self._tiles

    def _forget(self, chunk_id: int, future: Future) -> None:
        with self._lock:
            if self._tiles.get(chunk_id) is future:
                del self._tiles[chunk_id]

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
