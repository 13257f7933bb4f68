"""The manifest: one JSON object that names everything a commit made visible.

A commit writes chunks and index segments first, then a new manifest object, then
replaces ``HEAD`` (one atomic put) to point at it. A reader reads ``HEAD``, then the
manifest, then the segments it names. See docs/FORMAT.md.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from lakefs.errors import CorruptionError, FormatVersionError
from lakefs.format import keys
from lakefs.format.checksum import crc32
from lakefs.format.version import FORMAT_VERSION, READABLE_VERSIONS

DIR_MODE = 0o755  # the mode of a directory with no ``dirs`` entry

@dataclass
class TensorMeta:
    """A tensor's settings, fixed at creation except where noted."""

    tid: str
    htype: str
    dtype: str | None  # set by the first sample when not given
    sample_compression: str | None
    chunk_compression: str | None
    chunk_size: int
    class_names: list[str] = field(default_factory=list)  # grows as labels arrive
    exts: list[str] = field(default_factory=list)  # extension table used by index entries
    segments: list[dict] = field(default_factory=list)  # index segments [{id, count}]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TensorMeta:
        if not isinstance(d, dict):
            raise TypeError(f"a tensor meta is an object, not {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class StagedFile:
    """A plain (non-sample) file kept in the dataset: a README, an rsync temp file.

    ``crc32`` is the CRC-32 of its bytes (format v3), checked by whole reads and fsck;
    None for a file stored before v3, which reads unverified."""

    file_id: int
    size: int
    mtime_ns: int
    mode: int
    crc32: int | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        if self.crc32 is None:
            del d["crc32"]  # (a file stored before format v3: no checksum to write)
        return d


@dataclass
class Manifest:
    seq: int = 0
    next_id: int = 1
    tensors: dict[str, TensorMeta] = field(default_factory=dict)  # full name → meta
    groups: list[str] = field(default_factory=list)  # full names, parents first
    pending_dirs: list[str] = field(default_factory=list)  # mkdir'd, not yet tensor/group
    rows: list[dict] = field(default_factory=list)  # row segments [{id, start, count}]
    files: dict[str, StagedFile] = field(default_factory=dict)  # path → staged file
    row_count: int = 0
    # Directory path ("" = the root) → (mode, mtime_ns), for directories whose mode or
    # time was set (format v2; a directory with no entry has DIR_MODE and a time of the
    # reader's choosing). Entries are replaced whole, never changed in place.
    dirs: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The format version of the manifest object this was read from (a new one's:
    # FORMAT_VERSION). Not kept when written: ``to_bytes`` writes FORMAT_VERSION.
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        d = {
            "format": "lakefs",
            "format_version": FORMAT_VERSION,
            "seq": self.seq,
            "next_id": self.next_id,
            "row_count": self.row_count,
            "rows": self.rows,
            "groups": self.groups,
            "pending_dirs": self.pending_dirs,
            "tensors": {k: v.to_json() for k, v in self.tensors.items()},
            "files": {k: v.to_json() for k, v in self.files.items()},
            "dirs": self.dirs,
        }
        d[CRC_FIELD] = crc32(_canonical(d))
        return _canonical(d)

    @classmethod
    def from_bytes(cls, blob: bytes, where: str) -> Manifest:
        try:
            d = json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptionError(f"{where}: manifest is not valid JSON: {e}") from e
        if not isinstance(d, dict) or d.get("format") != "lakefs":
            raise CorruptionError(f"{where}: not a lakefs manifest")
        _check_damaged_version(d, where)
        check_version(d.get("format_version"), where)
        _verify_crc(d, where)
        try:
            m = cls(
                seq=int(d["seq"]),
                next_id=int(d["next_id"]),
                row_count=int(d["row_count"]),
                rows=list(d["rows"]),
                groups=list(d["groups"]),
                pending_dirs=list(d.get("pending_dirs", [])),
                tensors={k: TensorMeta.from_json(v) for k, v in d["tensors"].items()},
                files={k: StagedFile(**v) for k, v in d["files"].items()},
                dirs={k: _dir_entry(v) for k, v in d.get("dirs", {}).items()},
                format_version=int(d["format_version"]),
            )
            # Segment references are read later, one by one: check their shape here so a
            # damaged manifest is a CorruptionError naming it, not a KeyError at open.
            for ref in m.rows:
                int(ref["id"]), int(ref["start"]), int(ref["count"])
            for meta in m.tensors.values():
                for ref in meta.segments:
                    int(ref["id"]), int(ref["count"])
            _check_types(m)
            if m.format_version < 3 and any(f.crc32 is not None for f in m.files.values()):
                raise ValueError("a file's crc32 in a manifest of format version < 3")
            return m
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorruptionError(f"{where}: manifest is malformed: {e!r}") from e


def _check_types(m: Manifest) -> None:
    """The JSON types docs/FORMAT.md §4 gives the fields (ValueError if one is off).

    A manifest without a crc32 (written before it had one, or edited) is taken as it
    reads: a class name that is a number or a chunk size that is a string made ``lakefs
    info`` and ``export`` end in a traceback, and ``fsck`` call the dataset clean."""
    for what, names in (("groups", m.groups), ("pending_dirs", m.pending_dirs)):
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"{what} holds a name that is not a string")
    for name, meta in m.tensors.items():
        wrong = _wrong_tensor_field(meta)
        if wrong:
            raise ValueError(f"tensor {name!r}: {wrong} is {getattr(meta, wrong)!r}")
    for path, f in m.files.items():
        if not all(type(v) is int for v in (f.file_id, f.size, f.mtime_ns, f.mode)) or min(f.file_id, f.size) < 0 \
                or not (f.crc32 is None or (type(f.crc32) is int and 0 <= f.crc32 < 1 << 32)):
            raise ValueError(f"file {path!r}: {f!r}")


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _wrong_tensor_field(meta: TensorMeta) -> str | None:
    """The first field of ``meta`` whose value is not of its type, else None."""
    checks = {
        "tid": lambda v: isinstance(v, str) and v[:1] == "t" and v[1:].isascii() and v[1:].isdigit(),
        "htype": lambda v: isinstance(v, str),
        "dtype": lambda v: v is None or (isinstance(v, str) and _numpy_dtype(v)),
        "sample_compression": lambda v: v is None or isinstance(v, str),
        "chunk_compression": lambda v: v is None or isinstance(v, str),
        "chunk_size": lambda v: type(v) is int and v > 0,
        "class_names": _is_str_list,
        "exts": _is_str_list,
        "segments": lambda v: isinstance(v, list),
        "info": lambda v: isinstance(v, dict),
    }
    return next((f for f, ok in checks.items() if not ok(getattr(meta, f))), None)


def _numpy_dtype(name: str) -> bool:
    import numpy as np  # noqa: PLC0415  (only when a manifest is read)

    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


CRC_FIELD = "crc32"
_FIELDS_V1 = frozenset({"format", "format_version", "seq", "next_id", "row_count", "rows", "groups",
                        "pending_dirs", "tensors", "files", CRC_FIELD})
# The closed top-level field set of each format version (docs/FORMAT.md §4, §10).
# Version 3 adds no top-level field: a plain file's record gains ``crc32``.
_FIELDS = {1: _FIELDS_V1, 2: _FIELDS_V1 | {"dirs"}, 3: _FIELDS_V1 | {"dirs"}}


def _dir_entry(v: object) -> tuple[int, int]:
    """A ``dirs`` value: ``[mode, mtime_ns]``."""
    if not isinstance(v, list) or len(v) != 2 or not all(type(x) is int for x in v) or not 0 <= v[0] <= 0o7777:
        raise ValueError(f"directory entry {v!r} is not [mode, mtime_ns]")
    return v[0], v[1]


def _canonical(d: dict) -> bytes:
    return json.dumps(d, separators=(",", ":"), sort_keys=True).encode()


def _verify_crc(d: dict, where: str) -> None:
    """Check the manifest's ``crc32`` (of its canonical JSON without that field).

    Manifests written before the field existed have none and are read as they are. A
    flipped bit in a field name shows up as an unknown field (this is how a damaged
    ``crc32`` name is caught too); one in a value, as a checksum mismatch.
    """
    unknown = set(d) - _FIELDS[d["format_version"]]
    if unknown:
        raise CorruptionError(f"{where}: manifest has unknown fields {sorted(unknown)} (damaged?)")
    crc = d.pop(CRC_FIELD, None)
    if crc is not None and crc != crc32(_canonical(d)):
        raise CorruptionError(f"{where}: manifest checksum mismatch (stored data is damaged)")


def _check_damaged_version(d: dict, where: str) -> None:
    """CorruptionError for a manifest that names a version this lakefs does not read only
    because that digit took a flipped bit ("3" → "7"): its crc32 verifies with a version
    this lakefs reads. Taken for a newer lakefs's commit, it would stop ``fsck --repair``
    for good ("upgrade lakefs")."""
    version, crc = d.get("format_version"), d.get(CRC_FIELD)
    if type(version) is not int or version in READABLE_VERSIONS or type(crc) is not int:
        return
    rest = {k: v for k, v in d.items() if k != CRC_FIELD}
    for readable in sorted(READABLE_VERSIONS):
        if crc32(_canonical({**rest, "format_version": readable})) == crc:
            raise CorruptionError(f"{where}: manifest says format version {version}, but it was written as "
                                  f"version {readable}: its format_version is damaged")


def check_version(version: object, where: str) -> None:
    """FormatVersionError for a version this lakefs does not read (a newer lakefs wrote
    it); CorruptionError for none at all: a flipped bit in the field's name made it
    missing, and asking to upgrade lakefs for that stopped ``fsck --repair`` too."""
    if type(version) is not int:
        raise CorruptionError(f"{where}: no format version (damaged?)")
    if version not in READABLE_VERSIONS:
        raise FormatVersionError(
            f"{where}: dataset format version {version!r} is not supported by this lakefs "
            f"(reads {sorted(READABLE_VERSIONS)}); upgrade lakefs to open it"
        )


def marker_bytes(version: int = FORMAT_VERSION) -> bytes:
    """The marker of a dataset of format ``version``: a new one's, or one fsck restores
    (with the version of the dataset's manifest, docs/FORMAT.md §3). ``uid`` tells apart
    two datasets created one after the other at the same URL (a read cache must never
    serve one's objects for the other's)."""
    return json.dumps({"format": "lakefs", "version": version, "uid": uuid.uuid4().hex}).encode()


def _json_kind(value: object) -> str:
    """The JSON name of a parsed value's type: ``array`` for a list."""
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def head_bytes(seq: int, manifest_key: str) -> bytes:
    return json.dumps({"format_version": FORMAT_VERSION, "seq": seq, "manifest": manifest_key}).encode()


def head_version(blob: bytes, where: str) -> int:
    """The format version a ``HEAD`` object names (checked: FormatVersionError if this
    lakefs cannot read it, CorruptionError if it is not a HEAD)."""
    try:
        version = json.loads(blob).get("format_version")
    except (ValueError, AttributeError) as e:
        raise CorruptionError(f"{where}: HEAD is not a JSON object (damaged?)") from e
    check_version(version, where)
    return int(version)


def parse_head(blob: bytes, where: str) -> tuple[int, str]:
    """(seq, manifest key) of a ``HEAD`` object; ``CorruptionError`` saying in words what
    is wrong with one that is not a HEAD (never a Python exception's repr)."""
    try:
        d = json.loads(blob)
    except UnicodeDecodeError:
        raise CorruptionError(f"{where}: HEAD is malformed: not UTF-8 text") from None  # (not its bytes)
    except ValueError:
        why = "it is empty" if not bytes(blob).strip() else "it is not JSON"
        raise CorruptionError(f"{where}: HEAD is malformed: {why}") from None
    if not isinstance(d, dict):
        raise CorruptionError(f"{where}: HEAD is malformed: it is a JSON {_json_kind(d)}, not an object")
    check_version(d.get("format_version"), where)
    seq, mkey = d.get("seq"), d.get("manifest")
    why = ("it names no commit (seq)" if seq is None else
           "its seq is not a whole number" if type(seq) is not int else
           "it names no manifest" if mkey is None else
           "its manifest is not a string" if not isinstance(mkey, str) else None)
    if why is not None:
        raise CorruptionError(f"{where}: HEAD is malformed: {why}")
    if mkey != keys.manifest(seq):  # HEAD has no checksum: a damaged seq or key shows here
        raise CorruptionError(f"{where}: HEAD names {mkey!r} for commit {seq} (damaged?)")
    return seq, mkey
