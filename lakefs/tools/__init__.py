"""The dataset tools behind ``lakefs ingest|export|info|fsck``: plain functions, no argparse.

Each module takes paths or an open :class:`~lakefs.dataset.Dataset` and returns a report
object; the CLI (``lakefs.cli``) only parses arguments and prints.
"""

from __future__ import annotations

import os

from lakefs.errors import ConfigError, DatasetNotFoundError


def split_dataset_path(path: str, storage_options: dict | None = None) -> tuple[str, str]:
    """``./cats/train/images`` → (``./cats``, ``train/images``): the longest prefix that
    is a dataset, and the path inside it. Raises DatasetNotFoundError if none is.
    ``storage_options``: for an object store (endpoint, credentials).

    A dataset that lost its marker counts (as for every command that takes a dataset:
    opening it then says so, and how to restore it); it is looked for only when no
    prefix has a marker, which is one check per prefix, not five."""
    from lakefs.api import exists, lost_marker_at  # noqa: PLC0415  (keep `import lakefs.tools` light)

    text = os.fspath(path)
    if not text:  # (not "/", which rstrip would make of it)
        raise ConfigError("the path is empty; name a dataset or a path in one")
    text = text.rstrip("/") or "/"
    for found in (exists, lost_marker_at):
        inner: list[str] = []
        head = text
        while head:
            if found(head, storage_options=storage_options):
                return head, "/".join(reversed(inner))
            parent, _, name = head.rpartition("/")
            if not name or parent.endswith(":/") or parent.endswith(":"):
                break
            inner.append(name)
            head = parent
    raise DatasetNotFoundError(f"no lakefs dataset at {text}")
