"""Rules for tensor/group names, row keys and sample file names.

Names become directory and file names in the mount, so they follow what a Linux
filesystem accepts, minus what would be ambiguous: no ``/`` inside a segment, no NUL or
control characters, not ``.``/``..``, no leading dot (hidden names are staging files
and plain directories), at most 255 bytes of UTF-8 for a file name.
"""

from __future__ import annotations

import re

from lakefs.errors import InvalidNameError, NameTooLongError

NAME_MAX = 255  # bytes, as in Linux's NAME_MAX
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # checked for every file stored through the mount


def printable(name: str) -> str:
    """``name`` for one line of output: control characters as Python writes them in a
    string (``\\n``, ``\\x01``), a byte that is not UTF-8 (a file name's surrogate
    escape, from an old Latin-1 archive) as ``\\xe9``, the rest as it is. Printed raw, a
    newline split a report's line and ``\\x01`` was invisible, and a strict stdout failed
    on the surrogate with a traceback."""
    if name.isprintable():
        return name
    out = []
    for ch in name:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def expr_of(name: str) -> str:
    """How a script reaches tensor or group ``name``: ``ds.train.images``, else ``ds["my-x"]``."""
    if all(part.isidentifier() for part in name.split("/")):
        return "ds." + name.replace("/", ".")
    return f"ds[{name!r}]"


def _check_segment(seg: str, what: str) -> None:
    if not isinstance(seg, str):
        raise InvalidNameError(f"{what} must be a string, not {type(seg).__name__}")
    if seg in ("", ".", ".."):
        raise InvalidNameError(f"invalid {what} {seg!r}" + (" (empty)" if not seg else ""))
    if "/" in seg:
        raise InvalidNameError(f"{what} {seg!r} must not contain '/'")
    if _CONTROL.search(seg):
        raise InvalidNameError(f"{what} {seg!r} must not contain control characters (NUL, newline, ...)")
    if seg.startswith("."):
        raise InvalidNameError(f"{what} {seg!r} must not start with '.'")
    _check_size(seg, what)


def _check_size(seg: str, what: str) -> None:
    """At most NAME_MAX bytes of UTF-8 (a file name's limit)."""
    try:
        size = len(seg.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidNameError(f"{what} {seg!r} is not valid UTF-8") from e
    if size > NAME_MAX:
        raise NameTooLongError(f"{what} is {size} bytes long; at most {NAME_MAX} are allowed")


def check_path(name: str, what: str = "tensor name") -> str:
    """A tensor or group path: ``/``-separated valid segments. Returns it normalised."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, not {type(name).__name__}")
    parts = name.strip("/").split("/")
    if len(parts) == 1:
        _check_segment(parts[0], what)
        return parts[0]
    for part in parts:
        try:
            _check_segment(part, "part")
        except InvalidNameError as e:  # name the whole path, not only its bad part ('a//b')
            shown = name if len(name) <= 80 else name[:60] + "..."
            raise type(e)(f"{what} {shown!r}: {e}") from None
    return "/".join(parts)


def is_plain_path(path: str) -> bool:
    """Whether ``path`` is a plain directory's (or lies in one): a segment starts with
    '.' (``.git``, ``proj/.cache/hub``), which no tensor or group name does."""
    return path.startswith(".") or "/." in path


def check_plain_path(path: str) -> str:
    """A plain directory's path: segments as a filesystem takes them (any name, control
    characters too, as staged files), at least one of them hidden. Returns it normalised."""
    parts = path.strip("/").split("/")
    for seg in parts:
        if seg in ("", ".", "..") or "\0" in seg:
            raise InvalidNameError(f"invalid directory name {seg!r} in {path!r}")
        _check_size(seg, "directory name")
    path = "/".join(parts)
    if not is_plain_path(path):
        raise InvalidNameError(f"{path!r} is not a plain directory's path (none of its names starts with '.')")
    return path


def check_key(key: str) -> str:
    """A row key: one valid segment (it becomes a file stem)."""
    _check_segment(key, "row key")
    return key


def split_filename(name: str) -> tuple[str, str] | None:
    """``"cat001.jpg"`` → ``("cat001", ".jpg")``; None when there is no usable extension."""
    if name.startswith(".") or "." not in name:
        return None
    stem, ext = name.rsplit(".", 1)
    if not stem or not ext:
        return None
    return stem, "." + ext
