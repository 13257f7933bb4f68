"""``lakefs fsck [--repair] DATASET``: exit 0 when clean, 1 when problems remain.

Each problem is one line on stdout naming the object and the sample it costs; a
``--repair`` run then lists what it dropped and re-checks the result.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fsck", help="verify every checksum and index entry; --repair drops what is lost")
    p.add_argument("dataset")
    p.add_argument("--repair", action="store_true",
                   help="drop unrecoverable samples, keep everything else (takes the writer lock)")
    p.set_defaults(func=cmd_fsck)


def refuse_a_mountpoint(path: str, command: str = "fsck") -> None:
    """A lakefs mountpoint given instead of its dataset gets one line (a dead one would
    otherwise fail with "read 'lakefs.json': Transport endpoint is not connected", a live
    one say "no dataset" with no hint), for ``fsck`` and every command that takes a
    dataset: ``main`` calls this for ``ls`` and each ``dataset`` argument. So does a path
    inside a lakefs mount (``lakefs ls ./mnt/images``, which said "no lakefs dataset at
    ./mnt/images"; ``lakefs ingest SRC ./mnt/new`` stored a dataset's objects as files in
    the mounted one): the line names the mount and its dataset and what to give instead."""
    import os

    from lakefs.errors import DatasetNotFoundError
    from lakefs.fs.mount import enclosing_mount, is_dead, table_path

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


def cmd_fsck(args: argparse.Namespace) -> int:
    from lakefs.storage import open_storage
    from lakefs.tools.fsck import fsck

    storage = open_storage(args.dataset, read_only=not args.repair,
                           options=dict(args.settings.storage_options) or None)
    report = fsck(storage, repair=args.repair)
    for line in report.problems:
        print(f"fsck: {line}")
    for line in report.notes:
        print(f"fsck: note: {line}")
    if report.ok:
        print(f"fsck: {args.dataset}: clean ({report.samples} samples in {report.chunks} chunks verified)")
        return 0
    if not report.repaired:
        hint = "" if args.repair else "; `lakefs fsck --repair` drops what cannot be recovered"
        print(f"fsck: {args.dataset}: {len(report.problems)} problem(s){hint}")
        return 1
    for name in report.dropped:
        print(f"fsck: dropped {name}")
    again = fsck(storage)
    for line in again.problems:
        print(f"fsck: after repair: {line}")
    print(f"fsck: {args.dataset}: repaired ({len(report.dropped)} dropped, "
          f"{again.samples} samples verified afterwards{'' if again.ok else ', problems remain'})")
    return 0 if again.ok else 1
