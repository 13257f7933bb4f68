"""Space reclamation (``compact``) and storage statistics of a dataset.

Updates and deletes leave dead bytes inside chunks, and frequent commits (a mount that
fsyncs every file) leave many small chunks. ``compact`` rewrites only the samples that
live in such chunks, commits, and only then deletes every object no commit references
any more: data first, visible last, garbage after (DESIGN §5).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lakefs.chunks import chunk as chunkfmt
from lakefs.chunks.engine import ChunkEngine
from lakefs.errors import LakeFSError
from lakefs.format import keys
from lakefs.format.manifest import Manifest, parse_head
from lakefs.storage.base import Storage

if TYPE_CHECKING:
    from lakefs.dataset.dataset import Dataset
    from lakefs.dataset.tensor import Tensor

log = logging.getLogger("lakefs.dataset")

LIVE_RATIO = 0.5  # a chunk with less than this share of live bytes is rewritten
SMALL_RATIO = 0.5  # chunks under this share of the target size are merged
# A put's temp file untouched this long belongs to no live put (a put writes its temp
# file as it goes): one a killed writer left, which compact deletes and fsck notes.
STALE_TEMP_SECONDS = 3600.0


def _stored_bytes(ds: Dataset, prefix: str) -> int:
    return sum(ds.storage.size(k) for k in ds.storage.list(prefix))


def _live_bytes_by_chunk(live) -> dict[int, int]:
    """Payload bytes the live samples hold in each single (non-tile) chunk."""
    used: dict[int, int] = defaultdict(int)
    for c, t, n in zip(live["chunk"].tolist(), live["tiles"].tolist(), live["length"].tolist()):
        if t == 1:
            used[c] += n
    return used


def _chunk_lengths(tensor: Tensor, c: int, size: int | None = None) -> tuple[int, int]:
    """(payload_len, stored_len) of a sealed chunk: from its object's ``size`` where the
    payload is stored as is, else from its header (one ranged read)."""
    eng = tensor._engine
    if size is not None and not tensor.chunk_compression:
        return size - chunkfmt.HEADER.size, size - chunkfmt.HEADER.size
    _, payload_len, stored_len, _ = eng.chunk_header(c)  # (a damaged cached copy is read again)
    return payload_len, stored_len


def _to_rewrite(chunk_size: int, lengths: dict[int, tuple[int, int]]) -> set[int]:
    """The chunks ``compact`` rewrites, of sealed single chunks' (live bytes, payload_len):
    the mostly dead, and the small ones where there are two or more to merge; it keeps
    the others, dead bytes and all. ``lakefs info`` judges by this too: it said compact
    reclaims the dead bytes of a chunk exactly half live, and compact reclaimed 0 B
    (found by QA)."""
    sparse = {c for c, (n, payload_len) in lengths.items() if n < LIVE_RATIO * payload_len}
    small = {c for c, (_, payload_len) in lengths.items() if c not in sparse and payload_len < SMALL_RATIO * chunk_size}
    return sparse | (small if len(small) > 1 else set())


def chunks_to_rewrite(tensor: Tensor) -> set[int]:
    """Single (non-tile) chunks that are mostly dead, or small enough to merge."""
    used = _live_bytes_by_chunk(tensor._engine.index.live())  # called right after a commit: all sealed
    return _to_rewrite(tensor._engine.chunk_size, {c: (n, _chunk_lengths(tensor, c)[0]) for c, n in used.items()})


def compact(ds: Dataset) -> dict[str, int]:
    """Rewrite the samples of sparse or small chunks, commit, delete the unreferenced
    and the temp files of puts killed mid-write (:data:`STALE_TEMP_SECONDS` old)."""
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
        # (this dataset holds the writer lock: no other lakefs process is putting here)
        temps = ds.storage.delete_leftover_temps(STALE_TEMP_SECONDS)
        return {"bytes_before": before, "bytes_after": after, "reclaimed": before - after,
                "temp_files_deleted": len(temps), "temp_bytes_deleted": sum(size for _, size, _ in temps)}


def referenced_keys(m: Manifest, chunks: Mapping[str, Iterable[int]]) -> set[str]:
    """Every object the commit of manifest ``m`` references, ``chunks`` being the chunk
    ids each tensor's index points at (by tid); the latest manifests are kept too. Any
    other object of the dataset is unreferenced: left by updates, deletes, and writes
    that were never committed (a crash, a full disk). ``compact`` deletes those, and
    ``lakefs info`` and ``lakefs fsck`` count them, by this one rule."""
    from lakefs.dataset.dataset import KEEP_MANIFESTS

    live: set[str] = {keys.MARKER, keys.HEAD}
    live.update(keys.manifest(s) for s in range(max(1, m.seq - KEEP_MANIFESTS + 1), m.seq + 1))
    live.update(_segment_and_file_keys(m))
    for tid, ids in chunks.items():
        live.update(keys.chunk(tid, c) for c in ids)
    return live


def unreferenced(storage: Storage, live: set[str]) -> Iterator[str]:
    """The dataset's objects in ``storage`` not in ``live`` (:func:`referenced_keys`)."""
    for prefix in (keys.MANIFESTS, keys.TENSORS, keys.ROWS, keys.FILES):
        for key in storage.list(prefix):
            if key not in live and keys.is_dataset_key(key):
                yield key


def _live_keys(ds: Dataset) -> set[str]:
    """:func:`referenced_keys` of ``ds``'s state (with the lock), and the staged files
    being put, about to be published."""
    live = referenced_keys(ds._manifest, {t.meta.tid: t._engine.live_chunks() for t in ds._tensors.values()})
    live.update(keys.staged_file(i) for i in ds._staging)
    return live


def delete_unreferenced(ds: Dataset) -> None:
    """Delete every object the current commit does not reference (crashed writers' and
    updates' leftovers). Readers of an older snapshot may fail afterwards and must reopen."""
    for key in list(unreferenced(ds.storage, _live_keys(ds))):
        ds.storage.delete(key)


def delete_unpublished(ds: Dataset) -> None:
    """Delete the objects ``ds``'s writer put that its last commit does not reference, as
    it gives its changes up (``Dataset.abandon``, with the lock): the chunks it put since
    its last commit (which a commit would have taken out of ``unpublished``), the
    segments and plain files its state names and ``HEAD``'s manifest does not, and a
    manifest put by a commit whose ``HEAD`` failed. When ``HEAD`` is not this writer's
    last commit (an object store that stored a put it reported failed), nothing is."""
    m = ds._manifest
    try:
        seq, mkey = parse_head(ds.storage.get(keys.HEAD), keys.HEAD)
        head = Manifest.from_bytes(ds.storage.get(mkey), mkey)
    except LakeFSError as e:
        log.warning("%s: cannot tell what the last commit references (%s): uncommitted objects are left to "
                    "`lakefs compact`", ds.storage.where, e)
        return
    if seq != m.seq:
        log.warning("%s: HEAD is at commit %d, this writer's last was %d: its uncommitted objects are left to "
                    "`lakefs compact`", ds.storage.where, seq, m.seq)
        return
    named = _segment_and_file_keys(head)
    doomed = list(ds._unnamed)
    for tensor in ds._tensors.values():
        eng = tensor._engine
        doomed += [keys.chunk(eng.tid, c) for c in sorted(eng.unpublished)]
        doomed += [keys.index_segment(eng.tid, s.seg_id) for s in eng.index.segments]
    doomed += [keys.rows_segment(int(r["id"])) for r in ds._rows.segments]
    doomed += [keys.staged_file(i) for i in ds._staging]
    doomed += [keys.staged_file(f.file_id) for f in m.files.values()]
    if ds._manifest_put is not None and ds._manifest_put != mkey and keys.parse_id(ds._manifest_put) > seq:
        doomed.append(ds._manifest_put)
    for key in dict.fromkeys(doomed):
        if key in named or not keys.is_dataset_key(key):
            continue
        try:
            ds.storage.delete(key)
        except LakeFSError as e:
            log.warning("%s: could not delete uncommitted object %s (`lakefs compact` will): %s",
                        ds.storage.where, key, e)
    with contextlib.suppress(LakeFSError):
        ds.storage.sync()


def _segment_and_file_keys(m: Manifest) -> set[str]:
    """The segments and plain files manifest ``m`` references."""
    out = {keys.rows_segment(int(r["id"])) for r in m.rows}
    out.update(keys.staged_file(f.file_id) for f in m.files.values())
    for meta in m.tensors.values():
        out.update(keys.index_segment(meta.tid, int(s["id"])) for s in meta.segments)
    return out


def stats(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Per-tensor sample counts and bytes, for ``lakefs info`` (see :func:`_space`)."""
    return storage_stats(ds)[0]


def storage_stats(ds: Dataset) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """:func:`stats`, and the size of each object no commit references (key → bytes,
    :func:`referenced_keys`), also those of tensors the last commit does not know (an
    ingest that stopped before its first commit left 13 MB that `lakefs info` did not
    count: found by QA). The storage is listed once for both."""
    out = {}
    with ds._lock:
        live = _live_keys(ds)
        orphans = {k: ds.storage.size(k) for k in unreferenced(ds.storage, live)}
        for name, t in ds._tensors.items():
            live_entries = t._engine.index.live()
            prefix = keys.chunk_prefix(t.meta.tid)
            sizes = {k: orphans[k] if k in orphans else ds.storage.size(k) for k in ds.storage.list(prefix)}
            out[name] = {
                "htype": t.htype, "dtype": t.dtype, "sample_compression": t.sample_compression,
                "chunk_compression": t.chunk_compression, "samples": int(len(live_entries)),
                "file_bytes": int(live_entries["file_size"].sum()), "stored_bytes": sum(sizes.values()),
                **_space(t, live_entries, sizes, orphans),
            }
    return out, orphans


def _space(tensor: Tensor, live, sizes: dict[str, int], orphans: dict[str, int]) -> dict[str, int]:
    """What a tensor's chunk objects (``sizes``) hold: ``sample_bytes``, the live samples'
    bytes as stored; ``reclaimable_bytes``, what ``compact`` would free (its ``orphans``,
    objects no commit references, and the dead bytes of the chunks it rewrites,
    :func:`_to_rewrite`); ``kept_dead_bytes``, the dead bytes of the chunks it keeps (at
    least half live).

    A chunk-compressed tensor's index lengths are uncompressed (the whole chunk is
    compressed): each chunk's stored bytes are shared out by the part of its payload the
    live samples hold; a tiled sample has its tiles to itself. A chunk not yet in the
    store (being written) counts its samples as they are. (The uncompressed total made
    ``lakefs info`` show a ratio of 1.00x and a sample bigger than the stored ones.)"""
    eng = tensor._engine
    sample = reclaimable = kept = 0
    for c, t, n in zip(live["chunk"].tolist(), live["tiles"].tolist(), live["length"].tolist()):
        if t == 1:
            continue
        tiles = [keys.chunk(eng.tid, i) for i in range(c, c + t)]
        if tensor.chunk_compression and all(k in sizes for k in tiles):
            sample += sum(sizes[k] - chunkfmt.HEADER.size for k in tiles)
        else:
            sample += n
    lengths: dict[int, tuple[int, int, int]] = {}  # sealed chunk -> (live bytes, payload_len, stored_len)
    for c, n in _live_bytes_by_chunk(live).items():
        key = keys.chunk(eng.tid, c)
        if key in sizes:
            lengths[c] = (n, *_chunk_lengths(tensor, c, sizes[key]))
        else:
            sample += n
    rewrite = _to_rewrite(eng.chunk_size, {c: (n, p) for c, (n, p, _) in lengths.items()})
    for c, (n, payload_len, stored_len) in lengths.items():
        share = round(stored_len * n / payload_len) if payload_len else 0
        sample += share
        if c in rewrite:
            reclaimable += sizes[keys.chunk(eng.tid, c)] - share  # its live samples move to another chunk
        else:
            kept += stored_len - share
    reclaimable += sum(size for key, size in sizes.items() if key in orphans)
    return {"sample_bytes": sample, "reclaimable_bytes": reclaimable, "kept_dead_bytes": kept}
