"""Write-behind of sealed chunks: put to storage on a background thread.

A sealed chunk is immutable and nothing references it until a commit publishes the
index that points at it, so its put (and the fsync inside it) need not block the writer
that filled it: the FUSE thread goes on accepting files while the previous chunk is made
durable. A commit calls :meth:`ChunkWriter.drain` before it publishes anything, so the
crash argument is unchanged: data first, visible last. Chunks are put without a flush
each (``sync=False``) and made durable together by ``drain`` (``Storage.sync``): on a
local disk that is 2.5x cheaper than an fsync per chunk.

Until a put has finished, reads of that chunk are served from its blob here. A failed
put keeps its blob: ``drain`` puts it again, and raises if that fails too (the commit
fails and the caller sees it; the next ``drain`` tries again). Until such a blob is put, the engine
takes no new sample (:meth:`ChunkWriter.check` raises the failure, after one more try):
on a full disk a writer gets ENOSPC at once, and memory stays bounded, instead of every
later file being accepted into chunks that can never be stored.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from lakefs.chunks.chunk import OpenChunk
from lakefs.storage.base import Storage

log = logging.getLogger("lakefs.chunks")


def put_chunk(storage: Storage, key: str, blob: bytes | bytearray | memoryview | OpenChunk, *,
              sync: bool = True) -> None:
    """Put a chunk object, whole or (a sealed :class:`OpenChunk`) in parts."""
    if isinstance(blob, OpenChunk):
        storage.put_parts(key, blob.parts(), sync=sync)
    else:
        storage.put(key, blob, sync=sync)


DEPTH = 2  # chunks in flight at most: bounds memory at DEPTH x 16 MB


class ChunkWriter:
    def __init__(self, storage: Storage, depth: int = DEPTH) -> None:
        self.storage = storage
        self.depth = depth
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lakefs-chunk-writer")
        self._lock = threading.Lock()
        # key → (blob, future); future None: failed, reported, to be put again by drain
        self._pending: dict[str, tuple[bytes | bytearray | OpenChunk, Future | None]] = {}
        self._failed = False  # some put failed and its blob has not been put since

    def submit(self, key: str, blob: bytes | bytearray | OpenChunk) -> None:
        """Put ``blob`` at ``key`` in the background (waits while ``depth`` are in flight)."""
        self._throttle()
        try:
            future = self._executor.submit(self._put, key, blob)
        except RuntimeError:  # the interpreter is exiting (the commit at exit): put it here
            self._put(key, blob)  # (made durable by the commit's drain)
            return
        with self._lock:
            self._pending[key] = (blob, future)
        future.add_done_callback(lambda f, key=key: self._done(key, f))

    def _done(self, key: str, future: Future) -> None:
        with self._lock:
            if future.exception() is not None:
                self._failed = True
            elif self._pending.get(key, (None, None))[1] is future:
                del self._pending[key]

    def check(self) -> None:
        """Raise if a put failed and putting its blob again still fails (a full disk);
        called before each new sample. Costs one attribute test while nothing failed."""
        if not self._failed:
            return
        with self._lock:
            self._failed = False
            failed = [(key, blob, f) for key, (blob, f) in self._pending.items()
                      if f is None or (f.done() and f.exception() is not None)]
        for key, blob, future in failed:
            try:
                self._put(key, blob)  # (made durable by the next drain)
            except BaseException:
                self._failed = True
                raise
            log.warning("chunk %s stored on a second try (the first failed: %s)", key,
                        future.exception() if future is not None else "reported by a commit")
            with self._lock:
                if self._pending.get(key, (None, None))[0] is blob:
                    del self._pending[key]

    def _put(self, key: str, blob: bytes | bytearray | OpenChunk) -> None:
        put_chunk(self.storage, key, blob, sync=False)

    def _throttle(self) -> None:
        while True:
            with self._lock:
                running = [f for _, f in self._pending.values() if f is not None and not f.done()]
            if len(running) < self.depth:
                return
            running[0].exception()  # wait for one; errors are reported by drain

    def pending(self, key: str) -> bytes | bytearray | OpenChunk | None:
        """The blob of a chunk whose put has not finished (for reads), else None."""
        item = self._pending.get(key)
        return item[0] if item is not None else None

    def unstored(self) -> frozenset[str]:
        """The keys whose put failed and is not done yet, once every put in flight has
        ended: what a commit on a full disk holds back (see ``Dataset._publish_stored``)."""
        with self._lock:
            running = [f for _, f in self._pending.values() if f is not None]
        for future in running:
            future.exception()  # (waits; the failure stays recorded)
        with self._lock:
            return frozenset(key for key, (_, f) in self._pending.items() if f is None or f.exception() is not None)

    def drain(self, skip: frozenset[str] = frozenset()) -> None:
        """Make every submitted chunk durable, or raise the first failure.

        A chunk whose background put failed is put again here, and only a failure of
        that put is raised (the cause, a full disk, may be gone by now); failed chunks
        stay here, readable, for the next ``drain``. The chunks of ``skip`` are left
        as they are (a commit that holds their samples back).
        """
        with self._lock:
            items = [(key, item) for key, item in self._pending.items() if key not in skip]
            if len(items) < len(self._pending):
                self._failed = True  # (still to be put: checked before the next sample)
        first_error: BaseException | None = None
        for key, (blob, future) in items:
            failed = future is None or future.exception() is not None
            error = None
            if failed:  # put again now: the cause (a full disk) may be gone
                try:
                    self._put(key, blob)
                except Exception as e:
                    error = e
                    with self._lock:
                        self._pending[key] = (blob, None)
            if error is not None:
                first_error = first_error or error
                continue
            with self._lock:
                if self._pending.get(key, (None, None))[0] is blob:
                    del self._pending[key]
        if first_error is not None:
            self._failed = True
            raise first_error
        self.storage.sync()  # every put so far, durable before the commit publishes

    def close(self) -> None:
        self._executor.shutdown(wait=True)
