"""``lakefs create``, ``tensor create|list|delete``, ``info``, ``ls`` and ``compact``.

The logic lives in :mod:`lakefs.tools` and the dataset API; this module parses
arguments and prints. Commands that only read open the dataset read-only (no writer
lock), so they work next to a live mount.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import time

from lakefs.config import parse_size
from lakefs.dataset.names import printable
from lakefs.dataset.samples import check_class_name
from lakefs.errors import ConfigError, DatasetExistsError, TensorNotFoundError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("create", help="create an empty dataset")
    p.add_argument("dataset", help="path or URL of the new dataset (in a folder that exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset (deletes its data)")
    p.set_defaults(func=cmd_create)

    t = sub.add_parser("tensor", help="create, list or delete tensors")
    tsub = t.add_subparsers(dest="tensor_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a tensor with explicit settings")
    c.add_argument("dataset")
    c.add_argument("name", help="tensor name; a/b creates group a")
    add_tensor_options(c)
    c.set_defaults(func=cmd_tensor_create)
    ls = tsub.add_parser("list", help="list the tensors and their settings")
    ls.add_argument("dataset")
    ls.set_defaults(func=cmd_tensor_list)
    d = tsub.add_parser("delete", help="delete a tensor and its samples (-r: a group and everything in it)")
    d.add_argument("dataset")
    d.add_argument("name")
    d.add_argument("-r", "--recursive", action="store_true",
                   help="NAME may be a group: delete it with its tensors, groups and files")
    d.set_defaults(func=cmd_tensor_delete)

    i = sub.add_parser("info", help="tensors, samples, stored bytes and compression ratios")
    i.add_argument("dataset")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    s = sub.add_parser("ls", help="list what the mount would show, without mounting")
    s.add_argument("path", help="DATASET, DATASET/tensor-or-group, or a file in one")
    s.add_argument("-l", dest="long", action="store_true", help="long listing: mode, size, mtime")
    s.set_defaults(func=cmd_ls)

    k = sub.add_parser("compact", help="reclaim space left by updates and deletes (crash-safe)")
    k.add_argument("dataset")
    k.set_defaults(func=cmd_compact)


# --- tensor options (shared with ingest) -------------------------------------------------


def add_tensor_options(p: argparse.ArgumentParser, *, htype_default: str | None = "generic") -> None:
    p.add_argument("--htype", default=htype_default, help="image, class_label, json, text, bytes, generic, ...")
    p.add_argument("--dtype", help="numpy dtype (default: from the htype or the first sample)")
    p.add_argument("--sample-compression", help="jpeg, png, webp, lz4, none, ... (per sample)")
    p.add_argument("--chunk-compression", help="lz4 (whole chunks)")
    p.add_argument("--class-names", help="comma-separated class names (with --htype class_label)")
    p.add_argument("--chunk-size", help="target chunk size, e.g. 8MB")


def tensor_kwargs(args: argparse.Namespace) -> dict:
    if args.chunk_size is not None:
        from lakefs.chunks.engine import MAX_CHUNK_SIZE

        if parse_size(args.chunk_size, "--chunk-size") > MAX_CHUNK_SIZE:  # (said as given: 100TB)
            raise ConfigError(f"--chunk-size must be at most {MAX_CHUNK_SIZE >> 20} MiB ({MAX_CHUNK_SIZE} bytes), "
                              f"got {args.chunk_size!r}")
    out = {
        "htype": args.htype,
        "dtype": args.dtype,
        "sample_compression": args.sample_compression,
        "chunk_compression": args.chunk_compression,
        "class_names": _class_names(args.class_names, args.htype),
        "chunk_size": parse_size(args.chunk_size, "--chunk-size") if args.chunk_size is not None else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def _class_names(text: str | None, htype: str | None) -> list[str] | None:
    """``--class-names`` as a list, each name as given: the API refuses an empty name or
    one with spaces around it (``cat,,dog``, ``cat, dog``), and so does the CLI, which
    dropped the one and stripped the other. Only a class_label tensor has class names:
    given another htype (or none, to an ingest) they were kept, and shown, to no use."""
    if text is None:
        return None
    if htype is None:
        raise ConfigError("--class-names is for a class_label tensor: give --htype class_label with it")
    if htype != "class_label":
        raise ConfigError(f"--class-names is for a class_label tensor, not --htype {htype}")
    names = text.split(",")
    for i, name in enumerate(names):
        check_class_name(name, i)
    return names


def refuse_a_missing_parent(dataset: str) -> None:
    """A local dataset that a command would create (``create``, ``ingest``, a writable
    ``mount``) must have its parent folder: ``lakefs create /data/cast/ds`` for ``cats``
    made /data/cast and created an empty dataset there, as ``mkdir -p`` would, and a
    mount of it showed an empty tree. As mkdir (without -p), the command refuses. (The
    API keeps Deep Lake's behaviour: ``lakefs.empty`` makes the parents.) A parent under
    a file is left to the storage's own message ("... is not a directory")."""
    from lakefs.storage.remote import scheme_of

    if scheme_of(dataset) not in ("", "file"):
        return  # an object store has no folders to make
    path = os.path.abspath(dataset[len("file://"):] if scheme_of(dataset) else dataset)
    if os.path.lexists(path):
        return
    parent = above = os.path.dirname(path)
    while not os.path.lexists(above) and above != os.path.dirname(above):
        above = os.path.dirname(above)
    if above != parent and os.path.isdir(above):
        raise ConfigError(f"cannot create the dataset {dataset}: its parent folder {parent} does not exist "
                          "(check the path, or create the folder first with mkdir -p)")


# --- commands ----------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    import lakefs

    refuse_a_missing_parent(args.dataset)
    try:
        ds = lakefs.empty(args.dataset, overwrite=args.overwrite, **args.settings.dataset_options())
    except DatasetExistsError as e:
        if not e.replaceable:
            raise
        # (the API's message names its keyword, `overwrite`)
        raise DatasetExistsError(f"a dataset already exists at {args.dataset} (--overwrite replaces it, "
                                 "deleting its data)") from None
    ds.close()
    print(f"created dataset {args.dataset}")
    return 0


def cmd_tensor_create(args: argparse.Namespace) -> int:
    import lakefs

    with lakefs.load(args.dataset, **args.settings.dataset_options()) as ds:
        # (the config file's chunk_size is the default of new tensors, as in a mount)
        t = ds.create_tensor(args.name, **{"chunk_size": args.settings.chunk_size, **tensor_kwargs(args)})
        print(f"created tensor {t.name} ({_settings(t)})")
    return 0


def _settings(t) -> str:
    parts = [f"htype={t.htype}", f"dtype={t.dtype or '-'}"]
    if t.sample_compression:
        parts.append(f"sample_compression={t.sample_compression}")
    if t.chunk_compression:
        parts.append(f"chunk_compression={t.chunk_compression}")
    if t.class_names:
        parts.append(f"class_names={','.join(t.class_names)}")
    return ", ".join(parts)


def cmd_tensor_list(args: argparse.Namespace) -> int:
    import lakefs

    with lakefs.load(args.dataset, read_only=True, **args.settings.dataset_options()) as ds:
        for name, t in sorted(ds.tensors.items()):
            print(f"{name}\t{t.num_samples} samples\t{_settings(t)}")
    return 0


def cmd_tensor_delete(args: argparse.Namespace) -> int:
    """A group (or a directory the mount made, with no tensor yet) is deleted with ``-r``
    only; without, it said "no tensor 'train'", naming no way to delete it."""
    import lakefs
    from lakefs.dataset.names import check_path

    name = check_path(args.name)
    with lakefs.load(args.dataset, **args.settings.dataset_options()) as ds:
        if name not in ds.tensors and (name in ds.groups or name in ds.pending_dirs):
            count = sum(1 for t in ds.tensors if t.startswith(name + "/"))
            tensors = f"{count} tensor{'' if count == 1 else 's'}"
            if not args.recursive:
                what = f"a group of {tensors}" if name in ds.groups else "a directory with no tensor yet"
                raise TensorNotFoundError(f"{args.name!r} is {what}, not a tensor: `lakefs tensor delete -r "
                                          f"{args.dataset} {args.name}` deletes it and everything in it")
            ds.delete_group(name, recursive=True)
            print(f"deleted group {name} ({tensors})")
            return 0
        ds.delete_tensor(name)
    print(f"deleted tensor {name}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import lakefs
    from lakefs.tools.info import dataset_info, format_table

    with lakefs.load(args.dataset, read_only=True, **args.settings.dataset_options()) as ds:
        info = dataset_info(ds, args.dataset)
    print(json.dumps(info, indent=2) if args.json else format_table(info))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    import lakefs
    from lakefs.tools import split_dataset_path

    options = args.settings.dataset_options()
    location, inner = split_dataset_path(args.path, options["storage_options"])
    with lakefs.load(location, read_only=True, **options) as ds:
        for name, mode, size, mtime_ns in list_dir(ds, inner):
            if args.long:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime_ns / 1e9))
                print(f"{stat.filemode(mode)} {size:>10} {when} {printable(name)}")
            else:
                print(printable(name))
    return 0


def list_dir(ds, inner: str) -> list[tuple[str, int, int, int]]:
    """(name, st_mode, size, mtime_ns) of what the mount shows in directory ``inner``."""
    tensors, groups, pending = ds.tensors, set(ds.groups), set(ds.pending_dirs)
    if inner and inner not in tensors and inner not in groups and inner not in pending:
        if inner in ds.files:
            f = ds.files[inner]
            return [(inner.rsplit("/", 1)[-1], stat.S_IFREG | f.mode, f.size, f.mtime_ns)]
        parent, _, leaf = inner.rpartition("/")
        sample = tensors[parent].find_file(leaf) if parent in tensors else None
        if sample is not None:  # a sample's file, as `ls FILE` shows it
            return [(leaf, stat.S_IFREG | sample.mode, sample.size, sample.mtime_ns)]
        raise TensorNotFoundError(f"no tensor, group or file {inner!r} in the dataset")
    prefix = inner + "/" if inner else ""
    out = []
    dirs = [n for n in [*groups, *pending, *tensors] if n.startswith(prefix) and "/" not in n[len(prefix):]]
    for d in sorted(dirs):
        mode, mtime_ns = ds.dir_attr(d)  # (the mount's)
        out.append((d[len(prefix):] + "/", stat.S_IFDIR | mode, 0, mtime_ns))
    if inner in tensors:
        for s in tensors[inner].iter_samples():
            out.append((s.filename, stat.S_IFREG | s.mode, s.size, s.mtime_ns))
    for path, f in sorted(ds.files.items()):
        if path.startswith(prefix) and "/" not in path[len(prefix):]:
            out.append((path[len(prefix):], stat.S_IFREG | f.mode, f.size, f.mtime_ns))
    return out


def cmd_compact(args: argparse.Namespace) -> int:
    import lakefs
    from lakefs.tools.info import human

    with lakefs.load(args.dataset, **args.settings.dataset_options()) as ds:
        r = ds.compact()
    temps = r["temp_files_deleted"]
    also = (f", and {human(r['temp_bytes_deleted'])} in {temps} temp file{'s' if temps != 1 else ''} "
            f"of interrupted writes" if temps else "")
    print(f"compacted {args.dataset}: {human(r['bytes_before'])} -> {human(r['bytes_after'])} "
          f"({human(r['reclaimed'])} reclaimed{also})")
    return 0

