"""Deep Lake v3's readers by htype, for code migrating from it: ``text()`` of a text
tensor, ``dict()`` of a json tensor, ``list()`` of a list or tag tensor (htypes lakefs does
not have). One cell gives its value, a tensor, slice or list of rows the list of values;
empty cells read as numpy() reads them; any other htype is a clear HtypeMismatchError."""

from __future__ import annotations

import numpy as np
import pytest

import lakefs
from lakefs.errors import HtypeMismatchError, LakeFSError


def _dataset(path):
    """Rows 0..4 (keys r0..r4): captions at rows 0, 1, 3 (row 2 made by the other
    tensors, row 4 by images only), meta at rows 0, 2, 3 (row 3 a JSON null, row 1 empty),
    and tensors of other htypes beside them; the same in group ``train``."""
    ds = lakefs.empty(path)
    ds.create_tensor("captions", htype="text")
    ds.create_tensor("meta", htype="json")
    ds.create_tensor("images", htype="image", sample_compression="png")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("raw", htype="bytes")
    ds.create_tensor("train/captions", htype="text")
    img = np.zeros((2, 2, 3), np.uint8)
    ds.append({"captions": "a cat", "meta": {"w": 6}, "images": img, "labels": "cat", "raw": b"x",
               "train/captions": "t0"}, key="r0")
    ds.append({"captions": "", "images": img, "labels": "dog", "raw": b"y", "train/captions": "t1"}, key="r1")
    ds.append({"meta": [1, 2], "images": img, "labels": "cat", "raw": b"z"}, key="r2")
    ds.append({"captions": "two\ndogs", "meta": None, "images": img, "labels": "dog", "raw": b"w",
               "train/captions": "t3"}, key="r3")
    ds.append({"images": img}, key="r4")
    return ds


@pytest.fixture(params=[False, True], ids=["open", "reopened"])
def ds(request, tmp_path):
    ds = _dataset(tmp_path / "ds")
    if request.param:
        ds.close()
        ds = lakefs.load(tmp_path / "ds", read_only=True)
    yield ds
    ds.close()


def test_text_of_one_cell_is_its_string(ds):
    """``t[i]``, ``t[key]``, ``ds[i].t``, ``ds[key].t``: the string; a stored "" and an
    empty cell (row 2, made by other tensors) both read as ""."""
    for row, want in [(0, "a cat"), (1, ""), (2, ""), (3, "two\ndogs")]:
        key = f"r{row}"
        for value in (ds.captions[row].text(), ds.captions[key].text(), ds[row].captions.text(),
                      ds[key].captions.text(), ds["captions"][row - 4].text()):
            assert isinstance(value, str) and value == want, row
    assert ds.captions[2].is_empty and not ds.captions[1].is_empty
    assert ds[0].train.captions.text() == "t0" and ds["train"]["captions"][2].text() == ""


def test_text_of_several_cells_is_a_list_of_strings(ds):
    """A tensor, a slice, a list of rows, a mask and the same through ``ds[a:b]`` and
    ``ds[[...]]``: a list of strings (one per row, empty cells as ""), never an array."""
    every = ["a cat", "", "", "two\ndogs"]  # (len 4: the tensor runs to its last filled row)
    assert ds.captions.text() == every and len(ds.captions) == 4
    cases = {
        "t[0:4]": (ds.captions[0:4], every),
        "t[1:3]": (ds.captions[1:3], ["", ""]),
        "t[::-1]": (ds.captions[::-1], every[::-1]),
        "t[[3, 0]]": (ds.captions[[3, 0]], ["two\ndogs", "a cat"]),
        "t[mask]": (ds.captions[[True, False, False, True]], ["a cat", "two\ndogs"]),
        "ds[0:4].t": (ds[0:4].captions, every),
        "ds[2:5].t": (ds[2:5].captions, ["", "two\ndogs", ""]),  # (row 4: images only)
        "ds[[3, 1]].t": (ds[[3, 1]]["captions"], ["two\ndogs", ""]),
        "ds[0:4].train.t": (ds[0:4].train.captions, ["t0", "t1", "", "t3"]),
        "ds[0:4][1:3].t": (ds[0:4][1:3].captions, ["", ""]),
    }
    for what, (view, want) in cases.items():
        value = view.text()
        assert type(value) is list and value == want, what
        assert all(isinstance(v, str) for v in value), what


def test_text_of_no_rows_is_an_empty_list(ds, tmp_path):
    assert ds.captions[0:0].text() == [] and ds[3:3].captions.text() == [] and ds.captions[[]].text() == []
    new = lakefs.empty(tmp_path / "new")
    new.create_tensor("captions", htype="text")
    assert new.captions.text() == [] and new.captions[0:5].text() == []
    new.close()


def test_dict_reads_json_cells_and_lists_of_them(ds):
    """Any JSON value, as Deep Lake's dict(): an object, a list, null (None); an empty
    cell reads as a new {} each time."""
    assert ds.meta[0].dict() == {"w": 6} and ds[0].meta.dict() == {"w": 6} and ds["r0"].meta.dict() == {"w": 6}
    assert ds.meta[2].dict() == [1, 2] and ds.meta[3].dict() is None
    empty = ds[1].meta.dict()
    assert empty == {} and ds.meta[1].is_empty
    empty["changed"] = True
    assert ds.meta[1].dict() == {}
    assert ds.meta.dict() == [{"w": 6}, {}, [1, 2], None]
    assert ds.meta[0:2].dict() == [{"w": 6}, {}] and ds[1:3].meta.dict() == [{}, [1, 2]]
    assert ds[[3, 0]].meta.dict() == [None, {"w": 6}] and ds.meta[[True, True, False, False]].dict() == [{"w": 6}, {}]
    assert ds.meta[4:4].dict() == [] and ds[0:0].meta.dict() == []
    assert type(ds.meta[0:2].dict()) is list


def _other_htype_views(ds, name: str) -> dict:
    """Every kind of view of tensor ``name``: one cell (filled and empty), several, none."""
    t = ds[name]
    return {
        "t": t, "t[0]": t[0], "t[key]": t["r0"], "t[0:2]": t[0:2], "t[[0]]": t[[0]], "t[0:0]": t[0:0],
        "ds[0].t": ds[0][name], "ds[0:2].t": ds[0:2][name], "ds[[1]].t": ds[[1]][name], "ds[5:5].t": ds[5:5][name],
    }


@pytest.mark.parametrize("name, htype", [("images", "image"), ("labels", "class_label"), ("raw", "bytes"),
                                         ("meta", "json")])
def test_text_of_another_htype_is_a_clear_lakefs_error(ds, name, htype):
    """Not an AttributeError (lakefs had no text()), not a read of pixels as text: a
    HtypeMismatchError (also a TypeError) naming the tensor, its htype and its reader,
    before any sample is read, so also for no rows and for an empty cell."""
    for what, view in _other_htype_views(ds, name).items():
        with pytest.raises(HtypeMismatchError) as caught:
            view.text()
        message = str(caught.value)
        assert f"tensor {name!r} has htype {htype!r}" in message and "text()" in message, what
        assert isinstance(caught.value, TypeError) and isinstance(caught.value, LakeFSError)
    assert "read it with dict()" in _raised(lambda: ds.meta.text())
    assert "read it with numpy()" in _raised(lambda: ds.images[0].text())


@pytest.mark.parametrize("name", ["images", "labels", "raw", "captions"])
def test_dict_of_another_htype_is_a_clear_lakefs_error(ds, name):
    for view in _other_htype_views(ds, name).values():
        with pytest.raises(HtypeMismatchError, match=rf"dict\(\) reads a json tensor; tensor '{name}'"):
            view.dict()
    assert "read it with text()" in _raised(lambda: ds[0:2].captions.dict())


@pytest.mark.parametrize("name", ["images", "labels", "raw", "captions", "meta"])
def test_list_says_lakefs_has_no_list_htype(ds, name):
    """Deep Lake's list() reads its list and tag htypes only; lakefs has neither, so on
    every tensor list() refuses, and says where lists go."""
    for view in _other_htype_views(ds, name).values():
        with pytest.raises(HtypeMismatchError, match=r"list\(\) reads a list or tag tensor.*json tensors"):
            view.list()
    samples = list(ds.captions[0:2])  # (the builtin list() of a slice still works)
    assert [s.text() for s in samples] == ["a cat", ""]


def _raised(call) -> str:
    with pytest.raises(HtypeMismatchError) as caught:
        call()
    return str(caught.value)
