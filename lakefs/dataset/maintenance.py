"""Space reclamation (``compact``) and storage statistics of a dataset.

Updates and deletes leave dead bytes inside chunks, and frequent commits (a mount that
fsyncs every file) leave many small chunks. ``compact`` rewrites only the samples that
live in such chunks, commits, and only then deletes every object no commit references
any more: data first, visible last, garbage after (DESIGN §5).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from lakefs.chunks import chunk as chunkfmt
from lakefs.chunks.engine import ChunkEngine
from lakefs.format import keys

if TYPE_CHECKING:
    from lakefs.dataset.dataset import Dataset
    from lakefs.dataset.tensor import Tensor

LIVE_RATIO = 0.5  # a chunk with less than this share of live bytes is rewritten
SMALL_RATIO = 0.5  # chunks under this share of the target size are merged


def _stored_bytes(ds: Dataset, prefix: str) -> int:
    return sum(ds.storage.size(k) for k in ds.storage.list(prefix))


def chunks_to_rewrite(tensor: Tensor) -> set[int]:
    """Single (non-tile) chunks that are mostly dead, or small enough to merge."""
    eng = tensor._engine
    live = eng.index.live()
    used: dict[int, int] = defaultdict(int)
    for c, t, n in zip(live["chunk"].tolist(), live["tiles"].tolist(), live["length"].tolist()):
        if t == 1:
            used[c] += n
    sparse, small = set(), set()
    for c, n in used.items():  # called right after a commit: every chunk is sealed
        _, payload_len, _, _ = eng.chunk_header(c)
        if n < LIVE_RATIO * payload_len:
            sparse.add(c)
        elif payload_len < SMALL_RATIO * eng.chunk_size:
            small.add(c)
    return sparse | (small if len(small) > 1 else set())


def compact(ds: Dataset) -> dict[str, int]:
    """Rewrite the samples of sparse or small chunks, commit, delete the unreferenced."""
    ds._run_before_commit()  # before the lock: commit hooks take their own locks first
    with ds._lock:
        ds._check_writable()
        ds._delete_garbage(*ds._commit(), all_now=True)
        before = _stored_bytes(ds, keys.TENSORS)
        for tensor in ds._tensors.values():
            eng = tensor._engine
            rewrite = chunks_to_rewrite(tensor)
            if not rewrite:
                continue
            for row in eng.index.present_rows().tolist():
                e = eng.index.entry(row)
                if int(e["tiles"]) != 1 or int(e["chunk"]) not in rewrite:
                    continue
                eng.write(row, eng.read_entry(e), shape=ChunkEngine.shape_of(e), mtime_ns=int(e["mtime_ns"]),
                          mode=int(e["mode"]), ext=int(e["ext"]), flags=int(e["flags"]),
                          file_size=int(e["file_size"]))
            ds._touch()
        ds._delete_garbage(*ds._commit(), all_now=True)
        delete_unreferenced(ds)
        after = _stored_bytes(ds, keys.TENSORS)
        return {"bytes_before": before, "bytes_after": after, "reclaimed": before - after}


def delete_unreferenced(ds: Dataset) -> None:
    """Delete every object the current commit does not reference (crashed writers' and
    updates' leftovers). Readers of an older snapshot may fail afterwards and must reopen."""
    from lakefs.dataset.dataset import KEEP_MANIFESTS

    m = ds._manifest
    live: set[str] = {keys.MARKER, keys.HEAD}
    live.update(keys.manifest(s) for s in range(max(1, m.seq - KEEP_MANIFESTS + 1), m.seq + 1))
    live.update(keys.rows_segment(int(r["id"])) for r in m.rows)
    live.update(keys.staged_file(f.file_id) for f in m.files.values())
    live.update(keys.staged_file(i) for i in ds._staging)  # put, about to be published
    for tensor in ds._tensors.values():
        tid = tensor.meta.tid
        live.update(keys.index_segment(tid, int(s["id"])) for s in tensor.meta.segments)
        live.update(keys.chunk(tid, c) for c in tensor._engine.live_chunks())
    for prefix in (keys.MANIFESTS, keys.TENSORS, keys.ROWS, keys.FILES):
        for key in list(ds.storage.list(prefix)):
            if key not in live and keys.is_dataset_key(key):
                ds.storage.delete(key)


def stats(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Per-tensor sample counts and bytes, for ``lakefs info``. ``sample_bytes`` are the
    live samples' bytes as stored (see :func:`_chunk_compressed_bytes`)."""
    out = {}
    with ds._lock:
        for name, t in ds._tensors.items():
            live = t._engine.index.live()
            prefix = keys.chunk_prefix(t.meta.tid)
            sizes = {k: ds.storage.size(k) for k in ds.storage.list(prefix)}
            stored = _chunk_compressed_bytes(t, live, sizes) if t.chunk_compression else int(live["length"].sum())
            out[name] = {
                "htype": t.htype, "dtype": t.dtype, "sample_compression": t.sample_compression,
                "chunk_compression": t.chunk_compression, "samples": int(len(live)),
                "sample_bytes": stored, "file_bytes": int(live["file_size"].sum()),
                "stored_bytes": sum(sizes.values()),
            }
    return out


def _chunk_compressed_bytes(tensor: Tensor, live, sizes: dict[str, int]) -> int:
    """The stored bytes of a chunk-compressed tensor's live samples. An index length is
    the sample's uncompressed length there (the whole chunk is compressed): each chunk's
    compressed bytes are shared out by the part of its payload (its header says how long)
    the live samples hold; a tiled sample has its tiles to itself. A chunk not yet in the
    store (being written) counts its samples uncompressed. It was the uncompressed total,
    so ``lakefs info`` showed a ratio of 1.00x and a sample bigger than the stored ones."""
    eng = tensor._engine
    used: dict[int, int] = defaultdict(int)
    total = 0
    for c, t, n in zip(live["chunk"].tolist(), live["tiles"].tolist(), live["length"].tolist()):
        if t == 1:
            used[c] += n
            continue
        tiles = [keys.chunk(eng.tid, i) for i in range(c, c + t)]
        if all(k in sizes for k in tiles):
            total += sum(sizes[k] - chunkfmt.HEADER.size for k in tiles)
        else:
            total += n
    for c, n in used.items():
        key = keys.chunk(eng.tid, c)
        if key not in sizes:
            total += n
            continue
        _, payload_len, stored_len, _ = eng.chunk_header(c)
        total += round(stored_len * n / payload_len) if payload_len else 0
    return total
