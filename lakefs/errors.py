"""The one error hierarchy of lakefs.

Every error derives from :class:`LakeFSError` and mixes in the built-in exception it
resembles, so ``except FileNotFoundError`` works as users expect. Each class carries the
``errno`` the filesystem layer reports for it (DESIGN §4), so the FUSE adapter maps
errors with one attribute lookup instead of a table of cases.
"""

from __future__ import annotations

import errno as _errno
import os


class LakeFSError(Exception):
    """Root of every lakefs error.

    Messages stay plain: the built-ins mixed in below would otherwise reinterpret
    arguments (OSError's ``(errno, strerror)``) or quote them (KeyError).
    """

    errno: int = _errno.EIO

    def __init__(self, *args: object) -> None:
        Exception.__init__(self, *args)

    def __str__(self) -> str:
        return Exception.__str__(self)


def message_of(e: BaseException) -> str:
    """A one-line message for ``e``: a plain OSError's ``PATH: reason`` without Python's
    ``[Errno N]`` prefix and quotes; any other exception's own text."""
    if isinstance(e, OSError) and not isinstance(e, LakeFSError) and e.strerror:
        where = " -> ".join(os.fsdecode(f) for f in (e.filename, e.filename2) if f is not None)
        return f"{where}: {e.strerror}" if where else e.strerror
    return str(e) or type(e).__name__


# --- storage -------------------------------------------------------------------------


class StorageError(LakeFSError, OSError):
    """The storage underneath failed (I/O error, network failure)."""

    errno = _errno.EIO


class StorageFullError(StorageError):
    """No space left on the storage (ENOSPC)."""

    errno = _errno.ENOSPC


class ShortInputError(LakeFSError, ValueError):
    """A file being stored or copied ended before the size it was said to have (it
    shrank while it was read, or the size given was wrong): nothing of it is taken."""

    errno = _errno.EIO


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """A storage key does not exist."""

    errno = _errno.ENOENT


class ObjectExistsError(StorageError, FileExistsError):
    """A create-only put found the key taken (:meth:`Storage.put_new`)."""

    errno = _errno.EEXIST


class InvalidKeyError(LakeFSError, ValueError):
    """A storage key is malformed or would escape the storage root."""

    errno = _errno.EINVAL


class ReadOnlyError(LakeFSError, PermissionError):
    """A write was attempted on read-only storage, a read-only dataset or mount."""

    errno = _errno.EROFS


class DatasetClosedError(ReadOnlyError):
    """A write to a dataset after its ``close()``: it takes no more writes (open it again
    with ``lakefs.load``). Still a ``ReadOnlyError`` (EROFS), which such a write raised
    before this class existed, for the code that catches it."""


class LockedError(LakeFSError, BlockingIOError):
    """Another writer holds the dataset's writer lock. ``holder`` names it where known
    (``pid 4121 on vm, lease expires in 26 s``), for a caller that words its own message;
    ``runs_out_in`` is set when it is a writer of this machine that is not running here
    (killed): the seconds until its lease runs out and the lock is free;
    ``in_this_process`` when the holder is this very process (another dataset object
    still open: "another writer, pid <our own>" sent users looking for one)."""

    errno = _errno.EBUSY

    def __init__(self, *args: object, holder: str | None = None, runs_out_in: float | None = None,
                 in_this_process: bool = False) -> None:
        super().__init__(*args)
        self.holder = holder
        self.runs_out_in = runs_out_in
        self.in_this_process = in_this_process


class LeaseLostError(LockedError, ReadOnlyError):
    """This writer's lease was taken over for good by another writer (it expired while
    this one was paused or cut off, and the other took it): nothing changed since this
    writer's last commit can be committed, and the dataset (or mount) is read-only from
    then on. ``EROFS``, as a filesystem remounted read-only after an error; still a
    ``LockedError`` for code that handles a lost lock."""

    errno = _errno.EROFS


# --- dataset / format ----------------------------------------------------------------


class DatasetNotFoundError(LakeFSError, FileNotFoundError):
    """No dataset exists at the given location."""

    errno = _errno.ENOENT


class DatasetExistsError(LakeFSError, FileExistsError):
    """A dataset already exists where a new one was to be created. ``replaceable``: it
    is a dataset, which ``overwrite`` replaces (not other files), so the CLI can name
    its own flag for it."""

    errno = _errno.EEXIST

    def __init__(self, *args: object, replaceable: bool = False) -> None:
        super().__init__(*args)
        self.replaceable = replaceable


class FormatVersionError(LakeFSError, ValueError):
    """The dataset was written in a format version this lakefs cannot read."""

    errno = _errno.EIO


class CorruptionError(LakeFSError, OSError):
    """Stored data failed a checksum or structural check."""

    errno = _errno.EIO


class TensorNotFoundError(LakeFSError, KeyError):
    """No tensor or group of that name."""

    errno = _errno.ENOENT


class TensorExistsError(LakeFSError, FileExistsError):
    """A tensor or group of that name already exists."""

    errno = _errno.EEXIST


class SampleNotFoundError(LakeFSError, KeyError):
    """No sample at that row or key."""

    errno = _errno.ENOENT


class KeyExistsError(LakeFSError, FileExistsError):
    """A row key is already taken."""

    errno = _errno.EEXIST


class InvalidNameError(LakeFSError, ValueError):
    """A tensor, group or row key name is not allowed."""

    errno = _errno.EINVAL


class StoredExtensionError(InvalidNameError):
    """A sample renamed to an extension its stored form cannot show (a JPEG to ``.png``):
    the mount answers EXDEV, so that ``mv`` copies it as ``cp`` would."""


class NameTooLongError(InvalidNameError):
    """A name is longer than a filesystem allows (255 bytes)."""

    errno = _errno.ENAMETOOLONG


class InvalidSampleError(LakeFSError, ValueError):
    """A sample's value does not fit its tensor (wrong dtype, shape, type)."""

    errno = _errno.EINVAL


class UndecodableError(InvalidSampleError):
    """Content is not decodable as the tensor's kind (a text file into an image tensor)."""


class CorruptSampleError(UndecodableError):
    """Content looks like a known format but is damaged or truncated."""


class TranscodeRefusedError(InvalidSampleError):
    """A transcode was refused: lossy into exact-valued data, or transcodes disabled."""


class HtypeMismatchError(LakeFSError, TypeError):
    """A reader for one htype used on a tensor of another: Deep Lake's ``text()`` of an
    image tensor, ``dict()`` of a text tensor (Deep Lake raises a bare Exception)."""

    errno = _errno.EINVAL


class UnsupportedError(LakeFSError, NotImplementedError):
    """An operation that lakefs deliberately does not support (symlinks, hard links)."""

    errno = _errno.EPERM


class UnsupportedSampleError(UnsupportedError, InvalidSampleError):
    """A sample in a variant of its format lakefs cannot decode (a 12-bit JPEG, a BMP
    layout Pillow cannot read): refused content, "Invalid argument" through the mount as
    every other refused file, not "Operation not permitted"."""

    errno = _errno.EINVAL


class ConfigError(LakeFSError, ValueError):
    """A configuration file or option is invalid."""

    errno = _errno.EINVAL


# --- filesystem view -----------------------------------------------------------------


class DirectoryNotEmptyError(LakeFSError, OSError):
    """``rmdir`` of a tensor or group that still holds something, and ``delete_group``
    of one without ``recursive=True``."""

    errno = _errno.ENOTEMPTY


class CrossDeviceError(LakeFSError, OSError):
    """A rename lakefs cannot do in place (a sample into another tensor): ``mv`` copies."""

    errno = _errno.EXDEV


class IsADirectoryError_(LakeFSError, IsADirectoryError):
    """A file operation on a tensor or group directory."""

    errno = _errno.EISDIR


class NotADirectoryError_(LakeFSError, NotADirectoryError):
    """A directory operation on a file, or a path through a file."""

    errno = _errno.ENOTDIR


class NotPermittedError(LakeFSError, PermissionError):
    """An operation the layout forbids (a directory inside a tensor)."""

    errno = _errno.EPERM


class NoSuchAttributeError(LakeFSError, OSError):
    """No extended attribute of that name (getxattr answers ENODATA)."""

    errno = _errno.ENODATA


class BusyError(LakeFSError, OSError):
    """The operation would pull the rug from under open files (renaming their directory)."""

    errno = _errno.EBUSY


class BadHandleError(LakeFSError, OSError):
    """An unknown file handle, or a write through a handle opened read-only (EBADF)."""

    errno = _errno.EBADF
