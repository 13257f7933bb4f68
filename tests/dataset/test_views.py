"""Views of rows (``ds[0:3]``) and of samples (``ds.x[0:3]``): written through or refused,
never a change to a Python list only; indexed as the dataset and its tensors are."""

from __future__ import annotations

import numpy as np
import pytest

import lakefs


@pytest.fixture
def ds(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("t", htype="text")
    ds.x.extend([np.array([i, 10 * i]) for i in range(5)])
    ds.t.extend([f"s{i}" for i in range(5)])
    return ds


def test_sample_view_item_assignment_writes_the_row(ds):
    v = ds.x[1:4]
    v[0] = np.array([7, 7])
    v[-1] = np.array([8, 8])
    assert ds.x[1].numpy().tolist() == [7, 7]
    assert ds.x[3].numpy().tolist() == [8, 8]
    assert v[0].numpy().tolist() == [7, 7]  # the view shows what it wrote
    ds[0:3].x[1] = np.array([9, 9])
    assert ds.x[1].numpy().tolist() == [9, 9]
    ds.x[[4, 0]][0] = np.array([5, 5])
    assert ds.x[4].numpy().tolist() == [5, 5]


def test_view_writes_a_view_cannot_do_are_refused(ds):
    v = ds.x[0:3]
    for write in (lambda: v.append(np.array([1, 1])), lambda: v.extend([np.array([1, 1])]),
                  lambda: v.insert(0, np.array([1, 1])), lambda: v.__delitem__(0), v.clear, v.pop,
                  lambda: v.__setitem__(slice(0, 1), [np.array([1, 1])])):
        with pytest.raises(TypeError, match=r"ds\.x\["):
            write()
    assert len(v) == 3 and len(ds.x) == 5
    rows = ds[0:3]
    with pytest.raises(TypeError, match=r"ds\[2\]\[.x.\] = value"):
        rows[2] = {"x": np.array([1, 1])}
    with pytest.raises(TypeError, match="ds.x"):
        rows["x"] = [1, 2, 3]
    with pytest.raises(TypeError):
        rows.append(rows[0])
    assert len(rows) == 3 and ds.x[2].numpy().tolist() == [2, 20]


def test_slices_and_lists_of_views_are_views(ds):
    v = ds.x[1:4]
    assert v[0:2].numpy().tolist() == [[1, 10], [2, 20]]
    assert v[[2, 0]].numpy().tolist() == [[3, 30], [1, 10]]
    assert v[[True, False, True]].numpy().tolist() == [[1, 10], [3, 30]]
    assert ds.x[1:3][0:1].numpy().tolist() == [[1, 10]]
    rows = ds[1:4]
    assert [r.index for r in rows[[0, 2]]] == [1, 3]
    assert rows[[0, 2]].x.numpy().tolist() == [[1, 10], [3, 30]]
    assert [r.index for r in rows[np.array([False, True, True])]] == [2, 3]
    assert rows[-1].index == 3


def test_view_indexing_errors_are_the_datasets(ds):
    with pytest.raises(IndexError, match="row 3 out of range for a view of 3 rows"):
        ds.x[1:4][3]
    with pytest.raises(IndexError, match="row 5 out of range for a view of 2 rows"):
        ds[1:3][[0, 5]]
    with pytest.raises(IndexError, match="boolean index"):
        ds[1:3][[True]]
    with pytest.raises(TypeError, match="ints"):
        ds.x[1:3][[0.0]]
    with pytest.raises(TypeError, match="ints"):
        ds[1:3][1.0]


def test_a_copy_of_a_view_is_a_view(ds):
    import copy

    v = copy.copy(ds.x[1:3])
    assert v.numpy().tolist() == [[1, 10], [2, 20]]
    rows = copy.copy(ds[1:3])
    assert rows.x.numpy().tolist() == [[1, 10], [2, 20]]


def test_a_tuple_index_is_refused_not_read_as_rows(ds):
    with pytest.raises(TypeError, match=r"ds\.x\[3\]\.numpy\(\)\[1\]"):
        ds.x[3, 1]
    with pytest.raises(TypeError, match=r"ds\.x\[0\]\.numpy\(\)\[1:3\]"):
        ds.x[0, 1:3]
    with pytest.raises(TypeError, match=r"ds\[\[1, 0\]\]"):
        ds[1, 0]
    with pytest.raises(TypeError, match="numpy"):
        ds.x[0:3][1, 0]
    with pytest.raises(TypeError, match="list"):
        ds[0:3][1, 0]
    assert ds.x[(3,)].numpy().tolist() == [3, 30]  # as numpy: a[(3,)] is a[3]
    assert ds[(3,)].index == 3


def test_a_list_of_rows_holds_ints_only(ds):
    with pytest.raises(TypeError, match="float"):
        ds.x[[1.0]]
    with pytest.raises(TypeError, match="str"):
        ds.t[["3"]]
    assert ds.x[[np.int64(1), -1]].numpy().tolist() == [[1, 10], [4, 40]]
    assert ds.x[np.array([1, 2])].numpy().tolist() == [[1, 10], [2, 20]]
    assert ds.x[[False, True, False, False, False]].numpy().tolist() == [[1, 10]]
    assert len(ds.x[[]]) == 0
