"""Empty cells: a row made by one tensor has no sample in the others (the mount's
``images/a.jpg`` and ``labels/b.txt`` make rows a and b). Every read path of the API gives
the htype's empty value there, as Deep Lake does for an empty sample: '' for text, {} for
json, an empty array of the tensor's dtype otherwise; the file views list no file."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import lakefs
from lakefs.cli.tools import list_dir
from lakefs.errors import SampleNotFoundError
from lakefs.tools.export import export


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 6, 3), 90, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _mount_like(path):
    """Rows a, b and c written as the mount writes them: ``images/a.jpg``, then
    ``labels/b.txt`` and ``meta/b.json``, then ``images/c.jpg``."""
    ds = lakefs.empty(path)
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("labels", htype="text")
    ds.create_tensor("meta", htype="json")
    ds.images.write_file("a.jpg", _jpeg())
    ds.labels.write_file("b.txt", b"dog\n")
    ds.meta.write_file("b.json", b'{"w": 6}')
    ds.images.write_file("c.jpg", _jpeg())
    return ds


def _reads(ds, name: str, row: int) -> list:
    """The cell (name, row) as every read path of the API gives it."""
    t = ds[name]
    return [
        t[row].numpy(), t[row].data(), t[ds.keys()[row]].numpy(),
        t.numpy(aslist=True)[row], t.data(aslist=True)[row], [s.numpy() for s in t][row],
        ds[row][name].numpy(), getattr(ds[row], name).data(), ds[ds.keys()[row]][name].numpy(),
        ds[0:2][name].numpy(aslist=True)[row], getattr(ds[[0, 1]], name).numpy(aslist=True)[row],
        t[0:2].numpy(aslist=True)[row], t[[row]].numpy(aslist=True)[0],
    ]


@pytest.mark.parametrize("reopen", [False, True])
def test_empty_text_and_json_cells_read_as_empty_values(tmp_path, reopen):
    """An empty text or json cell read as an empty uint8 array on every path."""
    ds = _mount_like(tmp_path / "ds")
    if reopen:
        ds.close()
        ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.keys() == ["a", "b", "c"] and len(ds.labels) == 2 and len(ds.images) == 3  # (empty rows count)
    assert ds.labels[0].is_empty and ds.meta[0].is_empty and ds.images[1].is_empty
    for value in _reads(ds, "labels", 0):
        assert isinstance(value, str) and value == ""
    for value in _reads(ds, "meta", 0):
        assert isinstance(value, dict) and value == {}
    assert all(v == "dog\n" for v in _reads(ds, "labels", 1))
    assert all(v == {"w": 6} for v in _reads(ds, "meta", 1))
    # Values of one type: a text tensor stacks as strings, as when every cell is filled.
    assert ds.labels.numpy().tolist() == ["", "dog\n"] and ds[0:2].meta.numpy().tolist() == [{}, {"w": 6}]
    for value in _reads(ds, "images", 1):
        assert isinstance(value, np.ndarray) and value.shape == (0,) and value.dtype == np.uint8
    ds.close()


def test_empty_json_cell_is_a_new_dict_each_read(tmp_path):
    ds = _mount_like(tmp_path / "ds")
    first = ds.meta[0].numpy()
    first["changed"] = True
    assert ds.meta[0].numpy() == {} and ds[0].meta.data() == {}
    ds.close()


def test_deleted_and_unfilled_cells_read_alike(tmp_path):
    """A cell emptied by pop reads as one never filled; a stored '' or {} stays a sample."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("labels", htype="text")
    ds.create_tensor("meta", htype="json")
    ds.extend({"labels": ["", "x", "y"], "meta": [{}, {"k": 1}, None]})
    ds.labels.pop(1)
    ds.meta.pop(1)
    assert ds.labels.numpy(aslist=True) == ["", "", "y"] and ds.meta.numpy(aslist=True) == [{}, {}, None]
    assert [s.is_empty for s in ds.labels] == [False, True, False]
    assert [s.is_empty for s in ds.meta] == [False, True, False]  # (JSON null is a value)
    assert ds.labels[0].tobytes() == b"" and ds.meta[0].tobytes() == b"{}"  # stored values
    assert ds.labels[1].tobytes() == b"" and ds.meta[1].tobytes() == b""  # nothing stored
    ds.close()


def test_empty_array_cells_keep_the_tensor_dtype(tmp_path):
    """Empty class_label, generic, bytes and image cells: 0-length arrays of the dtype
    their samples read as; a generic tensor with no sample yet reads as an empty slice
    of it does (float64), not uint8."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("small", htype="class_label", dtype="int16")
    ds.create_tensor("x", dtype="float32")
    ds.create_tensor("y")  # dtype from the first sample
    ds.create_tensor("unset")  # never written: its dtype is not known
    ds.create_tensor("raw", htype="bytes")
    ds.create_tensor("images", htype="image", sample_compression="png")
    ds.append({"labels": "dog", "small": 1, "x": np.ones(2, "float32"), "y": np.ones(3, "int16"),
               "raw": b"ab", "images": np.zeros((2, 2, 3), np.uint8)}, key="full")
    ds.append({"images": np.zeros((2, 2, 3), np.uint8)}, key="sparse")  # row 1: only images
    ds.labels.pop(0)
    ds.images.pop(1)
    ds.append({"x": np.ones(2, "float32")}, key="more")  # row 2: the rest are empty at row 1
    cells = {"labels": (0, np.uint32), "small": (1, np.int16), "x": (1, np.float32), "y": (1, np.int16),
             "raw": (1, np.uint8), "images": (1, np.uint8), "unset": (1, np.float64)}
    for name, (row, dtype) in cells.items():
        for value in (ds[row][name].numpy(), ds[row][name].data(), ds[row:row + 1][name].numpy(aslist=True)[0]):
            assert isinstance(value, np.ndarray) and value.shape == (0,) and value.dtype == dtype, name
        assert ds[row][name].shape == (0,) and ds[row][name].tobytes() == b""
    assert ds.small[0].numpy().dtype == np.int16 and ds.y[0].numpy().dtype == np.int16  # as the filled cells
    assert ds[0:0].unset.numpy().dtype == ds[1].unset.numpy().dtype  # as an empty slice
    ds.close()


def test_file_views_show_no_file_for_an_empty_cell(tmp_path):
    """What the mount, ``lakefs ls`` and ``lakefs export`` show of an empty cell: nothing."""
    ds = _mount_like(tmp_path / "ds")
    assert ds.labels.file_table()[0] == ["b.txt"] and ds.images.file_table()[0] == ["a.jpg", "c.jpg"]
    assert ds.labels.find_file("a.txt") is None and ds.labels.file_stat("a.txt") is None
    assert ds.labels.key_conflict("a.txt") is None  # the mount may create it
    with pytest.raises(SampleNotFoundError):
        ds.labels[0].file_bytes()
    assert [e[0] for e in list_dir(ds, "labels")] == ["b.txt"]
    assert [e[0] for e in list_dir(ds, "meta")] == ["b.json"]
    report = export(ds, str(tmp_path / "out"), progress=False)
    assert report.files == 4 and not report.failed
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "images/a.jpg", "images/c.jpg", "labels/b.txt", "meta/b.json"]
    assert json.loads((tmp_path / "out" / "meta" / "b.json").read_text()) == {"w": 6}
    ds.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_empty_slices_read_as_arrays_of_what_their_samples_stack_to(tmp_path, reopen):
    """No rows (``t[0:0]``, ``ds[2:2].t``, ``t[[]]``, a tensor with no sample yet): a
    text tensor gives an empty str array, as its strings stack to, a json one an empty
    object array, a bytes one uint8 as its cells; not Deep Lake's float64 ``np.array([])``."""
    ds = lakefs.empty(tmp_path / "ds")
    for name, htype in [("labels", "text"), ("meta", "json"), ("raw", "bytes"), ("never", "text")]:
        ds.create_tensor(name, htype=htype)
    ds.append({"labels": "dog", "meta": {"w": 6}, "raw": b"ab"})
    ds.append({"labels": "cat", "meta": {"w": 7}, "raw": b"cd"})
    if reopen:
        ds.close()
        ds = lakefs.load(tmp_path / "ds", read_only=True)
    kinds = {"labels": "U", "meta": "O", "raw": "u", "never": "U"}
    for name, kind in kinds.items():
        for empty in (ds[name][0:0].numpy(), ds[name][5:9].numpy(), ds[name][[]].numpy(), ds[2:2][name].numpy(),
                      ds[[]][name].data()):
            assert isinstance(empty, np.ndarray) and empty.shape == (0,) and empty.dtype.kind == kind, name
    assert ds.never.numpy().dtype.kind == "U" and len(ds.never) == 0  # (no row at all)
    assert ds.labels.numpy().dtype.kind == "U" and ds.meta.numpy().dtype.kind == "O"  # as the filled ones stack
    assert ds.raw[0:0].numpy().dtype == ds.raw[0].numpy().dtype == np.uint8
    assert ds.labels[0:0].numpy(aslist=True) == []
    ds.close()
