"""The repair half of ``lakefs fsck --repair``: one ordinary commit of what verified.

:class:`~lakefs.tools.fsck.Checker` has already found what is damaged. Here the good
samples of damaged chunks are copied into new chunks, each damaged tensor gets one fresh
index segment of its verified entries, rows whose key is lost become ``lost-row-NNNNNNNN``, and
a new manifest then ``HEAD`` (one atomic put) make it visible. Damaged objects, and the
manifests a commit would not keep, are deleted only after that, so a crash at any point
leaves the old or the repaired dataset.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from lakefs.chunks.cache import ChunkCache
from lakefs.chunks.chunk import ChunkKind
from lakefs.chunks.engine import ChunkEngine, IdAllocator
from lakefs.compression import get_codec
from lakefs.dataset.dataset import KEEP_MANIFESTS
from lakefs.errors import CorruptionError, LakeFSError
from lakefs.format import keys, segments
from lakefs.format.checksum import crc32
from lakefs.format.index import NO_CHUNK
from lakefs.format.manifest import TensorMeta, head_bytes, marker_bytes
from lakefs.tools.fsck import salvage_payload

if TYPE_CHECKING:
    from lakefs.tools.fsck import Checker, _TensorState

log = logging.getLogger("lakefs.fsck")


def repair(c: Checker, bad_files: list[str]) -> None:
    """Commit the repaired state of what ``c`` checked (under the caller's writer lock),
    then write a new marker if it was lost or damaged: last, as a creation does. The
    marker names the format version of the manifest the repair starts from (the
    dataset's version before this lakefs commits to it), never simply this lakefs's: a
    version-1 dataset keeps a version-1 marker (docs/FORMAT.md §3)."""
    version = c.manifest.format_version  # (read before _commit, which writes FORMAT_VERSION)
    if len(c.report.problems) > int(c.marker_bad):  # more is wrong than the marker (one problem)
        _commit(c, bad_files)
    if c.marker_bad:
        c.storage.put(keys.MARKER, marker_bytes(version))
    c.report.repaired = True


def _commit(c: Checker, bad_files: list[str]) -> None:
    m = c.manifest
    ids = IdAllocator(m.next_id)
    doomed = set(c.damaged)
    for st in c.tensors:
        if not st.dirty:
            continue
        _rewrite_tensor(c, st, ids)
        doomed |= st.damaged
    for path in bad_files:
        del m.files[path]
        c.report.dropped.append(path)
    c.report.dropped += c.rollback_lost  # what the commits after m wrote (see describe_rollback)
    if c.rows_damaged:
        c.report.renamed = list(c.lost_rows)
        rid = ids.take()
        n = len(c.rows)
        c.storage.put(keys.rows_segment(rid), c.rows.encode_range(0, n))
        m.rows = [{"id": rid, "start": 0, "count": n}]
        m.row_count = n
    m.next_id = ids.next_id
    m.seq += 1
    mkey = keys.manifest(m.seq)
    c.storage.put(mkey, m.to_bytes())
    c.storage.put(keys.HEAD, head_bytes(m.seq, mkey))  # the one atomic step
    doomed.discard(keys.HEAD)
    doomed |= _old_manifests(c, m.seq)
    for key in doomed:
        try:
            c.storage.delete(key)
        except LakeFSError as e:
            log.warning("could not delete damaged object %s: %s", key, e)


def _old_manifests(c: Checker, seq: int) -> set[str]:
    """The manifests a commit ``seq`` would not keep: older ones than the KEEP_MANIFESTS
    a commit keeps (a commit deletes one, repair may go back past several), and the
    damaged ones of the commits it gave up. Safe under the writer lock: no writer makes
    one meanwhile, a reader opening an older one reads HEAD again, and none is of a
    newer format (``Checker.refuse_newer_format``)."""
    keep = {keys.manifest(s) for s in range(max(1, seq - KEEP_MANIFESTS + 1), seq + 1)}
    return {k for k in c.storage.list(keys.MANIFESTS) if keys.is_dataset_key(k) and k not in keep}


def _rewrite_tensor(c: Checker, st: _TensorState, ids: IdAllocator) -> None:
    meta = st.meta
    entries = st.entries
    for row in sorted(st.bad_rows):
        c.report.dropped.append(c.sample_name(st, row, int(entries[row]["ext"])))
        entries[row]["chunk"] = NO_CHUNK
        entries[row]["length"] = 0
    c.report.dropped += [st.lost[row] for row in sorted(st.lost)]  # (their cells are empty already)
    for row, size in st.fix_size.items():
        entries[row]["file_size"] = size
    if st.move_rows:
        codec = get_codec(meta.chunk_compression) if meta.chunk_compression else None
        kind = (ChunkKind.CHUNK_COMPRESSED if codec else
                ChunkKind.SAMPLE_COMPRESSED if meta.sample_compression else ChunkKind.UNCOMPRESSED)
        new = ChunkEngine(c.storage, meta.tid, kind, ids, ChunkCache(0), meta.chunk_size,
                          codec.compress if codec else None, codec.decompress if codec else None)
        for row in sorted(st.move_rows):
            e = entries[row].copy()
            data = _read_salvaged(c, meta, e)
            new.write(row, data, shape=ChunkEngine.shape_of(e), mtime_ns=int(e["mtime_ns"]),
                      mode=int(e["mode"]), ext=int(e["ext"]), flags=int(e["flags"]))
            moved = new.index.entry(row)
            for f in ("chunk", "offset", "tiles", "length", "crc"):
                entries[row][f] = moved[f]
        new.seal()
    live = entries[entries["chunk"] != NO_CHUNK]
    sid = ids.take()
    c.storage.put(keys.index_segment(meta.tid, sid), segments.pack(segments.KIND_INDEX, len(live), live.tobytes()))
    meta.segments = [{"id": sid, "count": int(len(live))}]


def _read_salvaged(c: Checker, meta: TensorMeta, e: np.void) -> bytes:
    """The verified bytes of a good sample that lives in a damaged chunk."""
    first, tiles, off, n = int(e["chunk"]), int(e["tiles"]), int(e["offset"]), int(e["length"])
    codec = get_codec(meta.chunk_compression) if meta.chunk_compression else None
    parts = []
    for cid in range(first, first + tiles):
        parts.append(salvage_payload(c.storage.get(keys.chunk(meta.tid, cid)), codec))
    data = b"".join(parts)[:n] if tiles > 1 else parts[0][off: off + n]
    if crc32(data) != int(e["crc"]):  # checked moments ago; refuse to write otherwise
        raise CorruptionError(f"row {int(e['row'])}: sample changed while repairing")
    return data
