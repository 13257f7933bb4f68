"""The one module that owns the storage key layout of a dataset (see docs/FORMAT.md).

Every object lakefs writes is named here, so the layout can be read in one place and
changed in one place. Object ids come from the manifest's ``next_id`` counter and are
written as 16 hex digits so keys sort in creation order.
"""

from __future__ import annotations

import re

MARKER = "lakefs.json"  # written once at creation: {"format": "lakefs", "version": N}
HEAD = "HEAD"  # the commit point: names the current manifest; replaced atomically
MANIFESTS = "manifests/"
TENSORS = "tensors/"
ROWS = "rows/"
FILES = "files/"
WRITER_LOCK = "writer"


def manifest(seq: int) -> str:
    return f"{MANIFESTS}{seq:016x}.json"


def chunk(tid: str, chunk_id: int) -> str:
    return f"{TENSORS}{tid}/chunks/{chunk_id:016x}"


def index_segment(tid: str, seg_id: int) -> str:
    return f"{TENSORS}{tid}/index/{seg_id:016x}"


def tensor_prefix(tid: str) -> str:
    return f"{TENSORS}{tid}/"


def chunk_prefix(tid: str) -> str:
    return f"{TENSORS}{tid}/chunks/"


def rows_segment(seg_id: int) -> str:
    return f"{ROWS}{seg_id:016x}"


def staged_file(file_id: int) -> str:
    return f"{FILES}{file_id:016x}"


_HEX = "[0-9a-f]{16}"
_DATASET_KEY = re.compile(
    rf"{re.escape(MARKER)}|{HEAD}|{MANIFESTS}{_HEX}\.json|{ROWS}{_HEX}|{FILES}{_HEX}"
    rf"|{TENSORS}t[0-9]+/(?:chunks|index)/{_HEX}"
)


def is_dataset_key(key: str) -> bool:
    """Whether ``key`` is a name lakefs gives its objects (the lock aside). Deletion
    (``compact``, ``overwrite``, dropped tensors) touches nothing else, so files that are
    not the dataset's own (a nested folder, a user's notes) are never deleted."""
    return _DATASET_KEY.fullmatch(key) is not None


def parse_id(key: str) -> int:
    """The numeric id at the end of an object key (``.../00000000000000ff`` → 255)."""
    return int(key.rsplit("/", 1)[-1].split(".", 1)[0], 16)
