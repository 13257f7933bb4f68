"""A tensor's ``info``, as Deep Lake v3's ``tensor.info``: a mapping that also reads by
attribute (``ds.labels.info.class_names[i]``) and changes through ``update``.

Nothing new is stored: class names stay in the tensor's ``class_names`` and the rest in
its ``info`` object (docs/FORMAT.md §4), both in every format version, so a lakefs of
any version reads what ``update`` committed.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lakefs.dataset.samples import check_class_names
from lakefs.errors import ConfigError, InvalidSampleError

if TYPE_CHECKING:
    from lakefs.dataset.tensor import Tensor

# create_tensor's own arguments: settings, never info (a near miss is a misspelt setting).
TENSOR_ARGUMENTS = ("htype", "dtype", "sample_compression", "chunk_compression", "class_names", "chunk_size",
                    "exist_ok")
# The info Deep Lake gives an htype (its htype configurations' "_info"), with the value it
# reads as until set.
HTYPE_INFO: dict[str, dict[str, Any]] = {
    "class_label": {"class_names": []},
    "segment_mask": {"class_names": []},
    "bbox": {"coords": {}},
}


def json_info(info: dict[str, Any]) -> dict[str, Any]:
    """Info as it will be committed: the manifest is JSON, so a value it cannot hold (a
    numpy scalar, NaN) would make every later commit fail."""
    for name, value in info.items():
        if not isinstance(name, str):
            raise InvalidSampleError(f"tensor info keys are strings, not {type(name).__name__} ({name!r})")
        try:
            json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidSampleError(f"tensor info {name}={value!r} is not a JSON value ({e})") from None
        except RecursionError:  # (no repr either: it recurses as deep)
            raise InvalidSampleError(f"tensor info {name}=... is not a JSON value: it is nested too deeply") from None
    return json.loads(json.dumps(info))


class Info(Mapping[str, Any]):
    """``tensor.info``: the htype's info (``class_names`` of a class_label or segment_mask
    tensor, ``coords`` of a bbox) and what ``create_tensor`` was given beyond its settings.
    Values read are copies: change them with ``update``, ``info[key] = value``,
    ``info.key = value`` or ``del info[key]``, committed with the next commit."""

    __slots__ = ("_tensor",)

    def __init__(self, tensor: Tensor) -> None:
        object.__setattr__(self, "_tensor", tensor)

    def _current(self) -> dict[str, Any]:
        meta = self._tensor.meta
        out = copy.deepcopy(HTYPE_INFO.get(meta.htype, {}))
        if meta.class_names:
            out["class_names"] = meta.class_names
        out.update(meta.info)
        return out

    def __getitem__(self, key: str) -> Any:
        with self._tensor.dataset._lock:  # (class names grow as labels arrive)
            return copy.deepcopy(self._current()[key])

    def __iter__(self) -> Iterator[str]:
        with self._tensor.dataset._lock:
            return iter(list(self._current()))

    def __len__(self) -> int:
        with self._tensor.dataset._lock:
            return len(self._current())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"tensor {self._tensor.name!r} has no info {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            raise AttributeError(f"info names do not start with '_' ({name!r})")
        self.update({name: value})

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key == "class_names":
            self.update(class_names=[])  # (refused once a label is stored)
            return
        ds = self._tensor.dataset
        with ds._lock:
            self._tensor._check_writable()
            meta = self._tensor.meta
            if key not in meta.info:
                raise KeyError(key)
            meta.info = {k: v for k, v in meta.info.items() if k != key}
            ds._touch()

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Change info, as ``dict.update``: all of it or, when a value is refused, none.
        ``class_names`` are the tensor's (:meth:`_class_names` says which may be given)."""
        changes = dict(*args, **kwargs)
        ds = self._tensor.dataset
        with ds._lock:
            self._tensor._check_writable()
            meta = self._tensor.meta
            names = self._class_names(changes.pop("class_names")) if "class_names" in changes else None
            for key in changes:
                _check_not_a_setting(key)
            info = json_info({**meta.info, **changes})
            if names is not None:
                meta.class_names[:] = names  # (in place: the tensor's sample format holds this list)
            meta.info = info
            ds._touch()

    def _class_names(self, names: Any) -> list[str]:
        """New class names, checked as ``create_tensor`` checks them. Labels are stored as
        indices, so once the tensor holds one, names may only be added after the existing
        ones: a name replaced, moved or removed would change what every stored label of it
        means (and its file in the mount). Deep Lake lets them be replaced; lakefs refuses."""
        new = check_class_names(names)
        old = self._tensor.meta.class_names
        if new[: len(old)] == old or not self._tensor.num_samples:
            return new
        where = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), None)
        what = (f"class_names[{where}] is {old[where]!r}, not {new[where]!r}" if where is not None
                else f"{', '.join(repr(n) for n in old[len(new):])} would be removed")
        raise InvalidSampleError(f"tensor {self._tensor.name!r}: {what}: its labels are stored as class indices, so "
                                 f"its class names can only be added to, after {old[-1]!r}")


def _check_not_a_setting(key: Any) -> None:
    """Refuse a tensor setting as info, and what looks like a misspelt one, as
    ``create_tensor`` refuses its arguments: such info would change nothing."""
    if not isinstance(key, str):
        return  # (json_info says keys are strings)
    if key in TENSOR_ARGUMENTS:
        raise ConfigError(f"{key} is a setting of the tensor (an argument of create_tensor), not info")
    near = difflib.get_close_matches(key, TENSOR_ARGUMENTS, n=1, cutoff=0.8)
    if near:
        raise ConfigError(f"info {key!r} looks like a tensor setting; did you mean {near[0]!r}?")
