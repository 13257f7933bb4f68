"""Scanning a source folder for ``lakefs ingest``: which file goes to which tensor and row.

Three layouts (``auto`` picks one):

- ``flat``: files directly in SRC → one tensor (named after SRC unless ``--tensor``).
- ``paired``: every folder below SRC that holds files is a tensor (``images/``,
  ``labels/``, ``train/images/`` → a group); files are aligned into rows by file stem,
  as the mount aligns ``images/cat001.jpg`` with ``labels/cat001.json``. A folder inside
  such a tensor folder is reported, not read (a tensor holds files, as in the mount).
- ``imagefolder``: ``SRC/<class>/<file>`` (torchvision's ImageFolder) → an ``images``
  tensor plus a ``labels`` class_label tensor whose class_names are the folder names
  (in name order; names of digits first, in number order: ``0``..``99``).

A row holds one file per tensor: of a folder's files sharing a stem one is stored (the one
the tensor keeps byte for byte, see :func:`settle_stems`), the others are reported.

``auto``: no subfolders → flat; subfolders holding only image files, fewer than half of
whose stems appear in more than one folder → imagefolder; otherwise paired.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lakefs.compression import codec_for_extension
from lakefs.dataset.dataset import resolve_tensor_settings
from lakefs.dataset.names import check_key, check_path, split_filename
from lakefs.errors import InvalidNameError, InvalidSampleError
from lakefs.format import keys

LAYOUTS = ("auto", "flat", "paired", "imagefolder")
DATASET_NOT_READ = "a lakefs dataset is not read (mount it, or export it, to ingest its samples)"
IMAGES, LABELS = "images", "labels"


@dataclass(frozen=True)
class SourceFile:
    path: str  # as opened
    rel: str  # relative to SRC, for messages
    tensor: str  # full tensor name
    key: str  # row key: the file stem, or class_stem in an ImageFolder (settle_imagefolder_keys)
    ext: str  # with the dot
    label: str | None = None  # ImageFolder class
    rivals: tuple[SourceFile, ...] = ()  # the other files of its folder with its stem (not stored)


@dataclass
class Plan:
    layout: str
    tensors: dict[str, dict] = field(default_factory=dict)  # name → create_tensor kwargs
    files: list[SourceFile] = field(default_factory=list)  # in row order
    problems: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason): files not ingested
    folders: list[tuple[str, str]] = field(default_factory=list)  # ("rel/", reason): folders not read
    hidden: int = 0  # dot-files and dot-folders, skipped (only counted)


def infer_settings(exts: list[str]) -> dict:
    """A new tensor's settings from its files' extensions (the majority wins; of a tie, the
    one met first), as the mount infers them for a directory's first file (DESIGN §4),
    counting every file, also those sharing a stem. With no files there is
    nothing to infer from: the scan creates no tensor then (unless given an htype), as a
    ``mkdir`` in the mount waits for its first file; a ``bytes`` tensor made of an empty
    folder took every later photo as bytes."""
    common = Counter(e.lower() for e in exts).most_common(1)
    ext = common[0][0] if common else ""
    by_ext = {".json": {"htype": "json"}, ".txt": {"htype": "text"}, ".npy": {"htype": "generic"}}
    if ext in by_ext:
        return dict(by_ext[ext])
    codec = codec_for_extension(ext) if ext else None
    if codec is not None and codec.kind in ("image", "audio", "video"):
        return {"htype": codec.kind, "sample_compression": codec.name}
    return {"htype": "bytes"}


def merge_settings(inferred: dict, given: dict) -> dict:
    """The user's options over the inferred ones; an explicit htype or compression
    replaces the inferred one wholesale rather than mixing with it."""
    if "htype" in given and given["htype"] != inferred.get("htype"):
        inferred = {}
    if "chunk_compression" in given or "sample_compression" in given:
        inferred = {k: v for k, v in inferred.items() if not k.endswith("_compression")}
    return {**inferred, **given}


def checked(settings: dict) -> dict:
    """``settings`` if create_tensor will take them: bad options (``--htype nonsense``) are
    refused before the dataset is opened, which made a new one, left empty."""
    resolve_tensor_settings(**settings)
    return settings


@dataclass
class _Listing:
    files: list[str]  # regular files (and links that lead nowhere: they fail when read)
    dirs: list[str]
    hidden: int
    special: list[tuple[str, str]]  # (name, reason): FIFOs, sockets, devices


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def special_reason(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not ingested (not a regular file), else None.
    Such files are never opened: opening a FIFO blocks until a writer comes."""
    if stat.S_ISREG(mode):
        return None
    kind = next((what for test, what in _SPECIAL if test(mode)), "not a file")
    return f"not a regular file ({kind})"


FileId = tuple[int, int]  # (st_dev, st_ino): a folder whatever the path to it


def file_id(path: str) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entries(folder: str, skip: FileId | None = None) -> _Listing:
    """The entries of ``folder`` sorted by name, by kind (symlinks followed); the folder
    ``skip`` (the dataset being written, when it is inside the source) is left out."""
    out = _Listing([], [], 0, [])
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                out.hidden += 1
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                out.files.append(entry.name)  # a dangling link: reported with its reason when read
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode) and (st.st_dev, st.st_ino) == skip:
                continue
            if stat.S_ISDIR(mode):
                out.dirs.append(entry.name)
            elif stat.S_ISREG(mode):
                out.files.append(entry.name)
            else:
                out.special.append((entry.name, special_reason(mode) or ""))
    out.files.sort()
    out.dirs.sort()
    out.special.sort()
    return out


def is_dataset_folder(folder: str) -> bool:
    """Whether ``folder`` holds a lakefs dataset (its marker, ``lakefs.json``). Its files
    are no samples: an ingest of one made its manifests a json tensor."""
    try:
        with open(os.path.join(folder, keys.MARKER), "rb") as f:
            marker = json.loads(f.read(4096))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == "lakefs"


def _leaf_folders(src: str, rel: str = "", plan: Plan | None = None, skip: FileId | None = None,
                  above: frozenset[FileId] = frozenset()) -> tuple[dict[str, list[str]], int]:
    """Every folder under ``src`` that holds files → its file names; plus hidden count.
    Special files (FIFOs...) go to ``plan.problems``, folders that cannot be listed to
    ``plan.folders`` (one stopped the whole ingest), as do links back to a folder
    ``above`` (``images/up -> ..``), which were followed 40 links deep."""
    folder = os.path.join(src, rel) if rel else src
    here = file_id(folder)
    if here is not None and here in above:
        if plan is not None:
            plan.folders.append((rel + "/", "a link to a folder above it (a loop) is not read"))
        return {}, 0
    if rel and is_dataset_folder(folder):
        if plan is not None:
            plan.folders.append((rel + "/", DATASET_NOT_READ))
        return {}, 0
    try:
        listing = _entries(folder, skip)
    except OSError as e:
        if not rel:
            raise
        if plan is not None:
            plan.folders.append((rel + "/", e.strerror or str(e)))
        return {}, 0
    if plan is not None:
        plan.problems.extend((f"{rel}/{n}" if rel else n, why) for n, why in listing.special)
    out = {rel: listing.files} if listing.files else {}
    hidden = listing.hidden
    above = above | {here} if here is not None else above
    for d in listing.dirs:
        sub, h = _leaf_folders(src, f"{rel}/{d}" if rel else d, plan, skip, above)
        out.update(sub)
        hidden += h
    return out, hidden


def _is_image(name: str) -> bool:
    parts = split_filename(name)
    codec = codec_for_extension(parts[1]) if parts else None
    return codec is not None and codec.kind == "image"


def choose_layout(src: str, skip: FileId | None = None) -> str:
    folders, _ = _leaf_folders(src, skip=skip)
    if set(folders) <= {""}:
        return "flat"
    if "" in folders or any("/" in f for f in folders):
        return "paired"
    stems: Counter[str] = Counter()
    for names in folders.values():
        if not all(_is_image(n) for n in names):
            return "paired"
        stems.update({n.rsplit(".", 1)[0] for n in names})
    # Paired folders (images/ + masks/) share most stems: a row per stem. Class folders
    # share few or none; a name that starts repeating in two classes must not turn an
    # ImageFolder into paired tensors on the next run.
    shared = sum(1 for c in stems.values() if c > 1)
    return "paired" if len(folders) > 1 and 2 * shared >= len(stems) else "imagefolder"


def _split(name: str, rel: str, plan: Plan) -> tuple[str, str] | None:
    parts = split_filename(name)
    if parts is None:
        plan.problems.append((rel, "no file extension, so it cannot name a sample"))
        return None
    try:
        check_key(parts[0])
    except InvalidNameError as e:
        plan.problems.append((rel, str(e)))
        return None
    return parts


def _by_stem(names: list[str], rel_dir: str, plan: Plan) -> list[tuple[str, str, str, list[str]]]:
    """(name, stem, ext, other names) of the files of one folder that can name a row, one
    per stem: the first by name, the others with that stem (``a.jpg`` and ``a.png``) its
    rivals, since one row holds one file per tensor and storing both would keep whichever
    came last. Which of them is stored is decided by :func:`settle_stems`."""
    groups: dict[str, list[str]] = {}
    exts: dict[str, str] = {}
    for n in names:
        parts = _split(n, f"{rel_dir}/{n}" if rel_dir else n, plan)
        if parts:
            groups.setdefault(parts[0], []).append(n)
            exts[n] = parts[1]
    return [(ns[0], stem, exts[ns[0]], ns[1:]) for stem, ns in groups.items()]


def _with_rivals(f: SourceFile, others: list[str]) -> SourceFile:
    """``f`` with the files ``others`` of its folder (names) as its rivals."""
    folder, rel_dir = os.path.dirname(f.path), os.path.dirname(f.rel)
    rivals = tuple(replace(f, path=os.path.join(folder, n), rel=f"{rel_dir}/{n}" if rel_dir else n,
                           ext=split_filename(n)[1])  # type: ignore[index]
                   for n in others)
    return replace(f, rivals=rivals)


def _all_exts(files: list[SourceFile]) -> list[str]:
    """The extensions of ``files`` and of their rivals: what a new tensor's settings are
    inferred from (the rivals count too: which file of a stem is stored depends on them)."""
    return [x.ext for f in files for x in (f, *f.rivals)]


def settle_stems(plan: Plan, compression: Callable[[str], str | None]) -> None:
    """Choose, of each folder's files sharing a stem, the one stored; the others are
    reported (``same stem as <the one stored>``).

    The file stored is the first by name whose extension names the tensor's sample
    compression (``compression(tensor)``: given, inferred, or the existing tensor's), so
    it is stored byte for byte rather than a rival transcoded in its place; when none
    does, the first by name. Run again (by the ingest, once it knows an existing tensor's
    compression) it revises the choice and its reports."""
    rivals = {r.rel for f in plan.files for r in f.rivals}
    plan.problems = [p for p in plan.problems if p[0] not in rivals]
    settled = []
    for f in plan.files:
        if f.rivals:
            candidates = sorted((f, *f.rivals), key=lambda x: x.rel)
            wanted = compression(f.tensor)
            chosen = next((c for c in candidates if _codec_name(c.ext) == wanted), candidates[0])
            f = replace(chosen, key=f.key, rivals=tuple(c for c in candidates if c is not chosen))
            plan.problems.extend((r.rel, f"same stem as {f.rel}: one row holds one file per tensor")
                                 for r in f.rivals)
        settled.append(f)
    plan.files = settled


def _codec_name(ext: str) -> str | None:
    codec = codec_for_extension(ext)
    return None if codec is None else codec.name


def _planned_compression(plan: Plan) -> Callable[[str], str | None]:
    """The sample compression of each tensor the plan would create (what the scan knows)."""
    return lambda name: resolve_tensor_settings(**plan.tensors[name])["sample_compression"]


def scan(src: str, layout: str = "auto", tensor: str | None = None, settings: dict | None = None,
         dataset: str | None = None) -> Plan:
    """Plan an ingest of ``src``. ``settings`` (htype, compressions...) apply to the
    tensor(s) a flat or ImageFolder ingest creates. ``dataset``, a local destination, is
    no part of the source: a rerun of ``ingest ./data ./data/ds`` stored the dataset's
    own files (its ``lakefs.json`` as a tensor ``ds``)."""
    try:
        is_folder = stat.S_ISDIR(os.stat(src).st_mode)
    except OSError as e:  # (a dead mount: "Transport endpoint is not connected")
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileNotFoundError(f"source folder {src} does not exist") from None
        raise OSError(e.errno, f"source folder {src}: {e.strerror}") from None
    if not is_folder:
        raise NotADirectoryError(f"source folder {src} is not a folder")
    skip = file_id(dataset) if dataset is not None else None
    if skip is not None and skip == file_id(src):
        raise InvalidSampleError(f"source folder {src} is the dataset itself")
    if is_dataset_folder(src):
        raise InvalidSampleError(f"source folder {src} is a lakefs dataset, whose files are its chunks and index, "
                                 f"not samples: ingest from a mount of it, or `lakefs export` it to a folder first")
    if layout not in LAYOUTS:
        raise InvalidSampleError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    if layout == "auto":
        layout = choose_layout(src, skip)
    plan = Plan(layout)
    if layout == "flat":
        _scan_flat(src, plan, tensor, settings, skip)
    elif layout == "imagefolder":
        _scan_imagefolder(src, plan, tensor, settings, skip)
    else:
        if settings or tensor:
            raise InvalidSampleError(
                "tensor options do not apply to a paired ingest (one tensor per folder); "
                "create the tensors first with `lakefs tensor create`"
            )
        _scan_paired(src, plan, skip)
    return plan


def _scan_flat(src: str, plan: Plan, tensor: str | None, settings: dict, skip: FileId | None) -> None:
    listing = _entries(src, skip)
    plan.hidden = listing.hidden
    plan.problems.extend(listing.special)
    name = check_path(os.path.basename(os.path.abspath(src)) if tensor is None else tensor)  # ("": refused)
    for d in listing.dirs:
        plan.folders.append((d + "/", "a folder inside a flat ingest is not read (use --layout paired)"))
    for f, stem, ext, others in _by_stem(listing.files, "", plan):
        plan.files.append(_with_rivals(SourceFile(os.path.join(src, f), f, name, stem, ext), others))
    if plan.files or "htype" in settings:
        plan.tensors[name] = checked(merge_settings(infer_settings(_all_exts(plan.files)), settings))
    settle_stems(plan, _planned_compression(plan))


def _scan_paired(src: str, plan: Plan, skip: FileId | None) -> None:
    folders, plan.hidden = _leaf_folders(src, plan=plan, skip=skip)
    by_key: dict[str, list[SourceFile]] = {}
    for rel_dir, names in folders.items():
        if rel_dir == "":
            for n in names:
                plan.problems.append((n, "a file at the top of a paired ingest belongs to no tensor"))
            continue
        holder = _tensor_folder_above(rel_dir, folders)
        if holder is not None:  # (as in the mount: a tensor holds files, not folders)
            plan.folders.append((rel_dir + "/", f"a folder inside the tensor folder {holder}/ is not read"))
            continue
        name = check_path(rel_dir)
        mine = []
        for n, stem, ext, others in _by_stem(names, rel_dir, plan):
            f = _with_rivals(SourceFile(os.path.join(src, rel_dir, n), f"{rel_dir}/{n}", name, stem, ext), others)
            mine.append(f)
            by_key.setdefault(stem, []).append(f)
        if mine:
            plan.tensors[name] = infer_settings(_all_exts(mine))
    for key in sorted(by_key):
        plan.files.extend(by_key[key])
    settle_stems(plan, _planned_compression(plan))


def _tensor_folder_above(rel_dir: str, folders: dict[str, list[str]]) -> str | None:
    """The topmost folder above ``rel_dir`` (SRC itself aside) that holds files, and so is
    a tensor: ``images/`` for ``images/extra/``. Both made tensors stopped the ingest."""
    parts = rel_dir.split("/")
    for i in range(1, len(parts)):
        above = "/".join(parts[:i])
        if above in folders:
            return above
    return None


def class_order(name: str) -> tuple:
    """Class folders in name order, except that names of digits come first in number
    order: a class folder ``10`` must be class 10 (its label file reads ``10`` as that
    index), not class 2 after ``0`` and ``1``."""
    if name.isascii() and name.isdigit():
        return (0, int(name), name)
    return (1, 0, name)


def _scan_imagefolder(src: str, plan: Plan, tensor: str | None, settings: dict, skip: FileId | None) -> None:
    top = _entries(src, skip)
    classes, plan.hidden = sorted(top.dirs, key=class_order), top.hidden
    for d in [d for d in classes if is_dataset_folder(os.path.join(src, d))]:
        plan.folders.append((d + "/", DATASET_NOT_READ))
        classes.remove(d)
    plan.problems.extend(top.special)
    for n in top.files:
        plan.problems.append((n, "a file at the top of an ImageFolder belongs to no class"))
    images = check_path(IMAGES if tensor is None else tensor)
    found: list[tuple[str, str, str, str]] = []  # class, name, stem, ext
    for cls in classes:
        try:
            listing = _entries(os.path.join(src, cls), skip)
        except OSError as e:
            plan.folders.append((cls + "/", e.strerror or str(e)))
            continue
        plan.hidden += listing.hidden
        plan.problems.extend((f"{cls}/{n}", why) for n, why in listing.special)
        for d in listing.dirs:
            plan.folders.append((f"{cls}/{d}/", "nested folders in an ImageFolder class are not read"))
        found.extend((cls, *f) for f in _by_stem(listing.files, cls, plan))
    for cls, n, stem, ext, others in found:
        f = SourceFile(os.path.join(src, cls, n), f"{cls}/{n}", images, stem, ext, cls)
        plan.files.append(_with_rivals(f, others))
    if plan.files or "htype" in settings:
        plan.tensors[images] = checked(merge_settings(infer_settings(_all_exts(plan.files)), settings))
        plan.tensors[LABELS] = {"htype": "class_label", "class_names": list(classes)}
    settle_stems(plan, _planned_compression(plan))
    settle_imagefolder_keys(plan, lambda key: None)


def settle_imagefolder_keys(plan: Plan, stored: Callable[[str], str | None]) -> None:
    """Give each ImageFolder file its row key, stable across reruns of the ingest.

    ``stored(key)`` is the class of the row ``key`` already in the dataset ("" for a row
    with no label), None when there is no such row. A file keeps the key of the row that
    holds it already (``stem`` or ``class_stem`` with its class); a new file gets its stem,
    or ``class_stem`` when the stem is in several classes or names a row of another class.
    So a name that starts clashing later prefixes only the new file, and a row never changes
    key. A file left with no free key is reported.
    """
    stems = [split_filename(os.path.basename(f.rel))[0] for f in plan.files]  # type: ignore[index]
    count = Counter(stems)
    keys: dict[int, str] = {}
    taken: dict[str, str] = {}  # key → rel of the file given it
    for i, (f, stem) in enumerate(zip(plan.files, stems)):  # rows already stored keep their key
        for key in (stem, f"{f.label}_{stem}"):
            if key not in taken and stored(key) == f.label:
                keys[i], taken[key] = key, f.rel
                break
    for i, (f, stem) in enumerate(zip(plan.files, stems)):  # then new files
        if i in keys:
            continue
        wanted = [stem, f"{f.label}_{stem}"] if count[stem] == 1 else [f"{f.label}_{stem}"]
        free = [k for k in wanted if k not in taken and stored(k) is None]
        if free:
            keys[i], taken[free[0]] = free[0], f.rel
        else:
            key = wanted[-1]
            holder = f"by {taken[key]}" if key in taken else "in the dataset by a row of another class"
            plan.problems.append((f.rel, f"its row key {key} is already taken {holder}"))
    plan.files = [replace(f, key=keys[i]) for i, f in enumerate(plan.files) if i in keys]
