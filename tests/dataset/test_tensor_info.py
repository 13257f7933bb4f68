"""``tensor.info`` as in Deep Lake v3: a mapping with attribute access holding the
htype's info (``class_names`` of a class label, ``coords`` of a bbox) and what
``create_tensor`` was given beyond its settings, changed by ``update`` and committed
with the next commit. It was a read-only mappingproxy without the class names: the
common ``ds.labels.info.class_names[i]`` and ``ds.labels.info.update(class_names=...)``
failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lakefs
from lakefs.errors import ConfigError, InvalidSampleError, ReadOnlyError


@pytest.fixture
def ds(dataset_path: Path):
    ds = lakefs.empty(dataset_path)
    yield ds
    ds.close()


def _reloaded(ds):
    ds.flush()
    return lakefs.load(ds.path, read_only=True)


def test_info_reads_as_a_mapping_and_by_attribute(ds):
    labels = ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    boxes = ds.create_tensor("boxes", htype="bbox", coords={"type": "pixel", "mode": "LTWH"})
    plain = ds.create_tensor("plain", htype="bbox")
    masks = ds.create_tensor("masks", htype="segment_mask", sample_compression="png")
    x = ds.create_tensor("x", mean=0.5)
    assert labels.info.class_names == ["cat", "dog"] and labels.info["class_names"][1] == "dog"
    assert labels.info == {"class_names": ["cat", "dog"]} and dict(labels.info) == {"class_names": ["cat", "dog"]}
    assert boxes.info.coords == {"type": "pixel", "mode": "LTWH"}
    assert plain.info == {"coords": {}} and masks.info == {"class_names": []}  # as Deep Lake's defaults
    assert x.info.mean == 0.5 and list(x.info) == ["mean"] and "mean" in x.info and x.info.get("nope") is None
    with pytest.raises(AttributeError, match="nope"):
        _ = x.info.nope
    with pytest.raises(KeyError):
        _ = x.info["nope"]
    labels.info.class_names.append("bird")  # a copy: update() changes info
    assert labels.class_names == ["cat", "dog"]
    ds.labels.append("bird")  # a name added by a label shows too
    assert ds.labels.info.class_names == ["cat", "dog", "bird"]


def test_update_is_committed_with_the_next_commit(ds):
    t = ds.create_tensor("x", mean=0.5)
    t.info.update(description="scores", mean=0.25)
    t.info["source"] = {"url": "http://example.com", "n": [1, 2]}
    t.info.version = 3
    assert t.info == {"mean": 0.25, "description": "scores", "source": {"url": "http://example.com", "n": [1, 2]},
                      "version": 3}
    assert ds.has_changes
    assert _reloaded(ds).x.info == t.info
    del t.info["version"]
    assert "version" not in t.info and "version" not in _reloaded(ds).x.info


def test_class_names_set_after_int_labels_name_them(ds):
    """Deep Lake's tutorial: labels appended as indices, the names given after."""
    with ds:
        ds.create_tensor("labels", htype="class_label")
        ds.labels.extend([0, 1, 2, 1])
        ds.labels.info.update(class_names=["cat", "dog", "bird"])
    assert ds.labels[2].file_bytes() == b"bird\n"
    assert _reloaded(ds).labels.info.class_names == ["cat", "dog", "bird"]
    ds.labels.info.update(class_names=["cat", "dog", "bird", "fish"])  # more names: always
    ds.labels.append("fish")
    assert ds.labels[4].numpy().tolist() == [3]


def test_class_names_of_stored_labels_are_never_changed(ds, dataset_path):
    """Labels are stored as indices: a name replaced, removed or moved would change
    what every stored label of it means (and its file in the mount)."""
    labels = ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    labels.append("dog")
    ds.flush()
    for names, why in ((["dog", "cat"], r"class_names\[0\] is 'cat'"), (["cat"], "'dog' would be removed"),
                       (["cat", "wolf"], r"class_names\[1\] is 'dog'")):
        with pytest.raises(InvalidSampleError, match=why) as e:
            labels.info.update(class_names=names)
        assert "only be added" in str(e.value)
    with pytest.raises(InvalidSampleError):
        del labels.info["class_names"]
    assert labels.info.class_names == ["cat", "dog"] and not ds.has_changes
    empty = ds.create_tensor("empty", htype="class_label", class_names=["a", "b"])
    empty.info.update(class_names=["b", "a"])  # no label yet: any names
    assert empty.info.class_names == ["b", "a"]


@pytest.mark.parametrize("names", [["cat", "cat"], ["cat", " dog"], ["cat", "5"], "cat,dog", [1, 2], ["a\nb"]])
def test_class_names_are_checked_as_create_tensor_checks_them(ds, names):
    labels = ds.create_tensor("labels", htype="class_label", class_names=["cat"])
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("other", htype="class_label", class_names=names)
    with pytest.raises(InvalidSampleError):
        labels.info.update(class_names=names)
    assert labels.info.class_names == ["cat"]


def test_what_info_cannot_hold_is_refused_and_nothing_changes(ds):
    t = ds.create_tensor("x", htype="class_label", mean=0.5)
    ds.flush()
    import numpy as np

    for bad, error, match in (({"htype": "text"}, ConfigError, "htype is a setting"),
                              ({"class_name": ["a"]}, ConfigError, "did you mean 'class_names'"),
                              ({"mean": np.float32(1)}, InvalidSampleError, "not a JSON value"),
                              ({"ok": 1, "mean": float("nan")}, InvalidSampleError, "not a JSON value"),
                              ({1: "a"}, InvalidSampleError, "keys are strings")):
        with pytest.raises(error, match=match):
            t.info.update(bad)
    with pytest.raises(AttributeError):
        t.info._secret = 1
    assert t.info == {"class_names": [], "mean": 0.5} and not ds.has_changes


def test_a_read_only_dataset_refuses_info_changes(ds, dataset_path):
    ds.create_tensor("x", mean=0.5)
    ds.close()
    ro = lakefs.load(dataset_path, read_only=True)
    with pytest.raises(ReadOnlyError):
        ro.x.info.update(mean=1)
    with pytest.raises(ReadOnlyError):
        ro.x.info["mean"] = 1
    assert ro.x.info.mean == 0.5


def test_info_is_stored_where_older_lakefs_reads_it(ds, dataset_path):
    """No format change: class names stay in the tensor's ``class_names`` and the rest in
    its ``info`` object (docs/FORMAT.md §4), which every format version has."""
    t = ds.create_tensor("labels", htype="class_label")
    t.info.update(class_names=["a"], note="n")
    ds.flush()
    head = json.loads((dataset_path / "HEAD").read_bytes())
    meta = json.loads((dataset_path / head["manifest"]).read_bytes())["tensors"]["labels"]
    assert meta["class_names"] == ["a"] and meta["info"] == {"note": "n"}
