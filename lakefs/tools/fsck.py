"""``lakefs fsck``: check every object of a dataset and, with ``repair``, fix what it can.

It reads the storage directly rather than through :class:`~lakefs.dataset.Dataset`,
because a damaged index or row segment stops a dataset from opening, which is exactly
when fsck is needed. It verifies: the marker, ``HEAD`` and the manifest; every row
segment and index segment (header, size, crc32); every chunk that a sample points at
(header, size, crc32, decompression); every sample's own crc32 against the index, and
its entry's sizes against each other; and each plain file's size and crc32 (read in
pieces; files stored before format v3 have none). It takes no lock: an
object a concurrent commit deleted sends it back to the new HEAD, as a reader would.

Each problem is reported with the sample it costs (``images/cat001.jpg (row 3)``).
Temp files of unfinished puts (a writer killed mid-write) are noted, not counted as
damage: nothing refers to them, and a fresh one may be a running writer's.
Repair keeps everything that verifies and drops only what cannot be recovered, naming
every sample it drops:

- a truncated or damaged index segment: one flipped bit is set right; otherwise only
  its entries that agree with the format are kept (:mod:`lakefs.tools.salvage`), when
  their sample's checksum verifies; the samples of the lost ones are dropped;
- a damaged chunk: the samples inside it whose own checksum still verifies are copied
  to a new chunk; the others are dropped (their cells become empty, rows stay);
- a plain file missing, of the wrong size or failing its crc32: dropped (named);
- a damaged row segment: one flipped bit is set right; otherwise every key that
  verifies against its own hash is kept (:func:`~lakefs.tools.salvage.salvage_rows`);
  the rows of the others (all, when the segment is lost) keep their place under
  ``lost-row-NNNNNNNN`` keys, which repair reports as renamed;
- a broken ``HEAD`` or manifest: the newest manifest that still reads is used, and what
  the commits after it wrote is named as given up;
- a lost or damaged marker (``lakefs.json``): a new one is written, last.

The repair is one ordinary commit under the writer lock: new chunks and segments are
written first, then a new manifest, then ``HEAD`` (one atomic put); the damaged objects
are deleted only after that. A crash at any point leaves either the old or the repaired
dataset.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from lakefs.chunks import chunk as chunkfmt
from lakefs.compression import get_codec
from lakefs.dataset.dataset import holds_dataset, orphaned_dataset
from lakefs.dataset.maintenance import STALE_TEMP_SECONDS, referenced_keys, unreferenced
from lakefs.dataset.samples import SampleFormat
from lakefs.errors import (
    CorruptionError,
    DatasetNotFoundError,
    FormatVersionError,
    LakeFSError,
    ObjectNotFoundError,
    StorageError,
)
from lakefs.format import keys, segments
from lakefs.format.checksum import crc32
from lakefs.format.index import ENTRY, NO_CHUNK, empty_entries
from lakefs.format.manifest import Manifest, StagedFile, TensorMeta, check_version, parse_head
from lakefs.format.rows import RowTable
from lakefs.storage.base import Storage
from lakefs.storage.remote import is_object_store
from lakefs.tools.info import UNREFERENCED_CAUSE, human
from lakefs.tools.salvage import LostSpan, entry_flaw, file_size_of, salvage, salvage_rows

CHECK_ATTEMPTS = 5  # checks from HEAD again when a concurrent commit deleted what one read
FILE_PIECE = 8 << 20  # bytes of a plain file read at a time to check its crc32


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    samples: int = 0  # samples verified
    chunks: int = 0  # chunk objects verified
    files: int = 0  # plain files whose crc32 verified
    dropped: list[str] = field(default_factory=list)  # samples/files repair removed
    renamed: list[int] = field(default_factory=list)  # rows whose key was lost: repair named them lost-row-N
    repaired: bool = False
    fatal: bool = False  # the dataset cannot be checked further without repair
    notes: list[str] = field(default_factory=list)  # not damage: leftover temp files, what compact would reclaim

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _TensorState:
    name: str
    meta: TensorMeta
    fmt: SampleFormat
    entries: np.ndarray  # dense ENTRY array by row
    salvaged: np.ndarray  # by row: whether its entry comes from a damaged index segment
    dirty: bool = False  # repair must rewrite its index
    bad_rows: set[int] = field(default_factory=set)  # samples that cannot be recovered
    move_rows: set[int] = field(default_factory=set)  # good samples inside a damaged chunk
    lost: dict[int, str] = field(default_factory=dict)  # rows whose entry was lost → sample name
    fix_size: dict[int, int] = field(default_factory=dict)  # rows whose entry's file_size is wrong
    damaged: set[str] = field(default_factory=set)  # object keys to delete after repair


class Checker:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.report = FsckReport()
        self.manifest: Manifest | None = None
        self.rows = RowTable()
        self.rows_damaged = False  # repair writes the rows anew
        self.lost_rows: list[int] = []  # rows whose key is lost: repair names them lost-row-N
        self.damaged: set[str] = set()
        self.tensors: list[_TensorState] = []
        self.marker_bad = False  # repair writes a new marker
        self.head: bytes | None = None  # the HEAD this check started from
        self.missing = False  # an object was missing (a concurrent commit may have deleted it)
        self.lost_commits: list[int] = []  # the commits after the manifest repair goes back to
        self.rollback_lost: list[str] = []  # samples those commits wrote (repair gives them up)

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    # --- marker, HEAD, manifest --------------------------------------------------------

    def check_marker(self) -> None:
        try:
            marker = self.storage.get(keys.MARKER)
        except ObjectNotFoundError:
            what = orphaned_dataset(self.storage)
            if what is None:
                raise DatasetNotFoundError(f"no lakefs dataset at {self.storage.where}") from None
            self.problem(f"{keys.MARKER} (the dataset marker) is missing, but a dataset is there ({what}); "
                         "repair writes a new marker")
            self.marker_bad = True
            return
        try:
            d = json.loads(marker)
            # A marker that is not one (``{}``) is damage; one of a version this lakefs
            # does not read is a newer lakefs's dataset ("upgrade lakefs", not a repair).
            if not isinstance(d, dict) or d.get("format") != "lakefs" or type(d.get("version")) is not int:
                raise ValueError("not a lakefs marker")
            check_version(d["version"], keys.MARKER)
        except FormatVersionError:
            raise
        except ValueError:
            self.problem(f"{keys.MARKER}: not a valid dataset marker (damaged); repair writes a new one")
            self.marker_bad = True

    def check_head(self) -> bool:
        self.check_marker()
        self.refuse_newer_format()
        head_seq, where = None, keys.HEAD
        try:
            self.head = self.storage.get(keys.HEAD)
            head_seq, where = parse_head(self.head, keys.HEAD)
            self.manifest = Manifest.from_bytes(self.storage.get(where), where)
            return True
        except (CorruptionError, ObjectNotFoundError) as e:
            self.missing |= isinstance(e, ObjectNotFoundError)
            self.problem(_about(where, e).replace(where, f"{where} (the manifest {keys.HEAD} names)", 1)
                         if where != keys.HEAD else _about(where, e))
        self.manifest, unreadable = self._newest_readable_manifest()
        if self.manifest is None:
            self.problem("no readable manifest is left: the dataset cannot be recovered by fsck")
            self.report.fatal = True
            return False
        # Commits are numbered one by one: all from the one after it to the newest named were made.
        newest = max((*unreadable, head_seq or 0))
        self.lost_commits = list(range(self.manifest.seq + 1, newest + 1))
        self.problem(f"the newest readable manifest is {keys.manifest(self.manifest.seq)} (repair makes it current)")
        self.damaged.add(keys.HEAD)
        return True

    def refuse_newer_format(self) -> None:
        """``FormatVersionError`` if any manifest is of a format version this lakefs does
        not read: a newer lakefs's commit (HEAD may be damaged, or its HEAD put never
        made). Going back past it, repair would write its own commit over it or delete
        it; a newer version is refused before anything is written (docs/FORMAT.md §10)."""
        for key in self.storage.list(keys.MANIFESTS):
            if not keys.is_dataset_key(key):
                continue
            try:
                Manifest.from_bytes(self.storage.get(key), key)
            except FormatVersionError as e:
                raise FormatVersionError(f"{e}; this lakefs neither checks nor repairs a dataset a newer "
                                         "lakefs committed to, and changed nothing") from None
            except (LakeFSError, ValueError) as e:
                _raise_if_store_failed(e)  # (damage is found and named from HEAD on)

    def _newest_readable_manifest(self) -> tuple[Manifest | None, list[int]]:
        """The newest manifest that reads, and the commits of the newer ones that do not."""
        unreadable = []
        for key in sorted(self.storage.list(keys.MANIFESTS), reverse=True):
            try:
                return Manifest.from_bytes(self.storage.get(key), key), unreadable
            except (LakeFSError, ValueError) as e:
                _raise_if_store_failed(e)
                if keys.is_dataset_key(key):
                    unreadable.append(keys.parse_id(key))
        return None, unreadable

    def describe_rollback(self) -> None:
        """What the commits after the manifest repair goes back to made, which the repair
        gives up: named from their objects, whose ids are all past that manifest's
        ``next_id`` (docs/FORMAT.md §8). New index segments give the samples they wrote
        (entries a merge copied unchanged are left out), new row segments the keys of the
        rows they added. An uncommitted object of a writer that crashed may be among them."""
        m = self.manifest
        since, nrows = m.next_id, m.row_count
        new_keys = self._keys_of_new_rows(since)
        samples: list[str] = []
        added: set[int] = set()
        self.rollback_lost = []
        for st in self.tensors:
            for key in self._keys_since(f"{keys.tensor_prefix(st.meta.tid)}index/", since):
                try:
                    n, body = segments.unpack(self.storage.get(key), segments.KIND_INDEX, key)
                    seg = np.frombuffer(body, dtype=ENTRY, count=n)
                except (LakeFSError, ValueError) as e:
                    _raise_if_store_failed(e)
                    continue
                for e in seg:
                    row = int(e["row"])
                    if row < 0 or row in st.lost or (row < nrows and e.tobytes() == st.entries[row].tobytes()):
                        continue  # named already, or copied unchanged by a merge
                    if row >= nrows:
                        added.add(row)
                    ext = int(e["ext"]) if e["chunk"] != NO_CHUNK else None
                    if ext is None and row < nrows and st.entries[row]["chunk"] != NO_CHUNK:
                        ext = int(st.entries[row]["ext"])  # a deletion: of the sample the manifest shows
                    name = self.sample_name(st, row, ext, new_keys.get(row))
                    if name not in samples:
                        samples.append(name)
                        self.rollback_lost.append(name if row >= nrows else f"{name} (the version a lost commit wrote)")
        rows = sorted(added | set(new_keys))
        tids = {t.tid for t in m.tensors.values()}
        tensors = {k.split("/")[1] for k in self.storage.list(keys.TENSORS) if keys.is_dataset_key(k)}
        created = sorted(t for t in tensors - tids if int(t[1:]) >= since)
        files = self._keys_since(keys.FILES, since)
        what = [f"{len(rows)} row(s) added ({_some([new_keys.get(r, f'row-{r}') for r in rows])})" if rows else "",
                f"{len(samples)} sample(s) written ({_some(samples)})" if samples else "",
                f"{len(created)} tensor(s) created (their names were in the lost manifest)" if created else "",
                f"{len(files)} plain file version(s) stored" if files else ""]
        what = [w for w in what if w]
        first, last = self.lost_commits[0], self.lost_commits[-1]
        commits = str(first) if first == last else f"{first}..{last}"
        self.problem(f"going back to commit {m.seq} gives up what commit(s) {commits} made: "
                     + ("; ".join(what) + " (a crashed writer's uncommitted objects may be among them)" if what
                        else "no object of theirs is left to say what"))

    def _keys_of_new_rows(self, since: int) -> dict[int, str]:
        """Row → key of the rows that row segments newer than the manifest added. A row
        segment does not hold its first row: it follows from its first key when that is
        known (a merge copied it), else it starts where the rows known so far end."""
        known = len(self.rows)
        out: dict[int, str] = {}
        by_key: dict[str, int] = {}
        for key in self._keys_since(keys.ROWS, since):
            try:
                n, body = segments.unpack(self.storage.get(key), segments.KIND_ROWS, key)
                table = RowTable()
                table.load_segment(body, n, 0, key)
            except (LakeFSError, ValueError) as e:
                _raise_if_store_failed(e)
                continue
            names = table.keys()
            if not names:
                continue
            start = self.rows.find(names[0])
            if start is None:
                start = by_key.get(names[0])
            if start is None:
                if self.lost_rows:
                    continue  # it may begin among rows whose keys are lost: cannot be placed
                start = max(known, max(out, default=known - 1) + 1)
            for i, name in enumerate(names):
                if start + i >= known:
                    out[start + i] = name
                    by_key[name] = start + i
        return out

    def _keys_since(self, prefix: str, since: int) -> list[str]:
        return sorted(k for k in self.storage.list(prefix)
                      if keys.is_dataset_key(k) and not k.endswith(".json") and keys.parse_id(k) >= since)

    # --- rows --------------------------------------------------------------------------

    def check_rows(self) -> None:
        m = self.manifest
        for ref in m.rows:
            key = keys.rows_segment(int(ref["id"]))
            start, count = int(ref["start"]), int(ref["count"])
            blob = None
            try:
                blob = self.storage.get(key)
                n, body = segments.unpack(blob, segments.KIND_ROWS, key)
                if n != count:
                    raise CorruptionError(f"{key}: holds {n} rows, manifest says {count}")
                self.rows.load_segment(body, n, len(self.rows), key)
            except (LakeFSError, ValueError) as e:
                _raise_if_store_failed(e)
                self.missing |= isinstance(e, ObjectNotFoundError)
                self.rows_damaged = True
                self.damaged.add(key)
                self._salvage_rows(key, blob, start, count, e)
        if len(self.rows) != m.row_count:
            self.problem(f"manifest says {m.row_count} rows, the row segments hold {len(self.rows)}")
            self.rows_damaged = True
            while len(self.rows) < m.row_count:
                self._lose_row()
        self.rows.finish_load()

    def _salvage_rows(self, key: str, blob: bytes | None, start: int, count: int, e: Exception) -> None:
        """The rows of damaged row segment ``key``: those whose key verifies keep it
        (:func:`~lakefs.tools.salvage.salvage_rows`), the others get a lost-row-N key."""
        first = len(self.rows)
        names, note = salvage_rows(blob, count, first) if blob is not None else ([None] * count, None)
        lost = [first + i for i, name in enumerate(names) if name is None]
        text = _about(key, e)
        if len(lost) == count:
            text += f"; the keys of rows {start}..{start + count - 1} are lost"
        elif lost:
            rows = _some([str(r) for r in lost])
            one = len(lost) == 1
            text += (f"; the key{'' if one else 's'} of {len(lost)} of {count} rows {'is' if one else 'are'} lost "
                     f"({'row' if one else 'rows'} {rows}; repair renames their samples lost-row-NNNNNNNN), "
                     f"the other {count - len(lost)} verify against their hashes and are kept")
        elif note:
            text += f"; {note}"
        else:
            text += "; every key verifies against its hash and is kept"
        self.problem(text)
        for name in names:
            if name is None:
                self._lose_row()
            else:
                self.rows.append(name)

    def _lose_row(self) -> None:
        """Add the next row under a ``lost-row-NNNNNNNN`` key: its own is lost."""
        row = len(self.rows)
        self.lost_rows.append(row)
        self.rows.append(f"lost-row-{row:08d}")

    def key(self, row: int) -> str:
        return self.rows.key(row) if row < len(self.rows) else f"row-{row}"

    # --- index segments ----------------------------------------------------------------

    def load_index(self, name: str, meta: TensorMeta) -> _TensorState:
        nrows = max(self.manifest.row_count, len(self.rows))
        st = _TensorState(name, meta, SampleFormat(meta), empty_entries(nrows), np.zeros(nrows, dtype=bool))
        table = st.entries
        source = np.full(nrows, -1, dtype=np.int64)  # by row: the segment its entry is from
        lost: dict[str, tuple] = {}  # damaged segment → (why, note, count, kept, spans)
        for pos, ref in enumerate(meta.segments):
            key = keys.index_segment(meta.tid, int(ref["id"]))
            count = int(ref["count"])
            try:
                blob = self.storage.get(key)
            except ObjectNotFoundError:
                self.missing = True
                lost[key] = (f"index segment {key} is missing", None, count, 0, [LostSpan(pos, count, -1, nrows)])
                continue
            salvaged = False
            try:
                n, body = segments.unpack(blob, segments.KIND_INDEX, key)
                if n != count or len(body) != n * ENTRY.itemsize:
                    raise CorruptionError(f"{key}: holds {n} entries, manifest says {count}")
                seg = np.frombuffer(body, dtype=ENTRY, count=n)
            except (LakeFSError, ValueError) as e:
                seg, spans, note = salvage(blob, count, pos, st.fmt, self.manifest.next_id, nrows)
                lost[key] = (str(e), note, count, len(seg), spans)
                salvaged = True
            beyond = (seg["row"] < 0) | (seg["row"] >= nrows)
            if beyond.any():
                self.problem(f"{st.name}: {key}: {int(beyond.sum())} index entries point past the last row")
                st.dirty = True
                seg = seg[~beyond]
            table[seg["row"]] = seg
            source[seg["row"]] = pos
            st.salvaged[seg["row"]] = salvaged
        table["row"] = np.arange(nrows)
        for key, (why, note, count, kept, spans) in lost.items():
            self._report_lost_entries(st, key, why, note, count, kept, spans, source)
        return st

    def _report_lost_entries(self, st: _TensorState, key: str, why: str, note: str | None, count: int,
                             kept: int, spans: list[LostSpan], source: np.ndarray) -> None:
        """One problem line for a damaged index segment, naming the samples it cost.

        The lost entries of a span were for rows between the kept entries around it;
        those rows that no later segment sets are the candidates. When there are no more
        candidates than lost entries, each may have lost its newest entry, so none is
        kept (an older segment's entry of it may be an older version): they are lost,
        and named. Otherwise the index cannot say which candidates lost an entry: they
        keep what they now show (nothing, or an older segment's entry), named as such."""
        st.dirty = True
        st.damaged.add(key)
        gone: list[str] = []
        unsure, empty, older = 0, [], []  # (lost entries, rows now empty, rows older segments set)
        for span in spans:
            rows = np.arange(span.lo + 1, span.hi)
            candidates = rows[source[rows] < span.pos]
            if len(candidates) <= span.lost:
                for row in candidates.tolist():
                    name = self.sample_name(st, row, None)  # (an older entry's extension may not be the lost one's)
                    st.lost[row] = name + (f" ({self._ext_lost(st)})" if name.endswith(EXT_LOST) else "")
                    gone.append(f"{name} (row {row})")
                    st.entries[row]["chunk"] = NO_CHUNK
                    st.entries[row]["length"] = 0
            else:
                unsure += span.lost
                empty.append(candidates[source[candidates] < 0])
                older.append(candidates[source[candidates] >= 0])
        text = f"{st.name}: {why}" + (f"; {note}" if note else "")
        text += f"; {count - kept} of {count} index entries lost" + (f", {kept} kept" if kept else "")
        if count == kept and not note:
            text += " (each passes every check: the damage is in the header or in a field nothing checks)"
        if gone:
            text += f"; {len(gone)} sample(s) lost with them: {_some(gone)}"
        if unsure:
            empty_rows, older_rows = np.concatenate(empty), np.concatenate(older)
            text += f"; the index does not say which rows {unsure} lost entries were for:"
            if len(empty_rows):
                text += f" {len(empty_rows)} row(s) now hold no sample ({self._first_names(st, empty_rows, False)})"
            if len(older_rows):
                text += (f"{',' if len(empty_rows) else ''} {len(older_rows)} row(s) show an older segment's entry,"
                         f" which may be an older version ({self._first_names(st, older_rows, True)})")
        if EXT_LOST + " (row " in text:
            text += f" ({EXT_LOST}: {self._ext_lost(st)})"
        self.problem(text)

    @staticmethod
    def _ext_lost(st: _TensorState) -> str:
        return f"the extension was in the lost index entry: one of {_some(st.meta.exts)}"

    def _first_names(self, st: _TensorState, rows: np.ndarray, have_entry: bool, first: int = 5) -> str:
        names = [f"{self.sample_name(st, r, int(st.entries[r]['ext']) if have_entry else None)} (row {r})"
                 for r in rows[:first].tolist()]
        return _some(names, first, total=len(rows))

    def sample_name(self, st: _TensorState, row: int, ext: int | None, key: str | None = None) -> str:
        """``images/cat001.jpg``: the file name of row ``row``'s sample (or of ``key``), with
        the extension of entry field ``ext``. None: no entry is left to say it. The tensor's
        extension table then does if it holds one extension (every entry indexes it); if it
        holds several, the name ends in ``.*`` (EXT_LOST): it said ``photo_00008.jpg``, the
        canonical extension, of a sample stored as ``photo_00008.JPEG``."""
        exts = st.meta.exts
        base = f"{st.name}/{key or self.key(row)}"
        if ext is None:
            return base + (EXT_LOST if len(exts) > 1 else exts[0] if exts else st.fmt.canonical_ext)
        return base + (exts[ext] if ext < len(exts) else st.fmt.canonical_ext)

    # --- chunks and samples ------------------------------------------------------------

    def check_samples(self, st: _TensorState) -> None:
        meta = st.meta
        codec = get_codec(meta.chunk_compression) if meta.chunk_compression else None
        live = np.flatnonzero(st.entries["chunk"] != NO_CHUNK)
        by_chunk: dict[int, list[int]] = {}
        for row in live.tolist():
            by_chunk.setdefault(int(st.entries[row]["chunk"]), []).append(row)
        payloads: dict[int, tuple[bytes | None, str | None]] = {}
        for first, rows in sorted(by_chunk.items()):
            for row in rows:
                e = st.entries[row]
                tiles = int(e["tiles"])
                parts, why = [], None
                for cid in range(first, first + tiles):
                    if cid not in payloads:
                        payloads[cid] = self._read_chunk(st, cid, codec)
                        if len(payloads) > 4 + tiles:  # keep memory to a few chunks
                            payloads.pop(next(iter(payloads)))
                    data, damaged = payloads[cid]
                    if data is None:
                        why = damaged
                        break
                    if damaged:
                        st.move_rows.add(row)
                    parts.append(data)
                self.report.samples += 1
                if why is None:
                    off, n = (int(e["offset"]), int(e["length"])) if tiles == 1 else (0, int(e["length"]))
                    data = b"".join(parts)[off: off + n] if tiles > 1 else parts[0][off: off + n]
                    if len(data) != n:
                        why = f"sample is cut short ({len(data)} of {n} bytes)"
                    elif crc32(data) != int(e["crc"]):
                        why = "sample checksum mismatch (its bytes are damaged)"
                    else:
                        why = self._check_entry(st, row, e, data)
                if why is not None:
                    self.problem(f"{self.sample_name(st, row, int(e['ext']))} (row {row}): {why}")
                    st.bad_rows.add(row)
                    st.move_rows.discard(row)
                    st.dirty = True
                elif row in st.move_rows:
                    st.dirty = True

    def _check_entry(self, st: _TensorState, row: int, e: np.void, data: bytes) -> str | None:
        """Why the entry of a sample whose bytes verify cannot be trusted, or None. One
        from a damaged segment is dropped; in a sound one (a writer's mistake), a wrong
        file size is corrected by repair (the sample's crc32 vouches for its length)."""
        try:
            flaw = entry_flaw(st.fmt, e, data)
        except LakeFSError as err:  # an lz4 sample that does not decompress
            return f"the sample does not decode ({err})"
        if flaw is None:
            return None
        size = file_size_of(st.fmt, e, data)
        if st.salvaged[row] or size is None or size == int(e["file_size"]):
            return f"its index entry is damaged: {flaw}"
        self.problem(f"{self.sample_name(st, row, int(e['ext']))} (row {row}): its index entry is wrong: {flaw}; "
                     "repair corrects the entry")
        st.fix_size[row] = size
        st.dirty = True
        return None

    def _read_chunk(self, st: _TensorState, cid: int, codec) -> tuple[bytes | None, str | None]:
        """(payload, damage note) — payload None when nothing in it can be trusted."""
        key = keys.chunk(st.meta.tid, cid)
        self.report.chunks += 1
        try:
            blob = self.storage.get(key)
        except ObjectNotFoundError:
            self.missing = True  # (compact and tensor deletion delete chunks)
            self.problem(f"{st.name}: chunk {key} is missing")
            return None, f"chunk {key} is missing"
        try:
            return chunkfmt.decode(blob, key, codec.decompress if codec else None), None
        except (LakeFSError, ValueError) as e:
            self.problem(f"{st.name}: {e}")
            st.damaged.add(key)
            if len(blob) > chunkfmt.HEADER.size:  # the samples' own crc decide what is good
                try:
                    return salvage_payload(blob, codec), str(e)
                except LakeFSError:  # the compressed stream itself is damaged
                    pass
            return None, f"chunk {key} is damaged ({e})"

    # --- plain files -------------------------------------------------------------------

    def check_files(self) -> list[str]:
        bad = []
        for path, f in self.manifest.files.items():
            key = keys.staged_file(f.file_id)
            try:
                size = self.storage.size(key)
            except ObjectNotFoundError:
                self.missing = True
                self.problem(f"file {path}: object {key} is missing")
                bad.append(path)
                continue
            if size != f.size:
                self.problem(f"file {path}: {size} bytes stored, {f.size} expected")
                bad.append(path)
                continue
            why = self._check_file_crc(key, f)
            if why is not None:
                self.problem(f"file {path}: {why}")
                bad.append(path)
        return bad

    def _check_file_crc(self, key: str, f: StagedFile) -> str | None:
        """Why the bytes of plain file ``f`` do not verify, or None: read in pieces (a big
        file is never held whole). A file stored before format v3 has no crc32 to check."""
        if f.crc32 is None:
            return None
        crc = 0
        try:
            for offset in range(0, f.size, FILE_PIECE):
                n = min(FILE_PIECE, f.size - offset)
                piece = self.storage.get_range(key, offset, n)
                if len(piece) != n:
                    self.damaged.add(key)
                    return f"object {key} is cut short at {offset + len(piece)} of {f.size} bytes"
                crc = crc32(piece, crc)
        except ObjectNotFoundError:  # (deleted since its size was read: a commit replaced it)
            self.missing = True
            return f"object {key} is missing"
        if crc != f.crc32:
            self.damaged.add(key)  # (repair deletes it once the file is dropped, as a damaged chunk)
            return f"checksum mismatch in {key} (its bytes are damaged)"
        self.report.files += 1
        return None

    # --- the whole run -----------------------------------------------------------------

    def run(self) -> list[str]:
        if not self.check_head():
            return []
        self.check_rows()
        for name, meta in sorted(self.manifest.tensors.items()):
            st = self.load_index(name, meta)
            self.check_samples(st)
            self.tensors.append(st)
        if self.lost_commits:
            self.describe_rollback()
        return self.check_files()

    def note_unreferenced(self) -> None:
        """Note (not damage) the objects no commit references, by ``compact``'s own rule
        (``maintenance.referenced_keys``): an ingest on a full disk left 13 MB of chunks
        that fsck called clean without a word (found by QA)."""
        chunks: dict[str, set[int]] = {}
        for st in self.tensors:
            e = st.entries[st.entries["chunk"] != NO_CHUNK]
            tiled = e["tiles"] > 1
            ids = set(e["chunk"][~tiled].tolist())
            for first, n in zip(e["chunk"][tiled].tolist(), e["tiles"][tiled].tolist()):
                ids.update(range(first, first + n))
            chunks[st.meta.tid] = ids
        count = size = 0
        for key in unreferenced(self.storage, referenced_keys(self.manifest, chunks)):
            try:
                size += self.storage.size(key)
            except ObjectNotFoundError:  # (a writer deleted it meanwhile)
                continue
            count += 1
        if count:
            self.report.notes.append(
                f"{human(size)} in {count} object{'s' if count != 1 else ''} no commit references: left by "
                f"{UNREFERENCED_CAUSE}, or being written by a writer at work; `lakefs compact` reclaims it")

    def raced(self) -> bool:
        """Whether a missing object may be a writer's doing: a commit made after this check
        read HEAD deletes what its new manifest no longer needs (merged segments, the
        manifest of two commits back, replaced files), as a reader opening may find."""
        if not self.missing:
            return False
        try:
            return self.storage.get(keys.HEAD) != self.head
        except ObjectNotFoundError:
            return self.head is not None


def _raise_if_store_failed(e: Exception) -> None:
    """Re-raise a read the store failed (unreachable, a timeout, EIO): that says nothing
    about the object, and taking it for damage would have repair drop what it holds. A
    missing object is a finding; so is anything that read but did not verify."""
    if isinstance(e, StorageError) and not isinstance(e, ObjectNotFoundError):
        raise e


def _about(key: str, e: Exception) -> str:
    """``key: what is wrong``, without repeating the key when the error names it already."""
    if isinstance(e, ObjectNotFoundError):
        return f"{key} is missing"
    text = str(e)
    return text if text.startswith(f"{key}:") else f"{key}: {text}"


EXT_LOST = ".*"  # a lost entry's extension, when the tensor has several (see Checker.sample_name)


def _some(names: list[str], first: int = 5, total: int | None = None) -> str:
    """The first few of ``names`` (of ``total``, when only those were made), and how many more."""
    more = (len(names) if total is None else total) - first
    return ", ".join(names[:first]) + (f" and {more} more" if more > 0 else "")


def salvage_payload(blob: bytes, codec) -> bytes:
    """The payload of a chunk whose header or checksum is damaged: the stored bytes as
    they are, or decompressed (lz4 frames carry their own checksum, so a damaged stream
    fails here and only damage outside it, in the chunk header, is salvaged)."""
    stored = blob[chunkfmt.HEADER.size:]
    return codec.decompress(bytes(stored)) if codec is not None else stored


def find_dataset(storage: Storage) -> None:
    """Raise ``DatasetNotFoundError`` unless ``storage`` holds a dataset: its marker, or a
    dataset that lost its marker (which repair restores). Checked before repair takes the
    writer lock, which would create ``locks/`` wherever it was pointed (a mountpoint)."""
    if storage.exists(keys.MARKER):
        return
    if is_object_store(storage.where):
        storage.check()  # a missing bucket says so
    if not holds_dataset(storage):
        raise DatasetNotFoundError(f"no lakefs dataset at {storage.where}")


NOTED_TEMPS = 10  # leftover temp files named one by one; the rest are counted


def temp_notes(storage: Storage) -> list[str]:
    """A line per temp file of a put that has not finished: no damage (``list`` never
    shows one, no commit names one), but its space is used until ``compact`` deletes
    it, and a fresh one may be a running writer's."""
    temps = sorted(storage.leftover_temps(), key=lambda t: -t[2])  # the oldest first
    notes = []
    for name, size, age in temps[:NOTED_TEMPS]:
        if age >= STALE_TEMP_SECONDS:
            why = "left by a writer killed mid-write; `lakefs compact` deletes it"
        else:
            why = "a running writer's, or left by one killed mid-write (`lakefs compact` deletes it when an hour old)"
        notes.append(f"{name} ({human(size)}, {_age(age)} old) is the temp file of an unfinished write: {why}")
    if len(temps) > NOTED_TEMPS:
        rest = temps[NOTED_TEMPS:]
        notes.append(f"{len(rest)} more temp files of unfinished writes ({human(sum(t[1] for t in rest))})")
    return notes


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200 - 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def fsck(storage: Storage, *, repair: bool = False) -> FsckReport:
    """Check the dataset in ``storage``; with ``repair``, commit a repaired state."""
    find_dataset(storage)
    lock = storage.writer_lock(keys.WRITER_LOCK) if repair else None
    try:
        # Objects a newer commit deleted are not damage: check again from the new HEAD, as
        # Dataset._read_head does (docs/FORMAT.md §7), and report only what persists.
        for attempt in range(CHECK_ATTEMPTS):
            checker = Checker(storage)
            bad_files = checker.run()
            if not checker.raced():
                break
            time.sleep(0.05 * (attempt + 1))
        else:
            checker.problem(f"the dataset changed {CHECK_ATTEMPTS} times while it was checked (a writer is "
                            "committing): a missing object above may be one a commit deleted; check again "
                            "when it is idle")
        checker.report.notes += temp_notes(storage)
        if repair and checker.report.problems and not checker.report.fatal:
            from lakefs.tools.repair import repair as do_repair  # noqa: PLC0415

            do_repair(checker, bad_files)
        elif checker.report.ok:  # (of a damaged dataset, what no commit references is no news)
            checker.note_unreferenced()
        return checker.report
    finally:
        if lock is not None:
            lock.release()
