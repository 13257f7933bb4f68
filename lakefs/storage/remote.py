"""Opening a *dataset's* storage: the object store plus its local read cache, in one place.

``open_dataset_storage`` is what the API, the mount and the tools call. For a local path
it is plain :func:`~lakefs.storage.open_storage`. For an object store (``s3://...``) it
wraps the store in :class:`~lakefs.storage.cache.CachingStorage` when a cache directory
is given, so repeated epochs read chunks from the local disk:

- Only immutable objects are cached (:func:`immutable_key`): chunks, index segments and
  row segments. Their ids come from the manifest's counter and are never reused by a
  committed dataset, so a cached copy can never be stale. ``HEAD``, manifests, staged
  files and locks always go to the store.
- A miss on a ranged read (the engine reads one sample of an uncompressed or
  sample-compressed chunk) fetches the *whole* chunk — parallel 8 MB ranged GETs when it
  is large — so the chunk's other samples are then local (whole-chunk prefetch).
- Each dataset gets its own subdirectory ``<cache_dir>/<h>``, ``h`` a hash of the URL,
  the endpoint and the dataset's marker (its random ``uid`` and modification time): a
  dataset deleted and re-created at the same URL (whose object ids start again from 0),
  even within the same second, never reads the old one's cached chunks. ``cache_size``
  bounds each such subdirectory.

Credentials, region and endpoint come from ``options`` (fsspec storage options) or, for
S3, from botocore's own sources: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` (botocore >= 1.31
reads it itself), ``~/.aws/credentials`` and ``AWS_PROFILE``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from lakefs.errors import LakeFSError
from lakefs.storage import open_storage
from lakefs.storage.base import Storage

#: The dataset marker (lakefs.format.keys.MARKER; the storage layer does not import format).
_MARKER = "lakefs.json"
_LOCAL_SCHEMES = ("", "file", "memory")


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_object_store(url: str) -> bool:
    """True for URLs served by fsspec (``s3://``, ``gs://``, ...), not local paths."""
    return scheme_of(str(url)) not in _LOCAL_SCHEMES


def immutable_key(key: str) -> bool:
    """Keys written once and never rewritten: chunks, index and row segments."""
    parts = key.split("/")
    return "chunks" in parts[:-1] or "index" in parts[:-1] or parts[0] == "rows"


def default_cache_root() -> str:
    """``$XDG_CACHE_HOME/lakefs``, else ``~/.cache/lakefs``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lakefs")


def endpoint_of(options: dict[str, Any] | None) -> str | None:
    """The S3 endpoint from storage options, else from ``AWS_ENDPOINT_URL[_S3]``."""
    opts = options or {}
    return (
        (opts.get("client_kwargs") or {}).get("endpoint_url")
        or opts.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


def cache_dir_for(root: str | os.PathLike[str], url: str, options: dict[str, Any] | None,
                  version: str | None) -> str:
    """The cache subdirectory of one dataset (see the module docstring)."""
    ident = json.dumps([url.rstrip("/"), endpoint_of(options), version])
    return os.path.join(os.fspath(root), hashlib.sha256(ident.encode()).hexdigest()[:20])


def _marker_version(storage: Storage) -> str | None:
    """Which dataset is at this URL: the marker's ``uid`` (made at creation) and when the
    marker was written (datasets made before the uid have only that, to the second);
    None if there is no dataset yet."""
    modified = getattr(storage, "modified", None)
    try:
        uid = json.loads(storage.get(_MARKER)).get("uid")
        return json.dumps([uid, modified(_MARKER) if modified is not None else None])
    except (LakeFSError, ValueError, AttributeError):
        return None  # no dataset yet; check() reports an unusable store more clearly


def open_dataset_storage(
    url: str | os.PathLike[str],
    *,
    read_only: bool = False,
    options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_size: int = 10 << 30,
    check: bool = False,
) -> Storage:
    """The storage of the dataset at ``url``, behind a local read cache if it is remote.

    ``cache_dir`` is the cache *root* (a dataset gets a subdirectory of it); None or a
    ``cache_size`` of 0 means no cache. Local datasets are never cached. ``check`` runs
    ``storage.check()`` first, so an unreachable endpoint, bad credentials or a missing
    bucket is one clear ``StorageError`` before anything else touches the store.
    """
    url = os.fspath(url)
    storage = open_storage(url, read_only=read_only, options=options)
    if check:
        storage.check()
    if cache_dir is None or cache_size <= 0 or not is_object_store(url):
        return storage
    from lakefs.storage.cache import CachingStorage

    root = os.path.expanduser(os.fspath(cache_dir))
    where = cache_dir_for(root, url, options, _marker_version(storage))
    return CachingStorage(storage, where, cache_size, cacheable=immutable_key)


__all__ = [
    "cache_dir_for",
    "default_cache_root",
    "endpoint_of",
    "immutable_key",
    "is_object_store",
    "open_dataset_storage",
]
