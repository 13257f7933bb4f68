"""The one error hierarchy: one root, built-in mixins, an errno on every class."""

from __future__ import annotations

import errno
import inspect

import pytest

import lakefs.errors as E

ALL = [c for _, c in inspect.getmembers(E, inspect.isclass) if issubclass(c, Exception) and c.__module__ == E.__name__]


def test_every_error_has_one_root_and_an_errno():
    assert len(ALL) > 20
    for cls in ALL:
        assert issubclass(cls, E.LakeFSError), cls
        assert isinstance(cls.errno, int) and cls.errno > 0, cls


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_messages_stay_plain(cls):
    e = cls("tensor 'x' is missing")
    assert str(e) == "tensor 'x' is missing"
    assert e.errno == cls.errno


@pytest.mark.parametrize(
    "cls, builtin, code",
    [
        (E.ObjectNotFoundError, FileNotFoundError, errno.ENOENT),
        (E.TensorNotFoundError, KeyError, errno.ENOENT),
        (E.StorageFullError, OSError, errno.ENOSPC),
        (E.ReadOnlyError, PermissionError, errno.EROFS),
        (E.UndecodableError, ValueError, errno.EINVAL),
        (E.NameTooLongError, ValueError, errno.ENAMETOOLONG),
        (E.CrossDeviceError, OSError, errno.EXDEV),
        (E.DirectoryNotEmptyError, OSError, errno.ENOTEMPTY),
        (E.HtypeMismatchError, TypeError, errno.EINVAL),  # text() of an image tensor
        (E.UnsupportedError, NotImplementedError, errno.EPERM),
        (E.UnsupportedSampleError, NotImplementedError, errno.EINVAL),  # refused content, as any
        (E.UnsupportedSampleError, ValueError, errno.EINVAL),
    ],
)
def test_builtin_mixins_let_ordinary_except_clauses_work(cls, builtin, code):
    with pytest.raises(builtin):
        raise cls("x")
    assert cls.errno == code
