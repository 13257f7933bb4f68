"""Storage backends behind one interface (:class:`Storage`), opened by URL.

``open_storage`` is a small scheme registry in the fsspec style: a plain path or
``file://`` → :class:`LocalStorage`, ``memory://name`` → :class:`MemoryStorage` (shared
by name within the process), any other scheme → ``FsspecStorage``, imported only then,
so ``import lakefs.storage`` never loads fsspec, s3fs or botocore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from lakefs.errors import StorageError
from lakefs.storage.base import LOCK_PREFIX, Storage, WriterLock, check_key
from lakefs.storage.local import LocalStorage
from lakefs.storage.memory import MemoryStorage

__all__ = [
    "LOCK_PREFIX",
    "LocalStorage",
    "MemoryStorage",
    "Storage",
    "WriterLock",
    "check_key",
    "open_storage",
    "register_scheme",
]

Opener = Callable[[str, bool, dict[str, Any]], Storage]


def _open_local(url: str, read_only: bool, options: dict[str, Any]) -> Storage:
    if options:
        raise StorageError(f"storage_options are for object-store datasets: a local dataset takes none, "
                           f"got {sorted(options)}")
    path = url[len("file://"):] if url.startswith("file://") else url
    return LocalStorage(path, read_only=read_only)


def _open_memory(url: str, read_only: bool, options: dict[str, Any]) -> Storage:
    name = url[len("memory://"):].strip("/")
    if not name:
        return MemoryStorage(read_only=read_only)  # anonymous: private to the caller
    return MemoryStorage.named(name, read_only=read_only)


def _open_fsspec(url: str, read_only: bool, options: dict[str, Any]) -> Storage:
    module = importlib.import_module("lakefs.storage.fsspec_store")
    # ours, not fsspec storage options
    lease = options.pop("lease_seconds", 30.0)
    op_timeout = options.pop("op_timeout", 60.0)
    return module.FsspecStorage(
        url, storage_options=options, read_only=read_only, lease_seconds=lease,
        op_timeout=op_timeout,
    )


_SCHEMES: dict[str, Opener] = {"": _open_local, "file": _open_local, "memory": _open_memory}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Route ``scheme://...`` URLs to ``opener(url, read_only, options)``."""
    _SCHEMES[scheme] = opener


def open_storage(
    url_or_path: str, *, read_only: bool = False, options: dict[str, Any] | None = None
) -> Storage:
    """Open the storage at a path or URL (``./ds``, ``file:///ds``, ``s3://bucket/ds``).

    ``options`` go to the backend (fsspec ``storage_options`` for object stores).
    """
    url = str(url_or_path)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    opener = _SCHEMES.get(scheme, _open_fsspec)
    return opener(url, read_only, dict(options or {}))
