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
    for row in report.renamed:
        print(f"fsck: renamed row {row} to lost-row-{row:08d} (its key was lost)")
    again = fsck(storage)
    for line in again.problems:
        print(f"fsck: after repair: {line}")
    for line in again.notes:
        print(f"fsck: note: {line}")
    renamed = f"{len(report.renamed)} row(s) renamed lost-row-N, " if report.renamed else ""
    print(f"fsck: {args.dataset}: repaired ({len(report.dropped)} dropped, {renamed}"
          f"{again.samples} samples verified afterwards{'' if again.ok else ', problems remain'})")
    return 0 if again.ok else 1
