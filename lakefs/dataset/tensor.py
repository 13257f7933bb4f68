"""Tensors (columns) and samples (cells) of the Python API."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefs.chunks.chunk import ChunkKind
from lakefs.chunks.engine import ChunkEngine
from lakefs.chunks.stream import TileStream
from lakefs.dataset.info import Info
from lakefs.dataset.names import NAME_MAX, check_key, expr_of, split_filename
from lakefs.dataset.samples import Ahead, Encoded, EncodedFile, SampleFormat
from lakefs.errors import (
    HtypeMismatchError,
    InvalidNameError,
    LakeFSError,
    NameTooLongError,
    SampleNotFoundError,
    StoredExtensionError,
    TensorNotFoundError,
)
from lakefs.format.index import FLAG_TRANSCODED
from lakefs.format.manifest import TensorMeta

if TYPE_CHECKING:
    from lakefs.dataset.dataset import Dataset

DEFAULT_MODE = 0o644
MAX_EXTS = 255


def item_error(e: LakeFSError, where: str) -> LakeFSError:
    """``e`` with the position of the refused item in front, of the same class (callers
    catch by it)."""
    return type(e)(f"{where}: {e}")


_READER_OF = {"text": "text", "json": "dict"}


class HtypeReaders:
    """Deep Lake v3's readers by htype, for code written against it: ``text()`` of a text
    tensor, ``dict()`` of a json tensor (any JSON value, as there) and ``list()`` of a list
    or tag tensor, htypes lakefs does not have (it always refuses). One cell (``t[0]``,
    ``ds[0].t``) gives its value, several (``t``, ``t[0:4]``, ``ds[0:4].t``) a list of
    them; an empty cell gives ``""`` or ``{}``, as ``numpy()`` does. On another htype
    they raise :class:`HtypeMismatchError` before reading anything."""

    def _reader_tensor(self) -> Tensor:
        raise NotImplementedError

    def _values(self) -> Any:
        """The value of one cell, or the list of the values of several."""
        raise NotImplementedError

    def _read_as(self, reader: str, htype: str) -> Any:
        tensor = self._reader_tensor()
        if tensor.htype != htype:
            raise HtypeMismatchError(f"{reader}() reads a {htype} tensor; tensor {tensor.name!r} has htype "
                                     f"{tensor.htype!r}: read it with {_READER_OF.get(tensor.htype, 'numpy')}()")
        return self._values()

    def text(self) -> Any:
        """The string of a text cell, or the list of strings of several cells."""
        return self._read_as("text", "text")

    def dict(self) -> Any:
        """The JSON value (a dict, mostly) of a json cell, or the list of those of several."""
        return self._read_as("dict", "json")

    def list(self) -> Any:
        """Deep Lake's reader of list and tag tensors: lakefs has no such htype (lists go
        in a json tensor, read with ``dict()``), so this only says so."""
        tensor = self._reader_tensor()
        raise HtypeMismatchError(f"list() reads a list or tag tensor, htypes lakefs does not have; tensor "
                                 f"{tensor.name!r} has htype {tensor.htype!r} (lakefs keeps lists in json tensors, "
                                 "read with dict())")


class Sample(HtypeReaders):
    """One cell: lazy access to a stored sample and what lakefs keeps about it."""

    def __init__(self, tensor: Tensor, row: int, entry: np.void | None, *, filename: str | None = None) -> None:
        self.tensor = tensor
        # Its own: a sample stays readable after its tensor is deleted, until the commit's
        # garbage goes (an open file of the mount), though the tensor handle refuses.
        self._engine = tensor._engine
        self.row = row
        self._entry = entry
        self._filename = filename  # known to a writer: no key decode per stored file

    def __repr__(self) -> str:
        return f"Sample({self.tensor.name!r}, row={self.row}, key={self.key!r}, shape={self.shape})"

    @property
    def is_empty(self) -> bool:
        return self._entry is None

    def _e(self) -> np.void:
        if self._entry is None:
            raise SampleNotFoundError(f"tensor {self.tensor.name!r} has no sample at row {self.row}")
        return self._entry

    @property
    def key(self) -> str:
        return self.tensor.dataset._rows.key(self.row)

    @property
    def shape(self) -> tuple[int, ...]:
        return (0,) if self._entry is None else ChunkEngine.shape_of(self._entry)

    @property
    def dtype(self) -> str | None:
        return self.tensor.dtype

    @property
    def compression(self) -> str | None:
        return self.tensor.sample_compression

    @property
    def mtime_ns(self) -> int:
        return int(self._e()["mtime_ns"])

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def mode(self) -> int:
        return int(self._e()["mode"])

    @property
    def extension(self) -> str:
        return self.tensor._ext(int(self._e()["ext"]))

    @property
    def filename(self) -> str:
        if self._filename is None:
            self._filename = self.key + self.extension
        return self._filename

    @property
    def size(self) -> int:
        """Size in bytes of the sample seen as a file (exact, no read)."""
        return int(self._e()["file_size"])

    @property
    def transcoded(self) -> bool:
        return bool(int(self._e()["flags"]) & FLAG_TRANSCODED)

    def _stored(self) -> bytes:
        return self._engine.read_entry(self._e())

    def tobytes(self) -> bytes:
        """The stored encoding: the original file for pass-through samples, raw array
        bytes for array tensors."""
        if self._entry is None:
            return b""
        return self.tensor._format.raw(self._stored())

    def numpy(self) -> Any:
        """Decoded value: pixels, an array, a parsed JSON object, a string; an empty cell
        reads as its htype's empty value (:meth:`SampleFormat.empty_value`)."""
        if self._entry is None:
            return self.tensor._format.empty_value()
        return self.tensor._format.to_numpy(self._stored(), self.shape)

    def data(self) -> Any:
        return self.numpy()

    def _reader_tensor(self) -> Tensor:
        return self.tensor

    def _values(self) -> Any:
        return self.numpy()

    @property
    def is_large(self) -> bool:
        """Spread over several chunks (tiles): read it with :meth:`read_file` in pieces."""
        return self._entry is not None and int(self._entry["tiles"]) > 1

    def read_file(self, offset: int, size: int) -> bytes | memoryview:
        """``size`` bytes of the file view from ``offset``, without loading the whole of a
        large sample when its file view is its stored bytes (then a read-only view of a
        verified tile when the piece lies in one)."""
        if self.is_large and self.tensor._format.file_is_stored:
            return self._engine.read_range(self._e(), offset, size)
        return self.file_bytes()[offset : offset + size]

    def file_reader(self) -> Callable[[int, int], bytes | memoryview]:
        """``read(offset, size)`` of the file view for one reader (an open file): a large
        sample gets its own window of tiles, read ahead as the reader goes."""
        if self.is_large and self.tensor._format.file_is_stored:
            return functools.partial(self._engine.read_range, self._e(), window=self._engine.tile_window())
        return self.read_file

    def file_bytes(self) -> bytes:
        """The sample as the mount shows it (an encoded file, ``.npy``, ``.json``, ``.txt``)."""
        fmt = self.tensor._format
        if fmt.file_is_stored:  # the common case, every cat of a photo: no shape needed
            return self._stored()
        return fmt.to_file(self._stored(), self.shape)


def stack(values: list[Any], fmt: SampleFormat, aslist: bool) -> Any:
    """Values of several samples: one stacked array when shapes agree, else (or with
    ``aslist``) the list of them, as Deep Lake's ``numpy(aslist=...)``; no values (an
    empty slice) are an empty array of the dtype they would stack to."""
    if aslist:
        return values
    if not values:
        return fmt.empty_stack()
    try:
        return np.stack(values)
    except ValueError:
        return values


def position(item: Any, n: int, what: str) -> int:
    """The position of the int index ``item`` into ``n`` rows (negative from the end), or
    the IndexError naming ``what`` (``a dataset of 5 rows``) and the TypeError a dataset gives."""
    if not isinstance(item, (int, np.integer)) or isinstance(item, bool):
        raise TypeError(f"row indices are ints, slices or lists of ints, not {type(item).__name__}")
    i = int(item) + n if item < 0 else int(item)
    if not 0 <= i < n:
        raise IndexError(f"row {item} out of range for {what}")
    return i


def list_positions(item: Sequence[Any] | np.ndarray, n: int, what: str) -> list[int]:
    """The positions of a list index into ``n`` rows: row numbers (ints, numpy ints,
    negative from the end) or, as in numpy, a mask of ``n`` bools. Nothing else: ``int()``
    of each read ``1.0`` as row 1 and the key ``"7"`` as row 7."""
    if isinstance(item, np.ndarray) and item.dtype == np.bool_ or (
            len(item) and all(isinstance(i, (bool, np.bool_)) for i in item)):
        shape = np.shape(item)
        if shape != (n,):
            raise IndexError(f"boolean index of shape {shape} for {what}")
        return np.flatnonzero(np.asarray(item)).tolist()
    for i in item:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"a list of rows holds row numbers (ints) or a mask of bools, not {type(i).__name__} "
                            f"({i!r})")
    return [position(i, n, what) for i in item]


def _shown_index(item: Any) -> str:
    """An index as a script writes it: ``3``, ``1:3``, ``::2``."""
    if isinstance(item, slice):
        parts = ["" if x is None else str(x) for x in (item.start, item.stop, item.step)]
        return ":".join(parts[:2] if item.step is None else parts)
    return repr(item)


def untuple(item: tuple, expr: str, rows_only: bool = False) -> Any:
    """The one index in ``item`` (``t[(3,)]`` is ``t[3]``, as in numpy), or a TypeError for
    ``t[3, 1]``: numpy's element [3, 1], which lakefs does not index (it read rows 3 and 1,
    silently). The message says how to write it; ``rows_only``: ``expr`` has rows, no arrays."""
    if len(item) == 1:
        return item[0]
    shown = ", ".join(_shown_index(i) for i in item) or "()"
    ints = bool(item) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in item)
    rows = f"; rows by a list: {expr}[[{shown}]]" if ints else ""
    if rows_only or not item:
        raise TypeError(f"{expr}[{shown}]: a tuple is no row index (one row, a slice or a list of rows){rows}")
    first, rest = _shown_index(item[0]), ", ".join(_shown_index(i) for i in item[1:])
    inner = f"[{rest}]" if isinstance(item[0], (int, np.integer)) else f"[:, {rest}]"
    raise TypeError(f"{expr}[{shown}] indexes into the samples' arrays, which lakefs does not do: index the "
                    f"row(s), then the array ({expr}[{first}].numpy(){inner}){rows}")


class ViewList(list):
    """A view's items as a Python list whose changes (``append``, ``del v[0]``, ...) are
    refused: they changed the list and stored nothing, silently. ``_how_to_write`` says
    what does store."""

    _rows_only = False  # (a view of rows has no arrays to index into)

    def _how_to_write(self) -> str:
        raise NotImplementedError

    def _refuse(self, what: str) -> Any:
        raise TypeError(f"{what} on a view changes a Python list and stores nothing: {self._how_to_write()}")

    def _what(self) -> str:
        return f"a view of {len(self)} rows"

    def _positions(self, item: Any) -> int | list[int]:
        """``item`` (an int, a slice, a list of ints or bools) as positions in this view,
        with the dataset's errors."""
        if isinstance(item, tuple):
            item = untuple(item, "view", rows_only=self._rows_only)
        if isinstance(item, slice):
            return list(range(*item.indices(len(self))))
        if isinstance(item, (list, np.ndarray)):
            return list_positions(item, len(self), self._what())
        return position(item, len(self), self._what())

    def __copy__(self) -> ViewList:
        """(copy.copy rebuilt the list with ``append``, refused here.)"""
        new = list.__new__(type(self))
        list.extend(new, self)
        new.__dict__.update(self.__dict__)
        return new

    def __delitem__(self, item: Any) -> None:
        self._refuse("del")

    def __iadd__(self, other: Any) -> Any:
        return self._refuse("+=")

    def __imul__(self, other: Any) -> Any:
        return self._refuse("*=")

    def append(self, value: Any) -> None:
        self._refuse("append")

    def extend(self, values: Any) -> None:
        self._refuse("extend")

    def insert(self, i: Any, value: Any) -> None:
        self._refuse("insert")

    def remove(self, value: Any) -> None:
        self._refuse("remove")

    def pop(self, i: Any = -1) -> Any:
        return self._refuse("pop")

    def clear(self) -> None:
        self._refuse("clear")


class SampleList(HtypeReaders, ViewList):
    """The samples of a slice or a list of rows (``t[2:5]``, ``t[[0, 7]]``): a list of
    :class:`Sample`, that also reads them at once, as a Deep Lake tensor view does. A
    slice or list of it is one too; ``view[i] = value`` writes the row it shows, as in
    Deep Lake."""

    def __init__(self, tensor: Tensor, samples: Iterable[Sample]) -> None:
        super().__init__(samples)
        self.tensor = tensor

    def _how_to_write(self) -> str:
        expr = expr_of(self.tensor.name)
        return f"write a row with {expr}[row] = value (or view[i] = value), add one with {expr}.append(value)"

    def __getitem__(self, item: Any) -> Any:
        at = self._positions(item)
        if isinstance(at, int):
            return list.__getitem__(self, at)
        return SampleList(self.tensor, [list.__getitem__(self, i) for i in at])

    def __setitem__(self, item: Any, value: Any) -> None:
        """``view[i] = value`` is ``tensor[row] = value`` for the row the view shows at ``i``."""
        if isinstance(item, (slice, list, np.ndarray)):
            self._refuse("assigning to several items")
        row = list.__getitem__(self, position(item, len(self), self._what())).row
        self.tensor[row] = value
        fresh = self.tensor.sample_at(row)
        for i, s in enumerate(self):  # (the view shows what it wrote)
            if s.row == row:
                list.__setitem__(self, i, fresh)

    @property
    def shape(self) -> tuple[int | None, ...]:
        """``(len(self), *sample_shape)``, as :attr:`Tensor.shape` for these rows only: a
        dimension not the same for every one (or a row with no sample) is None."""
        shapes = [None if s.is_empty else s.shape for s in self]
        known = [x for x in shapes if x is not None]
        if not known:
            return (len(self),)
        ndim = max(len(x) for x in known)
        if len(known) < len(shapes) or any(len(x) != ndim for x in known):
            return (len(self), *[None] * ndim)
        return (len(self), *[d if all(x[i] == d for x in known) else None for i, d in enumerate(known[0])])

    def numpy(self, aslist: bool = False) -> Any:
        return stack([s.numpy() for s in self], self.tensor._format, aslist)

    def data(self, aslist: bool = False) -> Any:
        return self.numpy(aslist)

    def _reader_tensor(self) -> Tensor:
        return self.tensor

    def _values(self) -> Any:
        return self.numpy(aslist=True)


class _DeletedEngine:
    """The engine of a tensor deleted from its dataset: every use of a handle kept across
    ``delete_tensor`` raises, where it wrote rows whose samples went with the deleted
    tensor. At no cost to the handles in use: nothing is checked on the way."""

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    def __getattr__(self, attr: str) -> Any:
        raise self.error()

    def error(self) -> TensorNotFoundError:
        return TensorNotFoundError(f"tensor {self.name!r} {self.why}: this handle to it reads and writes "
                                   "nothing (take the tensor from the dataset again)")


class Tensor(HtypeReaders):
    """A column. Indexing by row number or row key gives a :class:`Sample`; a slice or a
    list of rows a :class:`SampleList`."""

    def __init__(self, dataset: Dataset, name: str, meta: TensorMeta, engine: ChunkEngine, fmt: SampleFormat):
        self.dataset = dataset
        self.name = name
        self.meta = meta
        self._engine: ChunkEngine | _DeletedEngine = engine
        self._format = fmt

    def _retire(self, why: str = "was deleted from the dataset") -> None:
        """Deleted from its dataset (:meth:`Dataset.delete_tensor`, and the mount's
        ``unmake_tensor``, ``regroup_tensor``), or not in the commit of another writer the
        dataset moved to (:meth:`Dataset._reopen`): this handle refuses every use from now on."""
        self._engine = _DeletedEngine(self.name, why)

    def _check_writable(self) -> None:
        """The dataset's check, then this handle's: the dataset's first write after a
        ``with`` block may move it to another writer's commit, which retires this handle
        if that writer deleted the tensor (a write went on into a tensor no commit holds)."""
        self.dataset._check_writable()
        if isinstance(self._engine, _DeletedEngine):
            raise self._engine.error()

    def __repr__(self) -> str:
        if isinstance(self._engine, _DeletedEngine):
            return f"Tensor({self.name!r}, deleted)"
        return (
            f"Tensor({self.name!r}, htype={self.htype!r}, dtype={self.dtype!r}, "
            f"sample_compression={self.sample_compression!r}, len={len(self)})"
        )

    # --- properties --------------------------------------------------------------------

    htype = property(lambda self: self.meta.htype)
    dtype = property(lambda self: self.meta.dtype)
    sample_compression = property(lambda self: self.meta.sample_compression)
    chunk_compression = property(lambda self: self.meta.chunk_compression)
    class_names = property(lambda self: list(self.meta.class_names))

    @property
    def info(self) -> Info:
        """Deep Lake's tensor info: the htype's (``class_names``, ``coords``) and the
        ``create_tensor`` extra arguments; ``info.update(...)`` changes it (:class:`Info`)."""
        return Info(self)

    @property
    def format(self) -> SampleFormat:
        """How values and files become stored bytes (htype, codecs, extensions)."""
        return self._format

    def live_entries(self) -> np.ndarray:
        """A copy of the index entries of the filled cells (for tools: sizes, shapes)."""
        with self.dataset._lock:
            return self._engine.index.live().copy()

    @property
    def num_samples(self) -> int:
        with self.dataset._lock:
            return len(self._engine.index.present_rows())

    def __len__(self) -> int:
        with self.dataset._lock:
            return self._engine.index.last_filled_row() + 1

    @property
    def shape(self) -> tuple[int | None, ...]:
        """``(len(self), *sample_shape)`` as Deep Lake gives it: a dimension that is not
        the same for every row (or a row with no sample) is None. From the index alone."""
        with self.dataset._lock:
            n = self._engine.index.last_filled_row() + 1
            live = self._engine.index.live()
            ndims, shapes = live["ndim"], live["shape"]
        if not len(live):
            return (0,)
        ndim = int(ndims.max())
        if int(ndims.min()) != ndim or len(live) < n:  # (a row without a sample has no shape)
            return (n, *[None] * ndim)
        dims = shapes[:, :ndim]
        same = (dims == dims[0]).all(axis=0)
        return (n, *[int(d) if ok else None for d, ok in zip(dims[0], same)])

    def rows(self) -> np.ndarray:
        """Row numbers that hold a sample, in row order."""
        with self.dataset._lock:
            return self._engine.index.present_rows()

    # --- reading -----------------------------------------------------------------------

    def _row_of(self, item: int | str) -> int:
        if isinstance(item, str):
            row = self.dataset._rows.find(item)
            if row is None:
                raise SampleNotFoundError(f"no row with key {item!r}")
            return row
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            n = len(self)
            return position(item, n, f"tensor {self.name!r} of length {n}")
        raise TypeError(f"tensor indices are ints, slices or row keys, not {type(item).__name__}")

    def __getitem__(self, item: int | str | slice | Sequence[int]) -> Sample | SampleList:
        if isinstance(item, tuple):
            item = untuple(item, expr_of(self.name))
        if isinstance(item, slice):
            return SampleList(self, [self[i] for i in range(*item.indices(len(self)))])
        if isinstance(item, (list, tuple, np.ndarray)):
            n = len(self)
            return SampleList(self, [self[i] for i in list_positions(item, n, f"tensor {self.name!r} of length {n}")])
        with self.dataset._lock:
            row = self._row_of(item)
            return Sample(self, row, self._engine.index.entry(row))

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def sample_at(self, row: int) -> Sample | None:
        """The sample at ``row`` or None for an empty cell (no range check against len)."""
        with self.dataset._lock:
            e = self._engine.index.entry(row)
        return None if e is None else Sample(self, row, e)

    def is_committed(self, row: int) -> bool:
        """Whether the cell at ``row`` holds what the last commit has there: a sample
        written since is not, until a commit publishes it (a commit on a full disk holds
        back the samples it could not store; see ``Dataset.flush``)."""
        with self.dataset._lock:
            return self._engine.index.is_published(row)

    def numpy(self, aslist: bool = False) -> Any:
        """All samples: one stacked array when shapes agree, else (or with ``aslist``) a
        list of them."""
        return stack([s.numpy() for s in self], self._format, aslist)

    def data(self, aslist: bool = False) -> Any:
        return self.numpy(aslist)

    def _reader_tensor(self) -> Tensor:
        return self

    def _values(self) -> Any:
        return self.numpy(aslist=True)

    # --- writing -----------------------------------------------------------------------

    def append(self, value: Any) -> Sample:
        """Fill the row after this tensor's last filled row, creating it when needed."""
        self._check_writable()
        ahead = self._format.prepare_value(value)  # (see write_file)
        with self.dataset._lock:
            self._check_writable()
            with self._format.rollback():  # (also of a dtype adopted, when the store fails)
                encoded = self._format.from_value(value, ahead)
                row = self._engine.index.last_filled_row() + 1
                rows_before = len(self.dataset._rows)
                self.dataset._ensure_rows(row + 1)
                try:
                    self._write(row, encoded, value)
                except BaseException:  # (a full disk): no empty row is left behind
                    self.dataset._take_back(rows_before, [])
                    raise
            return Sample(self, row, self._engine.index.entry(row))

    def extend(self, values: Iterable[Any]) -> None:
        """Append every value, or none: all are checked and encoded before any is stored,
        and a refused one is named by its position."""
        self._check_writable()
        # (a str, bytes or dict is iterable, but as one sample: its characters, bytes or
        # keys would each become a row)
        single = isinstance(values, (str, bytes, bytearray, memoryview, dict))
        if single or not hasattr(values, "__iter__") or (isinstance(values, np.ndarray) and values.ndim == 0):
            raise TypeError(f"extend takes a sequence or array of samples, one per row (a list, tuple or "
                            f"array), not {type(values).__name__}; to add one sample, use append")
        values = list(values)
        aheads = []
        for i, value in enumerate(values):  # (see write_file)
            try:
                aheads.append(self._format.prepare_value(value))
            except LakeFSError as e:
                raise item_error(e, f"item {i}") from e
        with self.dataset._lock:
            self._check_writable()
            encoded = []
            with self._format.rollback():  # (also of a dtype adopted, when the store fails)
                for i, (value, ahead) in enumerate(zip(values, aheads)):
                    try:
                        encoded.append((self._format.from_value(value, ahead), value))
                    except LakeFSError as e:
                        raise item_error(e, f"item {i}") from e
                row = self._engine.index.last_filled_row() + 1
                rows_before = len(self.dataset._rows)
                self.dataset._ensure_rows(row + len(encoded))
                written: list[tuple[Tensor, int]] = []
                try:
                    for i, (enc, value) in enumerate(encoded):
                        self._write(row + i, enc, value)
                        written.append((self, row + i))
                except BaseException:  # (a full disk): none of them, as for a refused value
                    self.dataset._take_back(rows_before, written)
                    raise

    def __setitem__(self, item: int | str, value: Any) -> None:
        try:  # (see write_file; a refusal is raised below, after the row is checked)
            ahead = self._format.prepare_value(value) if not self.dataset.read_only else None
        except LakeFSError:
            ahead = None
        with self.dataset._lock:
            self._check_writable()
            if isinstance(item, str):
                check_key(item)
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                rows = len(self.dataset._rows)
                if item < 0:
                    row = self._row_of(item)
                elif item < rows:  # an existing row, whose cell here may be empty
                    row = int(item)
                else:  # (as Deep Lake; filling the rows up to it made 10**6 rows for t[10**6])
                    raise IndexError(f"row {item} does not exist (the dataset has {rows} rows): "
                                     "use append or extend to add rows")
            else:
                raise TypeError(f"tensor indices are ints or row keys, not {type(item).__name__}")
            # Validate and encode before creating any row: a bad value stores nothing.
            with self._format.rollback():  # (also of a dtype adopted, when the store fails)
                encoded = self._format.from_value(value, ahead)
                rows_before = len(self.dataset._rows)
                if isinstance(item, str):
                    row = self.dataset._row_for_key(item, create=True)
                try:
                    self._write(row, encoded, value)
                except BaseException:  # (a full disk): a row made for the key goes again
                    self.dataset._take_back(rows_before, [])
                    raise

    def pop(self, item: int | str | Sequence[int] | None = None) -> None:
        """Delete the sample at a row, at each of a list of rows, or (no argument, as Deep
        Lake's ``pop()``) at the last filled row; the rows and the other tensors' cells
        stay, so this tensor's next ``append`` fills the first row after its last sample."""
        with self.dataset._lock:
            self._check_writable()
            if item is None:
                row = self._engine.index.last_filled_row()
                if row < 0:
                    raise IndexError(f"no sample to pop: tensor {self.name!r} is empty")
                rows = [row]
            elif isinstance(item, (list, np.ndarray)):
                n = len(self)
                rows = list_positions(item, n, f"tensor {self.name!r} of length {n}")  # (all checked first)
            else:
                rows = [self._row_of(item)]
            rows = list(dict.fromkeys(rows))
            for row in rows:  # (all or none: an empty one among them empties nothing)
                if self._engine.index.entry(row) is None:
                    raise SampleNotFoundError(f"no sample at row {row} of tensor {self.name!r}")
            for row in rows:
                self._engine.delete(row)
            self.dataset._touch()

    def _write(self, row: int, encoded: Encoded, value: Any = None, *, mtime_ns: int | None = None,
               mode: int | None = None) -> str:
        """Store ``encoded`` at ``row``; the extension the sample is shown with."""
        if isinstance(value, EncodedFile):  # (only a file has a file's times and mode: a PIL
            mtime_ns = value.mtime_ns if mtime_ns is None else mtime_ns  # image's mode is "RGB")
            mode = value.mode if mode is None else mode
        mtime_ns = mtime_ns if mtime_ns is not None else time.time_ns()
        mode = mode if mode is not None else DEFAULT_MODE
        if self.dataset._rows.key_size(row) + len(encoded.ext.encode()) > NAME_MAX:
            # A key may be 255 bytes, its file name no longer: a mount could list the file
            # but nobody could open, copy or export it.
            raise NameTooLongError(
                f"{self.dataset._rows.key(row)[:40]}...{encoded.ext}: the sample's file name would be longer "
                f"than {NAME_MAX} bytes; use a shorter key")
        code = self._ext_code(encoded.ext)
        self._engine.write(
            row, encoded.stored, shape=encoded.shape, mtime_ns=mtime_ns, mode=mode,
            ext=code, flags=encoded.flags, file_size=encoded.file_size,
        )
        self.dataset._touch()
        return self._ext(code)

    def _ext_code(self, ext: str) -> int:
        exts = self.meta.exts
        if ext in exts:
            return exts.index(ext)
        if len(exts) >= MAX_EXTS:
            ext = self._format.canonical_ext
            if ext in exts:
                return exts.index(ext)
        exts.append(ext)
        return len(exts) - 1

    def _ext(self, code: int) -> str:
        exts = self.meta.exts
        return exts[code] if code < len(exts) else self._format.canonical_ext

    # --- the file view (used by the mount and the tools) -------------------------------

    def accepts_filename(self, filename: str) -> bool:
        """Whether ``filename`` names a sample of this tensor (else it is a staging file)."""
        parts = split_filename(filename)
        if parts is None:
            return False
        try:
            check_key(parts[0])
        except InvalidNameError:
            return False
        return self._format.accepts_extension(parts[1])

    def key_conflict(self, filename: str) -> str | None:
        """The file that already holds the row key of ``filename`` under another name,
        which storing ``filename`` would replace (``report.pdf`` for ``report.docx``: a
        row holds one file per tensor; the mount keeps such a file as a plain file). None
        when there is none, or when ``filename`` would be shown under that very name
        (``x.png`` into a jpeg tensor holding ``x.jpg`` is transcoded into it: a rewrite,
        not a second file)."""
        parts = split_filename(filename)
        if parts is None:
            return None
        key = parts[0]
        with self.dataset._lock:
            row = self.dataset._rows.find(key)
            st = None if row is None else self._engine.index.file_stat(row)
            if st is None:
                return None
            current = key + self._ext(st[3])
        if current == filename:  # (the common case, the mount's rewrite: no more work)
            return None
        return None if current == self.shown_name(filename) else current

    def shown_name(self, filename: str) -> str | None:
        """The name a file written as ``filename`` is shown under once stored (``x.png``
        into a jpeg tensor: ``x.jpg``), or None for a name that is not ``<key>.<ext>``."""
        parts = split_filename(filename)
        return None if parts is None else parts[0] + self._format.shown_ext(parts[1], False)

    def find_file(self, filename: str) -> Sample | None:
        """The sample shown under ``filename`` (key and extension must both match)."""
        with self.dataset._lock:
            found = self._file_row(filename)
            return None if found is None else Sample(self, found[0], self._engine.index.entry(found[0]))

    def file_stat(self, filename: str) -> tuple[int, int, int] | None:
        """``(size, mtime_ns, mode)`` of the file ``filename``, or None: a stat without
        making a Sample (the mount's LOOKUP of each file, ``stat`` of every file)."""
        with self.dataset._lock:
            found = self._file_row(filename)
        return None if found is None else found[1][:3]

    def _file_row(self, filename: str) -> tuple[int, tuple[int, int, int, int]] | None:
        """``(row, index.file_stat(row))`` of the sample shown under ``filename`` (key and
        extension must both match); call with the dataset lock."""
        parts = split_filename(filename)
        if parts is None:
            return None
        row = self.dataset._rows.find(parts[0])
        if row is None:
            return None
        st = self._engine.index.file_stat(row)
        if st is None or self._ext(st[3]) != parts[1]:
            return None
        return row, st

    def file_table(self) -> tuple[list[str], np.ndarray]:
        """``(filenames, entries)`` of every sample, in row order, made in bulk from the
        row and index arrays (``entries`` is a copy of the index entries: ``file_size``,
        ``mtime_ns``, ``mode``, ...): a mount lists a 100k-file tensor without a Sample
        object per file."""
        with self.dataset._lock:
            live = self._engine.index.live()  # boolean selection: already a copy
            keys = self.dataset._rows.keys_at(live["row"])
            codes = live["ext"]
            if not len(codes):
                return [], live
            exts = [self._ext(c) for c in range(int(codes.max()) + 1)]
        if len(exts) == 1 or int(codes.min()) == int(codes.max()):
            ext = exts[int(codes[0])]
            return [k + ext for k in keys], live
        return [k + exts[c] for k, c in zip(keys, codes.tolist())], live

    def changed_files(self, earlier: Tensor) -> list[str]:
        """The filenames of ``earlier`` (this tensor in an older snapshot of the dataset)
        that now show something else or nothing: rewritten, deleted or moved away."""
        names, entries = earlier.file_table()
        with self.dataset._lock:
            changed = self._engine.index.changed(entries)
        return [names[i] for i in changed.nonzero()[0].tolist()]

    def prepare_file(self, filename: str, data: bytes) -> Ahead | None:
        """The costly part of :meth:`write_file` (the probe, a transcode), without the
        dataset lock: pass it back as ``ahead``. None when there is nothing costly to do
        first (or ``filename`` is no sample name: write_file says so)."""
        parts = split_filename(filename)
        if parts is None or not self._format.accepts_extension(parts[1]):
            return None
        return self._format.prepare_file(data, parts[1])

    def _sample_name(self, filename: str) -> tuple[str, str]:
        """``(key, ext)`` of ``filename`` as a sample name of this tensor, or InvalidNameError."""
        parts = split_filename(filename)
        if parts is None or not parts[0] or not self._format.accepts_extension(parts[1]):
            raise InvalidNameError(self._not_a_sample_name(filename, parts))
        check_key(parts[0])
        return parts

    def _not_a_sample_name(self, filename: str, parts: tuple[str, str] | None) -> str:
        """Why ``filename`` names no sample here (``lakefs ingest`` shows it per file)."""
        if parts is None or not parts[0]:
            why = "a sample's name is <key><extension>"
        else:
            article = "an" if self.htype[0] in "aeiou" else "a"
            why = f"{article} {self.htype} tensor does not take {parts[1]} files"
        return f"{filename!r} is not a sample name for tensor {self.name!r}: {why}"

    def check_file(self, filename: str, data: bytes) -> None:
        """Raise what :meth:`write_file` would raise for these bytes, storing nothing
        (the mount checks an empty file at a close that may not be the last one)."""
        key, ext = self._sample_name(filename)
        ahead = self._format.prepare_file(data, ext)
        with self.dataset._lock, self._format.rollback(always=True):
            self._format.from_file(data, ext, ahead)

    def write_file(self, filename: str, data: bytes, *, mtime_ns: int | None = None,
                   mode: int | None = None, transcoded: bool = False, ahead: Ahead | None = None) -> Sample:
        """Store a file's bytes as the sample ``<key>.<ext>``, replacing that row's cell.

        The probe and any transcode run before the dataset lock is taken (threads writing
        photos transcode in parallel, and readers do not wait for them); ``ahead``: they
        were run already (:meth:`prepare_file`: the mount runs them without its own lock).
        ``transcoded``: ``data`` was already transcoded to the tensor's compression by the
        caller (``lakefs ingest``'s worker processes); the sample is flagged as such."""
        key, ext = self._sample_name(filename)
        if ahead is None:
            self._check_writable()  # (a read-only dataset says so first)
            ahead = self._format.prepare_file(data, ext)
        with self.dataset._lock:
            self._check_writable()
            with self._format.rollback():  # (also of a dtype adopted, when the store fails)
                encoded = self._format.from_file(data, ext, ahead)
                if transcoded:
                    encoded = dataclasses.replace(encoded, flags=encoded.flags | FLAG_TRANSCODED)
                rows_before = len(self.dataset._rows)
                row = self.dataset._row_for_key(key, create=True)
                try:
                    ext = self._write(row, encoded, mtime_ns=mtime_ns, mode=mode)
                except BaseException:  # (a full disk): no empty row is left behind
                    self.dataset._take_back(rows_before, [])
                    raise
            return Sample(self, row, self._engine.index.entry(row), filename=key + ext)

    @property
    def stream_threshold(self) -> int | None:
        """Files bigger than this may be streamed into tiles (:meth:`open_file_stream`);
        None when this tensor needs whole files."""
        if not self._format.streams_files or self._engine.kind == ChunkKind.CHUNK_COMPRESSED:
            return None
        return self._engine.max_chunk

    def open_file_stream(self, filename: str, size: int) -> TileStream | None:
        """A stream for a big file ``filename`` (``size`` bytes so far) whose bytes go
        into tiles as they arrive (see :meth:`commit_file_stream`); None when this tensor
        needs the whole file first (media probes and transcodes, text checks,
        compression) or the file is not bigger than a chunk (then it is stored whole)."""
        parts = split_filename(filename)
        threshold = self.stream_threshold
        if parts is None or not self._format.accepts_extension(parts[1]) or threshold is None or size <= threshold:
            return None
        check_key(parts[0])
        with self.dataset._lock:
            self._check_writable()
            return self._engine.open_stream()

    def commit_file_stream(self, filename: str, stream: TileStream, *, mtime_ns: int | None = None,
                           mode: int | None = None) -> Sample:
        """Store a finished stream as the sample ``filename`` (like :meth:`write_file`)."""
        key, ext = self._sample_name(filename)
        with self.dataset._lock:
            self._check_writable()
            rows_before = len(self.dataset._rows)
            row = self.dataset._row_for_key(key, create=True)
            try:
                self._engine.write_stream(
                    row, stream, shape=self._format.file_shape(stream.size),
                    mtime_ns=mtime_ns if mtime_ns is not None else time.time_ns(),
                    mode=mode if mode is not None else DEFAULT_MODE,
                    ext=self._ext_code(self._format.shown_ext(ext, False)),
                )
            except BaseException:  # (a broken stream, a full disk, a deleted tensor): no empty row
                self.dataset._take_back(rows_before, [])
                raise
            self.dataset._touch()
            return Sample(self, row, self._engine.index.entry(row))

    def rename_file(self, old: str, new: str) -> Sample:
        """Move a sample to the row named by ``new`` (same content, new key)."""
        with self.dataset._lock:
            self._check_writable()
            src = self.find_file(old)
            if src is None:
                raise SampleNotFoundError(f"no sample {old!r} in tensor {self.name!r}")
            parts = split_filename(new)
            if parts is None or not self._format.accepts_extension(parts[1]):
                raise InvalidNameError(self._not_a_sample_name(new, parts))
            key, ext = parts
            check_key(key)
            if self._format.shown_ext(ext, src.transcoded) != ext:
                raise StoredExtensionError(
                    f"{new!r}: the sample is stored as {self._format.canonical_ext}; "
                    f"its name must keep a matching extension"
                )
            dst = self.dataset._row_for_key(key, create=True)
            if dst != src.row:
                self._engine.move(src.row, dst)
            e = self._engine.index.entry(dst)
            e["ext"] = self._ext_code(ext)
            self._engine.index.set(dst, e)
            self.dataset._touch()
            return Sample(self, dst, self._engine.index.entry(dst))

    def delete_row(self, row: int) -> None:
        with self.dataset._lock:
            self._check_writable()
            self._engine.delete(row)
            self.dataset._touch()

    def set_meta(self, row: int, *, mtime_ns: int | None = None, mode: int | None = None) -> None:
        with self.dataset._lock:
            self._check_writable()
            self._engine.update_meta(row, mtime_ns=mtime_ns, mode=mode)
            self.dataset._touch()

    def iter_samples(self) -> Iterator[Sample]:
        """Present samples in row order, without materialising a list of them."""
        rows = self.rows()
        for start in range(0, len(rows), 4096):
            with self.dataset._lock:
                batch = [(int(r), self._engine.index.entry(int(r))) for r in rows[start : start + 4096]]
            for r, e in batch:
                if e is not None:
                    yield Sample(self, r, e)

