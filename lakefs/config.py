"""Settings from ``config.example.yaml``: parsed safely, validated, with defaults.

A missing file means the defaults. A bad file or value is a :class:`ConfigError` with one
line naming the setting, raised at start, never later.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lakefs.errors import ConfigError, LakeFSError

log = logging.getLogger("lakefs.config")

MAX_SIZE = 1 << 60  # bytes: anything above is a typo, not a size
# The top-level settings of config.example.yaml that map to a field of the same name
# (others are nested: storage.*, logging.*, fuse.*, tensors).
TOP_LEVEL = {"chunk_size", "chunk_cache_size", "allow_transcode", "commit_interval", "refresh_interval",
             "spill_size", "cache_size"}
TENSOR_SETTINGS = {"htype", "dtype", "sample_compression", "chunk_compression", "class_names", "chunk_size"}
# Durations in seconds (parse_seconds): "> 0" or ">= 0".
POSITIVE_SECONDS = {"commit_interval"}
SECONDS = {"refresh_interval"}


@dataclass(frozen=True)
class FuseSettings:
    # Seconds the kernel may cache a name lookup / attributes. Only the mount changes a
    # dataset (one writer), and the kernel drops what it cached on its own writes,
    # renames and unlinks; a read-only mount that moves to a newer commit has the kernel
    # forget the files that changed. So long timeouts stay correct
    # (tests/fs/test_mount_cache.py) and save a round trip per stat (docs/BENCHMARKS.md).
    entry_timeout: float = 60.0
    attr_timeout: float = 60.0
    # Seconds the kernel may cache that a name does not exist: 0 (libfuse's default), as
    # a transcoded file's new name (x.png stored as x.jpg) appears without a kernel
    # operation on that name, which a cached absence would hide (docs/BENCHMARKS.md).
    negative_timeout: float = 0.0
    auto_cache: bool = True  # keep page cache across opens while mtime/size are unchanged
    xattr: bool = False  # expose user.lakefs.* extended attributes (costs ls -l: BENCHMARKS.md)
    # Serve FUSE requests from several threads. None (auto): one thread for a local
    # dataset (faster: no thread handoff, no GIL contention; docs/BENCHMARKS.md), several
    # for an object store, where reads wait on the network.
    threads: bool | None = None
    allow_other: bool = False
    # Read-only mounts: False (default) reads files without an OPEN and RELEASE per open
    # (the kernel's no-open mode): a warm read is served from the page cache with no call
    # into lakefs, and a file open across a refresh reads the newer commit's bytes, as a
    # reader on a local disk sees a file rewritten in place. True: each open reads the
    # commit it was opened at, for two more round trips per file (docs/BENCHMARKS.md).
    snapshot_opens: bool = False


@dataclass(frozen=True)
class Config:
    storage_options: dict[str, Any] = field(default_factory=dict)  # passed to fsspec
    cache_dir: str | None = None  # on-disk read cache for object stores
    cache_size: int = 10 << 30  # bytes of that cache
    chunk_cache_size: int = 256 << 20  # bytes of decoded chunks kept in memory
    chunk_size: int = 8 << 20  # default target chunk size for new tensors
    commit_interval: float = 5.0  # seconds between automatic commits of a mount
    refresh_interval: float = 5.0  # seconds between a read-only mount's looks for new commits; 0: never
    allow_transcode: bool = True  # False refuses every transcode
    spill_size: int = 64 << 20  # a file being written past this goes to a temp file
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)  # defaults by tensor name
    log_level: str = "INFO"
    log_file: str | None = None
    fuse: FuseSettings = field(default_factory=FuseSettings)

    def for_dataset(self, location: str) -> Config:
        """These settings for the dataset at ``location``: ``storage.options`` are for
        object stores, and a config written for one was refused with a local dataset
        ("local storage takes no options"); they are left out for it, with one INFO line."""
        from lakefs.storage.remote import is_object_store

        if not self.storage_options or is_object_store(location):
            return self
        log.info("storage.options are for object-store datasets: not used for %s", location)
        return replace(self, storage_options={})

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments for ``lakefs.load``/``dataset``/``empty`` from these settings."""
        return {
            "storage_options": dict(self.storage_options) or None,
            "cache_bytes": self.chunk_cache_size,
            "allow_transcode": self.allow_transcode,
        }


# What a setting of each type takes: its Python types, and how a message says it.
_KINDS = {"float": ((int, float), "a number"), "int": ((int,), "an integer"), "bool": ((bool,), "true or false"),
          "str": ((str,), "a string")}
# What null means, for the settings it is valid for ("must be true, false or null (auto)").
_NULL_MEANS = {"fuse.threads": "auto"}


def _shown(value: Any) -> str:
    """``value`` as the user wrote it in YAML: null, true, false; else its repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _check_type(name: str, value: Any, expected: Any, what: str | None = None) -> Any:
    """``value`` if it is of the type annotated ``expected`` (``"bool | None"``), else a
    ConfigError saying what the setting takes (``what``, when given) and what it got."""
    want = expected if isinstance(expected, str) else getattr(expected, "__name__", str(expected))
    kind = want.split(" ")[0]
    if kind not in _KINDS:
        return value
    types, said = _KINDS[kind]
    nullable = "None" in want
    if (value is None and nullable) or (isinstance(value, types) and (kind == "bool" or not isinstance(value, bool))):
        return value
    said = what or said
    if nullable and not what:
        said = (said.replace(" or ", ", ") if " or " in said else said) + " or null"
        if name in _NULL_MEANS:
            said += f" ({_NULL_MEANS[name]})"
    raise ConfigError(f"config: {name} must be {said}, got {_shown(value)}")


def _section(name: str, value: Any, keys: list[str]) -> dict[str, Any]:
    """The mapping of settings ``name:`` holds; empty (a ``storage:`` with its settings
    commented out is null), not a mapping, or with a key not in ``keys``, a ConfigError
    saying which."""
    listed = ", ".join(keys)
    if value is None:
        raise ConfigError(f"config: {name} is empty: give it settings ({listed}) or leave it out")
    if not isinstance(value, dict):
        raise ConfigError(f"config: {name} must be a mapping of settings ({listed}), got {_shown(value)}")
    for key in value:
        if key not in keys:
            raise ConfigError(f"config: unknown setting {name}.{key}")
    return value


def _path_setting(name: str, value: Any) -> str | None:
    """A path setting, ``~`` expanded as a shell would: ``logging.file: ~/x.log`` made a
    folder named ``~`` in the working directory."""
    value = _check_type(name, value, "str | None", "a path or null")
    return None if value is None else os.path.expanduser(value)


def parse_seconds(value: Any, name: str, *, positive: bool = False) -> float:
    """Seconds from a number or a numeric string, as both the config file and ``-o`` give
    them (YAML reads ``1e-9``, an exponent without a dot, as a string). Refused, one line
    starting with ``name``: anything negative (or 0 when ``positive``), and inf and nan,
    which the config took while ``-o`` refused them (``.inf`` mounted and never
    committed, ``.nan`` meant never)."""
    seconds = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except (ValueError, OverflowError):
            pass
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        hint = " (inf and nan are not durations)" if seconds is not None and not math.isfinite(seconds) else ""
        raise ConfigError(f"{name} needs a number of seconds {'>' if positive else '>='} 0, got {value!r}{hint}")
    return seconds


def parse_size(value: Any, name: str = "size") -> int:
    """Bytes from an integer or a string like "10GB", "256 MiB"; ConfigError otherwise
    (also for negative, infinite or absurd sizes)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE:
        return value
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "").removesuffix("B").removesuffix("I")
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        mult = units.get(text[-1:], 1)
        number = text[:-1] if text[-1:] in units else text
        try:
            size = float(number) * mult
        except ValueError:
            size = -1.0
        if 0 <= size <= MAX_SIZE:  # (false for nan and inf too)
            return int(size)
    raise ConfigError(f"{name} must be a size like 512MB, got {value!r}")


def from_dict(data: dict[str, Any]) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a mapping of settings")
    known = {f.name: f for f in fields(Config)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "fuse":
            values["fuse"] = _fuse_from_dict(value)
        elif key == "storage":
            values.update(_storage_from_dict(value))
        elif key == "logging":
            value = _section("logging", value, ["level", "file"])
            level = value.get("level", "INFO")
            if not isinstance(level, str) or level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                raise ConfigError(f"config: logging.level must be DEBUG, INFO, WARNING or ERROR, got {_shown(level)}")
            values["log_level"] = level.upper()
            values["log_file"] = _path_setting("logging.file", value.get("file"))
        elif key == "tensors":
            values["tensors"] = _tensors_from_dict(value)
        elif key in ("cache_size", "chunk_cache_size", "chunk_size", "spill_size"):
            values[key] = parse_size(value, f"config: {key}")
            if key == "chunk_size":
                from lakefs.chunks.engine import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

                if values[key] < MIN_CHUNK_SIZE:
                    raise ConfigError(f"config: chunk_size must be at least {MIN_CHUNK_SIZE} bytes, got {value!r}")
                if values[key] > MAX_CHUNK_SIZE:
                    raise ConfigError(f"config: chunk_size must be at most {MAX_CHUNK_SIZE >> 20} MiB "
                                      f"({MAX_CHUNK_SIZE} bytes), got {value!r}")
        elif key in POSITIVE_SECONDS or key in SECONDS:
            values[key] = parse_seconds(value, f"config: {key}", positive=key in POSITIVE_SECONDS)
        elif key in TOP_LEVEL:
            values[key] = _check_type(key, value, known[key].type)
        else:
            raise ConfigError(f"config: unknown setting {key!r}")
    return Config(**values)


def _storage_from_dict(value: Any) -> dict[str, Any]:
    value = _section("storage", value, ["options", "cache_dir", "cache_size"])
    out: dict[str, Any] = {}
    if "options" in value:
        if not isinstance(value["options"], dict):
            raise ConfigError("config: storage.options must be a mapping")
        out["storage_options"] = dict(value["options"])
    if "cache_dir" in value:
        out["cache_dir"] = _path_setting("storage.cache_dir", value["cache_dir"])
    if "cache_size" in value:
        out["cache_size"] = parse_size(value["cache_size"], "config: storage.cache_size")
    return out


def _fuse_from_dict(value: Any) -> FuseSettings:
    known = {f.name: f for f in fields(FuseSettings)}
    value = _section("fuse", value, list(known))
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key.endswith("_timeout"):
            out[key] = parse_seconds(v, f"config: fuse.{key}")
        else:
            out[key] = _check_type(f"fuse.{key}", v, known[key].type)
    return FuseSettings(**out)


def _tensors_from_dict(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        raise ConfigError("config: tensors is empty: give it tensor names with their settings or leave it out")
    if not isinstance(value, dict):
        raise ConfigError("config: tensors must map tensor names to settings")
    for name, settings in value.items():
        _check_tensor_name(str(name))
        if not isinstance(settings, dict):
            raise ConfigError(f"config: tensors.{name} must be a mapping")
        unknown = set(settings) - TENSOR_SETTINGS
        if unknown:
            raise ConfigError(f"config: unknown setting tensors.{name}.{sorted(unknown)[0]}")
        for key in ("htype", "dtype", "sample_compression", "chunk_compression"):
            if key in settings and not isinstance(settings[key], str | None):
                raise ConfigError(f"config: tensors.{name}.{key} must be a name, got {settings[key]!r}")
        _check_tensor_settings(str(name), settings)
    return {str(k): dict(v) for k, v in value.items()}


def _check_tensor_name(name: str) -> None:
    """A name the mount can match: a tensor's path in the dataset (``a/b``, no leading
    ``/``) or its last component. ``""`` or ``/abs/x`` were taken and never matched."""
    from lakefs.dataset.names import check_path

    try:
        normal = check_path(name, "tensor name")
    except LakeFSError as e:
        raise ConfigError(f"config: tensors: {e}") from None
    if normal != name:
        raise ConfigError(f"config: tensors: {name!r} never matches a tensor: write its path in the "
                          f"dataset, {normal!r}")


def _check_tensor_settings(name: str, settings: dict[str, Any]) -> None:
    """The settings are checked at start, as create_tensor will (names of htypes and
    compressions, dtypes, class names, sizes, combinations), not at the first copy."""
    from lakefs.dataset.dataset import resolve_tensor_settings

    if "chunk_size" in settings:
        settings["chunk_size"] = parse_size(settings["chunk_size"], f"config: tensors.{name}.chunk_size")
    try:
        resolve_tensor_settings(**settings)
    except (LakeFSError, KeyError, TypeError) as e:
        raise ConfigError(f"config: tensors.{name}: {e}") from None


def _yaml_load(stream: Any) -> Any:
    """``yaml.safe_load``, but a key given twice in one mapping is refused
    (:class:`DuplicateKeyError`): PyYAML kept the last silently."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # (`<<:` keys may be overridden)
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, seen[key], line)
                    seen[key] = line
                except TypeError:
                    continue  # an unhashable key: PyYAML's own error follows
            return super().construct_mapping(node, deep=deep)

    loader = Loader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class DuplicateKeyError(Exception):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(key, first, again)
        self.key, self.first, self.again = key, first, again


def load_config(path: str | os.PathLike | None) -> Config:
    """The settings in ``path`` (YAML), or the defaults when ``path`` is None."""
    if path is None:
        return Config()
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = _yaml_load(f)
    except DuplicateKeyError as e:
        lines = f"line {e.first}" if e.first == e.again else f"lines {e.first} and {e.again}"
        raise ConfigError(f"config: {path}: {e.key!r} is given twice ({lines})") from None
    except OSError as e:
        raise ConfigError(f"config: cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config: {path} is not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}") from e
    return from_dict(data or {})
