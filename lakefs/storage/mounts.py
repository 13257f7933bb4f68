"""Which mount holds a local path, from the mount table (/proc/self/mounts), and the
refusal of a lakefs mountpoint (or a path inside one) where a dataset is wanted.

Below the dataset layer so that the CLI and the Python API (``lakefs.load``) say the same,
and free of FUSE: the table is read and a mount probed without the FUSE binding (a mount
is never listed, and stat only in a daemon thread: a dead one fails it, a wedged one hangs).
"""

from __future__ import annotations

import errno
import os
import re
import threading
from dataclasses import dataclass

from lakefs.errors import DatasetNotFoundError


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mounts (proc(5)): what is mounted where."""

    source: str  # a lakefs mount's is "lakefs:<dataset>"
    target: str
    fstype: str  # "fuse.lakefs" for a lakefs mount (subtype lakefs)
    options: tuple[str, ...]

    @property
    def is_lakefs(self) -> bool:
        return self.fstype == "fuse.lakefs" or self.source.startswith("lakefs:")

    @property
    def dataset(self) -> str | None:
        """The mounted dataset, when the source names it (lakefs refuses ``-o fsname=``;
        an older one took it)."""
        return self.source[len("lakefs:"):] if self.source.startswith("lakefs:") else None

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    # proc(5): space, tab, newline and backslash are written as octal escapes (\040...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


#: Symlinks followed at most in one path (Linux's MAXSYMLINKS).
MAX_SYMLINKS = 40


def table_path(path: str) -> str:
    """``path`` as the mount table spells it: absolute, every symlink resolved (the path
    itself may be a symlink to a mountpoint, or end in one). Its last component is only
    ever read as a link: ``os.path.realpath`` stats it, which fails on a dead FUSE mount
    (ENOTCONN) and hangs on a wedged one, while ``readlink`` of a mount's root never
    reaches its filesystem (see :func:`mount_entry`). ``..`` is taken as the kernel takes
    it, after the symlink before it. The working directory is only asked for a relative
    ``path``: one that was deleted fails ``getcwd``, and every command given absolute paths
    said only "No such file or directory"."""
    path = os.fspath(path)
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    for _ in range(MAX_SYMLINKS):
        parent, name = os.path.split(path)
        while name in ("", ".") and parent != path:  # "mnt/", "mnt/.": mnt
            path = parent
            parent, name = os.path.split(path)
        parent = os.path.realpath(parent)
        if not name:
            return parent  # (the root)
        if name == "..":
            return os.path.dirname(parent)
        path = os.path.join(parent, name)
        try:
            target = os.readlink(path)
        except OSError:  # not a symlink (EINVAL), or missing: as it is
            return path
        path = os.path.join(parent, target)
    return path


def _mount_table() -> list[MountEntry]:
    """/proc/self/mounts in order (a later mount at a target covers an earlier one)."""
    entries = []
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 4:
                    entries.append(MountEntry(_unescape(fields[0]), _unescape(fields[1]), fields[2],
                                              tuple(fields[3].split(","))))
    except OSError:
        return []
    return entries


def mount_entry(path: str) -> MountEntry | None:
    """What is mounted at ``path`` (the last mount there: mounts stack), from
    /proc/self/mounts, else None. Never stats ``path``: on a FUSE mount whose process died
    that fails with ENOTCONN (so ``os.path.ismount`` says False), on a wedged one it hangs."""
    target = table_path(path)
    found = None
    for entry in _mount_table():
        if entry.target == target:
            found = entry
    return found


def enclosing_mount(path: str) -> MountEntry | None:
    """The innermost mount holding ``path`` (``path`` itself or an ancestor), from the
    mount table, else None: ``./mnt/images`` is inside the lakefs mount at ``./mnt``
    (whose entry's target is then not ``table_path(path)``). Never stats ``path``."""
    target = table_path(path)
    found = None
    for entry in _mount_table():
        under = entry.target == target or target.startswith(entry.target.rstrip("/") + "/")
        if under and (found is None or len(entry.target) >= len(found.target)):
            found = entry
    return found


def is_dead(path: str, timeout: float = 2.0) -> bool:
    """True if ``path``, a FUSE mount, answers ENOTCONN: its process is gone. A stat that
    does not return within ``timeout`` (a wedged mount) counts as alive; it runs in a
    daemon thread so it cannot hang the caller."""
    result: list[bool] = []

    def probe() -> None:
        try:
            os.stat(path)
            result.append(False)
        except OSError as e:
            result.append(e.errno == errno.ENOTCONN)

    thread = threading.Thread(target=probe, name="lakefs-mount-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def refuse_a_mountpoint(path: str, command: str = "fsck") -> None:
    """A lakefs mountpoint given instead of its dataset gets one line (a dead one would
    otherwise fail with "read 'lakefs.json': Transport endpoint is not connected", a live
    one say "no dataset" with no hint), for ``fsck`` and every command that takes a
    dataset: the CLI's ``main`` calls this for ``ls`` and each ``dataset`` argument, and
    ``lakefs.load``/``empty``/``dataset`` (``command`` "load" or "create") for theirs. So
    does a path inside a lakefs mount (``lakefs ls ./mnt/images``, which said "no lakefs
    dataset at ./mnt/images"; ``lakefs ingest SRC ./mnt/new`` stored a dataset's objects as
    files in the mounted one): the line names the mount and its dataset and what to give
    instead."""
    if "://" in path and not path.startswith("file://"):
        return
    local = path.removeprefix("file://")
    entry = enclosing_mount(local)
    if entry is None or not entry.is_lakefs:
        return
    dataset = entry.dataset or "DATASET"
    mp = entry.target
    inner = os.path.relpath(table_path(local), mp)
    if inner != ".":
        if is_dead(mp):
            raise DatasetNotFoundError(
                f"{path} is inside a dead lakefs mount at {mp} (its mount process is gone), not a dataset: "
                f"clear it with `lakefs umount {mp}`; the dataset itself is {dataset}")
        raise DatasetNotFoundError(f"{path} is inside the lakefs mount at {mp} of {dataset}"
                                   f"{_inside_hint(command, dataset, inner)}")
    if command == "fsck":
        hint = f"check the mounted dataset itself with `lakefs fsck {dataset}`"
    elif command == "create":  # (not "give the mounted dataset": to empty(overwrite=True) it)
        hint = f"a dataset is not stored in a mount; give a path outside it (the one mounted there is {dataset})"
    else:
        hint = f"give the mounted dataset itself ({dataset})"
    if is_dead(local):
        dead_hint = (f"check the dataset itself with `lakefs fsck {dataset}`" if command == "fsck"
                     else f"the dataset itself is {dataset}")
        raise DatasetNotFoundError(f"{path} is a dead lakefs mount (its mount process is gone), not a dataset: "
                                   f"clear it with `lakefs umount {path}`; {dead_hint}")
    raise DatasetNotFoundError(f"{path} is a lakefs mountpoint, not a dataset: {hint}")


def _inside_hint(command: str, dataset: str, inner: str) -> str:
    """What to give instead of a path inside a mount: the dataset, and the path in it
    where the command takes one; a new dataset goes outside the mount."""
    if command == "create":
        return ": a dataset is not stored in a mount; give a path outside it"
    if command == "ingest":
        return f": ingest into the mounted dataset itself ({dataset}), or into a new one outside the mount"
    if command == "ls":
        return f", not a dataset: list it with `lakefs ls {dataset}/{inner}`"
    if command == "fsck":
        return f", not a dataset: check the mounted dataset itself with `lakefs fsck {dataset}`"
    if command in ("tensor create", "tensor delete"):
        return f", not a dataset: give the mounted dataset itself ({dataset}) and the tensor's path in it as NAME"
    if command == "export":
        return f", not a dataset: give the mounted dataset itself ({dataset}); --tensor NAME picks tensors in it"
    return f", not a dataset: give the mounted dataset itself ({dataset})"
