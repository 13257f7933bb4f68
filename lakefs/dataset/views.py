"""Views of a dataset: a group of tensors, and one row across tensors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefs.dataset.names import check_path, expr_of
from lakefs.dataset.tensor import Sample, SampleList, Tensor, ViewList, position
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


def refuse_hiding_an_item(obj: Any, name: str, dataset: Dataset | None, prefix: str, where: str,
                          row: int | None = None) -> None:
    """Refuse ``ds.labels = x`` (on a dataset, group, row or rows) for a tensor or group
    ``name``: Python set an attribute that stored nothing and hid the tensor from ``ds.labels``
    (on a row: changed nothing anyone reads), silently. The TypeError says how to write.
    The object's own attributes, private ones and other names are set as usual; ``dataset``
    is None while the object is being made. ``where``: the object as a script writes it."""
    if dataset is None or name in vars(obj) or hasattr(type(obj), name):
        return
    full = prefix + name
    tensors = dataset.tensors
    if full in tensors:
        expr = expr_of(full)
        if row is not None:
            raise TypeError(f"{where}.{name} = ... stores nothing: write the cell with {expr}[{row}] = value "
                            f"(or {where}[{name!r}] = value)")
        raise TypeError(f"{where}.{name} = ... would hide tensor {full!r} and store nothing: write samples with "
                        f"{expr}.append(value), {expr}.extend(values) or {expr}[i] = value")
    if full in dataset.groups:
        raise TypeError(f"{where}.{name} = ... would hide group {full!r} and store nothing: write its tensors "
                        f"({expr_of(full)}.<tensor>.append(value))")


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

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in ("dataset", "name"):  # (its own, set by __init__)
            refuse_hiding_an_item(self, name, self.dataset, self.name + "/", expr_of(self.name))
        object.__setattr__(self, name, value)


class Row:
    """One row: ``ds[3]`` or ``ds["cat001"]``; ``row["images"]`` is that row's sample, and
    ``row["train"]`` (or ``row.train``) the row seen in group ``train``."""

    def __init__(self, dataset: Dataset, row: int, group: str = "") -> None:
        # (not through __setattr__: a row is made for every row read)
        vars(self).update(dataset=dataset, index=row, _prefix=group + "/" if group else "")

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

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            refuse_hiding_an_item(self, name, self.dataset, self._prefix, self._shown(), self.index)
        object.__setattr__(self, name, value)

    def __setitem__(self, tensor: str, value: Any) -> None:
        """``ds[3]["labels"] = 1`` writes this row's cell, as ``ds.labels[3] = 1`` does."""
        name = self._prefix + check_path(tensor)
        if name not in self.dataset.tensors and name in self.dataset.groups:
            raise TypeError(f"{self._shown()}[{tensor!r}] is group {name!r}: write its tensors' cells "
                            f"({self._shown()}[{tensor!r}][<tensor>] = value)")
        self.dataset._get_tensor(name)[self.index] = value

    def _shown(self) -> str:
        """This row as a script writes it: ``ds[3]``, ``ds[3].train``."""
        return f"ds[{self.index}]" + "".join(f".{p}" for p in self._prefix.split("/") if p)

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


class RowList(ViewList):
    """The rows of a slice of a dataset (``ds[0:8]``, ``ds[[0, 5]]``): a list of
    :class:`Row`, whose tensors are read across them as in Deep Lake:
    ``ds[0:8].images.numpy()``, and through groups as a row is: ``ds[0:8].train.images``.
    Indexed as the dataset is (a slice or list of it is one too); it writes nothing
    itself (``rows[2] = {...}`` is refused: a row is written a cell at a time)."""

    _rows_only = True

    def __init__(self, dataset: Dataset, rows: Iterable[int], group: str = "") -> None:
        super().__init__(Row(dataset, i, group) for i in rows)
        self.dataset = dataset
        self._prefix = group + "/" if group else ""

    def _how_to_write(self) -> str:
        return "write a row's cells with ds[row][tensor] = value"

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            name = self._prefix + check_path(item)
            if name not in self.dataset.tensors and name in self.dataset.groups:
                return RowList(self.dataset, [r.index for r in self], name)
            t = self.dataset._get_tensor(name)
            with self.dataset._lock:
                return SampleList(t, [Sample(t, r.index, t._engine.index.entry(r.index)) for r in self])
        at = self._positions(item)
        if isinstance(at, int):
            return list.__getitem__(self, at)
        # still rows of the dataset: ds[0:8][2:4].images
        return RowList(self.dataset, [list.__getitem__(self, i).index for i in at], self._prefix.rstrip("/"))

    def __setitem__(self, item: Any, value: Any) -> None:
        """Refused, saying what writes: a dataset takes no whole rows by assignment."""
        if isinstance(item, str):
            name = self._prefix + item
            raise TypeError(f"ds[...][{item!r}] = ... stores nothing: write each row's cell with "
                            f"{expr_of(name)}[row] = value")
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            row = list.__getitem__(self, position(item, len(self), self._what()))
            names = [str(k) for k in value] if isinstance(value, dict) else ["<tensor>"]
            cells = "; ".join(f"{row._shown()}[{k!r}] = value" for k in names)
            raise TypeError(f"ds[...][{item}] = ... stores nothing: write row {row.index} a cell at a time: {cells}")
        self._refuse("assigning to several items")

    def __getattr__(self, name: str) -> Any:
        return item_as_attribute(self, name, f"no tensor {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name != "dataset":  # (its own, set by __init__)
            refuse_hiding_an_item(self, name, self.dataset, self._prefix, "ds[...]")
        object.__setattr__(self, name, value)
