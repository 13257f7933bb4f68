"""Views of a dataset: a group of tensors, and one row across tensors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lakefs.dataset.names import check_path
from lakefs.dataset.tensor import Sample, SampleList, Tensor
from lakefs.errors import LakeFSError

if TYPE_CHECKING:
    from lakefs.dataset.dataset import Dataset


def item_as_attribute(view: Any, name: str, missing: str) -> Any:
    """``view.name`` as ``view[name]`` (``ds.train.images``); AttributeError(``missing``)
    when there is no such item, so that hasattr and copy behave."""
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return view[name]
    except LookupError:
        raise AttributeError(missing) from None


class Group:
    """A group of tensors: ``ds["train"]``, ``ds.train.images``."""

    def __init__(self, dataset: Dataset, name: str) -> None:
        self.dataset = dataset
        self.name = name

    def __repr__(self) -> str:
        return f"Group({self.name!r})"

    def _full(self, name: str) -> str:
        return f"{self.name}/{check_path(name)}"

    def create_tensor(self, name: str, **kwargs: Any) -> Tensor:
        return self.dataset.create_tensor(self._full(name), **kwargs)

    def create_group(self, name: str, exist_ok: bool = False) -> Group:
        return self.dataset.create_group(self._full(name), exist_ok=exist_ok)

    @property
    def tensors(self) -> dict[str, Tensor]:
        prefix = self.name + "/"
        return {k[len(prefix):]: t for k, t in self.dataset.tensors.items() if k.startswith(prefix)}

    def __getitem__(self, name: str) -> Any:
        return self.dataset[self._full(name)]

    def __contains__(self, name: object) -> bool:
        """``"images" in ds.train``: a tensor or group of that name in this group."""
        if not isinstance(name, str):
            return False
        try:
            full = self._full(name).strip("/")
        except LakeFSError:  # (a name no tensor can have)
            return False
        return full in self.dataset.tensors or full in self.dataset.groups

    def __getattr__(self, name: str) -> Any:
        return item_as_attribute(self, name, f"group {self.name!r} has no tensor or group {name!r}")


class Row:
    """One row: ``ds[3]`` or ``ds["cat001"]``; ``row["images"]`` is that row's sample, and
    ``row["train"]`` (or ``row.train``) the row seen in group ``train``."""

    def __init__(self, dataset: Dataset, row: int, group: str = "") -> None:
        self.dataset = dataset
        self.index = row
        self._prefix = group + "/" if group else ""

    @property
    def key(self) -> str:
        return self.dataset._rows.key(self.index)

    def __repr__(self) -> str:
        return f"Row({self.index}, key={self.key!r})"

    def __getitem__(self, tensor: str) -> Sample | Row:
        name = self._prefix + check_path(tensor)
        if name not in self.dataset.tensors and name in self.dataset.groups:
            return Row(self.dataset, self.index, name)
        t = self.dataset._get_tensor(name)
        with self.dataset._lock:
            return Sample(t, self.index, t._engine.index.entry(self.index))

    def __getattr__(self, name: str) -> Any:
        return item_as_attribute(self, name, f"no tensor {name!r}")

    def samples(self) -> dict[str, Sample]:
        """The filled cells of this row by tensor name (inside its group, if any)."""
        out = {}
        for name, t in self.dataset.tensors.items():
            if not name.startswith(self._prefix):
                continue
            s = t.sample_at(self.index)
            if s is not None:
                out[name[len(self._prefix):]] = s
        return out


class RowList(list):
    """The rows of a slice of a dataset (``ds[0:8]``, ``ds[[0, 5]]``): a list of
    :class:`Row`, whose tensors are read across them as in Deep Lake:
    ``ds[0:8].images.numpy()``, and through groups as a row is: ``ds[0:8].train.images``."""

    def __init__(self, dataset: Dataset, rows: Iterable[int], group: str = "") -> None:
        super().__init__(Row(dataset, i, group) for i in rows)
        self.dataset = dataset
        self._prefix = group + "/" if group else ""

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            name = self._prefix + check_path(item)
            if name not in self.dataset.tensors and name in self.dataset.groups:
                return RowList(self.dataset, [r.index for r in self], name)
            t = self.dataset._get_tensor(name)
            with self.dataset._lock:
                return SampleList(t, [Sample(t, r.index, t._engine.index.entry(r.index)) for r in self])
        if isinstance(item, slice):  # still rows of the dataset: ds[0:8][2:4].images
            return RowList(self.dataset, [r.index for r in super().__getitem__(item)], self._prefix.rstrip("/"))
        return super().__getitem__(item)

    def __getattr__(self, name: str) -> Any:
        return item_as_attribute(self, name, f"no tensor {name!r}")
