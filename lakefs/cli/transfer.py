"""``lakefs ingest`` (a folder into a dataset) and ``lakefs export`` (a dataset to a folder).

Both print a progress bar on a terminal only (``--progress``/``--no-progress`` force it),
a one-line summary on stdout (``-q`` silences it), and every file that failed (and, for
ingest, every folder not read), with its reason, on stderr at the end; the exit status is 1
when any file failed. Ingest's summary accounts for each file of the source once:
ingested + already stored + failed = the total; hidden files are counted apart. If the
storage failed, the files not stored (and, if the final commit failed, those written
since the last commit, which are not kept) are counted on stderr, and the status is 1.
"""

from __future__ import annotations

import argparse
import sys

from lakefs.cli.main import sigterm_interrupts
from lakefs.cli.tools import add_tensor_options, refuse_a_missing_parent, tensor_kwargs
from lakefs.config import parse_seconds
from lakefs.dataset.names import printable
from lakefs.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="copy a folder of files into a dataset (parallel, resumable)",
        description="Copy SRC into DATASET (created if missing, in a folder that exists). Layouts: flat "
                    "(SRC's files → one tensor), paired (each subfolder → a tensor, files aligned into rows by "
                    "stem), imagefolder (SRC/<class>/<file> → images + labels). Rerunning skips files already stored.",
    )
    p.add_argument("src", help="the folder to ingest")
    p.add_argument("dataset", help="the dataset (path or URL)")
    p.add_argument("--layout", default="auto", choices=("auto", "flat", "paired", "imagefolder"))
    p.add_argument("--tensor", help="tensor name (flat: default SRC's name; imagefolder: default images)")
    p.add_argument("-j", "--workers", type=_at_least(0, int), default=None,
                   help="transcoding processes (default: one per core; 0: transcode in this process)")
    p.add_argument("--commit-seconds", type=_seconds, default=30.0,
                   help="commit at least this often (seconds; 0: after every file)")
    add_tensor_options(p, htype_default=None)
    _add_output_options(p)
    p.set_defaults(func=cmd_ingest)

    e = sub.add_parser("export", help="write a dataset back to files (names, bytes and mtimes kept)")
    e.add_argument("dataset")
    e.add_argument("dest", help="a missing or empty folder")
    e.add_argument("--tensor", action="append", dest="tensors", metavar="NAME",
                   help="export only this tensor (repeatable)")
    e.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder, replacing files of the same name")
    _add_output_options(e)
    e.set_defaults(func=cmd_export)


def _at_least(low: float, kind: type):
    """An argparse type: a number of ``kind`` from ``low`` up (-j -1 was taken for 0)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value >= low:  # (nan too)
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{what} >= {low} expected, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # (argparse names the type in its messages)
    return parse


def _seconds(text: str) -> float:
    """An argparse type: a duration, by the parser of the config and ``-o`` (inf was taken
    here, and an ingest never committed)."""
    try:
        return parse_seconds(text, "")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).strip()) from None


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def _report_failures(failed: list[tuple[str, str]], verb: str, folders: list[tuple[str, str]] = ()) -> int:
    for what, items in (("file", failed), ("folder", folders)):
        if items:
            print(f"lakefs: {len(items)} {what}(s) not {verb if what == 'file' else 'read'}:", file=sys.stderr)
            for path, reason in items:
                print(f"  {printable(path)}: {printable(reason)}", file=sys.stderr)  # (reason: "same stem as b")
    return 1 if failed or folders else 0


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def cmd_ingest(args: argparse.Namespace) -> int:
    import lakefs
    from lakefs.storage.remote import is_object_store
    from lakefs.tools.ingest import close_dataset, ingest
    from lakefs.tools.scan import scan

    refuse_a_missing_parent(args.dataset)
    local = None if is_object_store(args.dataset) else args.dataset.removeprefix("file://")
    plan = scan(args.src, args.layout, args.tensor, tensor_kwargs(args), dataset=local)
    for settings in plan.tensors.values():  # the config file's, for the tensors it creates
        settings.setdefault("chunk_size", args.settings.chunk_size)
    with sigterm_interrupts():
        ds = lakefs.dataset(args.dataset, **args.settings.dataset_options())
        try:
            report = ingest(ds, plan, workers=args.workers, progress=args.progress,
                            commit_seconds=args.commit_seconds)
        except BaseException:
            ds.close()
            raise
        # A retry of the final commit if that failed (the report says its outcome, not
        # an error raised); if it fails again, the dataset keeps its last commit.
        close_dataset(ds, report)
    _print_ingest_report(report, args.quiet)
    code = _report_failures(report.failed, "ingested", report.folders)
    if report.stopped is not None:
        print(f"lakefs: ingest stopped, the storage failed: {report.stopped}", file=sys.stderr)
    if report.commit_error is not None:
        lost = report.written - report.committed
        print(f"lakefs: the final commit failed: {report.commit_error}\n"
              f"  {_count(lost, 'file', 'files')} written but not committed {'is' if lost == 1 else 'are'}"
              " not kept", file=sys.stderr)
    if report.stopped is not None or report.commit_error is not None:
        print(f"  {report.total - report.kept - report.skipped - len(report.failed)} files were not"
              " stored; run the same command again to resume", file=sys.stderr)
        code = 1
    return code


def _print_ingest_report(report, quiet: bool) -> None:
    if quiet:
        return
    made = f"; created tensors {', '.join(report.created_tensors)}" if report.created_tensors else ""
    if report.folders:
        made += "; " + _count(len(report.folders), "folder not read", "folders not read")
    if report.hidden:
        made += "; " + _count(report.hidden, "hidden file skipped", "hidden files skipped")
    print(f"ingested {report.kept} of {report.total} files ({report.layout} layout, "
          f"{report.transcoded_kept} transcoded, {report.skipped} already stored, {len(report.failed)} failed) "
          f"in {report.seconds:.1f} s, {report.rate:.0f} files/s{made}")


def cmd_export(args: argparse.Namespace) -> int:
    import lakefs
    from lakefs.storage.cache import CacheDirError
    from lakefs.storage.remote import default_cache_root, is_object_store
    from lakefs.tools.export import export
    from lakefs.tools.info import human

    options = args.settings.dataset_options()
    ds = None
    if is_object_store(args.dataset) and args.settings.cache_size:
        # Through the mounts' chunk cache: one GET per chunk (in parallel parts), not
        # one per sample; a later export or mount of the dataset reads it locally.
        try:
            ds = lakefs.load(args.dataset, read_only=True, **options,
                             cache_dir=args.settings.cache_dir or default_cache_root(),
                             cache_size=args.settings.cache_size)
        except CacheDirError as e:  # (a read-only HOME in a container): the cache is optional here
            print(f"lakefs: warning: cannot use the cache directory {e.cache_dir} ({e.reason});"
                  " exporting without a cache", file=sys.stderr)
    if ds is None:
        ds = lakefs.load(args.dataset, read_only=True, **options)
    with ds:
        report = export(ds, args.dest, tensors=args.tensors, overwrite=args.overwrite, progress=args.progress)
    if not args.quiet:
        print(f"exported {report.files} files ({human(report.bytes)}) to {args.dest} in {report.seconds:.1f} s")
    code = _report_failures(report.failed, "exported")
    if report.stopped is not None:
        print(f"lakefs: export stopped, the storage failed: {report.stopped}\n"
              f"  {_count(report.not_reached, 'file was', 'files were')} not exported; run the same command"
              " with --overwrite to finish", file=sys.stderr)
        code = 1
    return code
